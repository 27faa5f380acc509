#pragma once
// The `latmix` subcommands. Each file registers a group of commands.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/tokenizer.h"

namespace latmix::cli {

struct Command {
  CommandSpec spec;
  std::function<int(const Args&)> run;
};

std::vector<Command> model_commands();  // info, tokenize, logits, generate
std::vector<Command> eval_commands();   // ppl
std::vector<Command> mx_commands();     // mx quantize, mx stats
std::vector<Command> stats_commands();  // stats
std::vector<Command> evaluate_commands();  // eval
std::vector<Command> export_commands();    // export, verify
std::vector<Command> learn_commands();     // learn
std::vector<Command> compare_commands();   // compare

/// Applies --threads; returns the --device.
at::Device apply_common_options(const Args& args);

/// The model (and its tokenizer) named by --model / --tokenizer, loaded with progress on stderr.
struct LoadedModel {
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
};
LoadedModel load_model_from_args(const Args& args, at::ScalarType dtype);
/// The model of --model alone, for commands that take token ids and need no tokenizer.
Model load_model_only(const Args& args, at::ScalarType dtype);

/// The GPTQ calibration sequences of --calib FILE, --calib-samples N, --calib-seqlen L (eval, export).
CalibrationSet calibration_from_args(const Args& args, const Tokenizer& tokenizer);

/// Options shared by the commands that load a model.
OptionSpec model_option();
OptionSpec tokenizer_option();
OptionSpec dtype_option();

}  // namespace latmix::cli
