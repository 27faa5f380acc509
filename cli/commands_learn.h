#pragma once
// Pieces of `latmix learn` shared with `latmix compare`: its options, and an argv read into the api's
// LearnRequest (latmix/api/learn.h), which assembles the task.
#include <string>
#include <vector>

#include "args.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/learn.h"
#include "latmix/learn.h"

namespace latmix::cli {

/// --quant, --calib, --samples, --seqlen, --data-dir and every learning knob.
std::vector<OptionSpec> learn_options();
/// The options of learn_options() and the model's (--model, --tokenizer, --device, --dtype) into
/// `request`: an option left out stays unset (the method's default; learn_settings() applies it).
/// yes|no options are checked here (UsageError naming the option).
void read_learn_options(const Args& args, api::LearnRequest& request);
/// `latmix learn`'s arguments as the api's request: --method, the options above, and the outputs
/// (--out, --events, --checkpoint, --checkpoint-every, --resume).
api::LearnRequest learn_request_from_args(const Args& args);
/// `latmix compare`'s arguments as the api's request (latmix/api/evaluate.h): --methods, --tasks,
/// --limit, --eval-seqlen, --out, and the learning request of read_learn_options().
api::CompareRequest compare_request_from_args(const Args& args);
/// One progress line of a learning step.
std::string event_line(const LearnEvent& event);

}  // namespace latmix::cli
