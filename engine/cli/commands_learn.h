#pragma once
// Pieces of `latmix learn` shared with `latmix compare` and `latmix export`.
#include <string>
#include <vector>

#include "args.h"
#include "latmix/calib_data.h"
#include "latmix/learn.h"

namespace latmix::cli {

/// --quant, --calib, --samples, --seqlen, --data-dir and every learning knob.
std::vector<OptionSpec> learn_options();
/// The method's defaults for the model's device, with every given option applied.
LearnSettings settings_from_args(const Args& args, const std::string& method, at::Device device);
/// The calibration sequences named by --calib/--samples/--seqlen (device-dependent defaults).
CalibrationSet calibration_for_learning(const Args& args, const Model& model, const Tokenizer& tokenizer);
/// One progress line of a learning step.
std::string event_line(const LearnEvent& event);

}  // namespace latmix::cli
