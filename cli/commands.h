#pragma once
// The `latmix` subcommands. Each file registers a group of commands.

#include <functional>
#include <memory>
#include <optional>
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
std::vector<Command> analyze_commands();  // analyze
std::vector<Command> evaluate_commands();  // eval
std::vector<Command> export_commands();    // export, verify
std::vector<Command> learn_commands();     // learn
std::vector<Command> compare_commands();   // compare
std::vector<Command> serve_commands();     // serve
std::vector<Command> remote_commands();    // jobs list|attach|cancel|pause|resume|remove, files, download
/// jobs ..., files, download: they need --engine URL.
bool remote_only_command(const std::string& name);

/// The CPUs this process may run on (its affinity mask), else the machine's.
int64_t available_cores();
/// Applies --threads; returns the --device.
at::Device apply_common_options(const Args& args);

/// The model (and its tokenizer) named by --model / --tokenizer, loaded with progress on stderr.
struct LoadedModel {
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
};
/// `mapped`: keep the matrices memory-mapped in the file's dtype, converted at use (Model).
/// `device`: instead of --device (one GPU per process of `--nproc`).
LoadedModel load_model_from_args(const Args& args, at::ScalarType dtype, bool mapped = false,
                                 std::optional<at::Device> device = std::nullopt);
/// The model of --model alone, for commands that take token ids and need no tokenizer.
Model load_model_only(const Args& args, at::ScalarType dtype, bool mapped = false,
                      std::optional<at::Device> device = std::nullopt);
/// Whether --weights says mapped (the commands that declare weights_option()); auto: on the CPU.
bool mapped_weights(const Args& args);

/// The calibration options of eval and export (help texts state the defaults).
std::vector<OptionSpec> calibration_options();

/// A JobControl for `model`'s forward passes whose bar moves layer by layer: a LayerProgressHook
/// (installed on the model until the returned guard dies) reports `stage` in units of layers over
/// `passes` passes, and the engine's own coarser reports of `stage` are dropped but for the last.
struct LayerProgress {
  LayerProgress(Model& model, const std::string& stage, int64_t passes, ProgressFn print);
  ~LayerProgress();
  LayerProgress(const LayerProgress&) = delete;
  LayerProgress& operator=(const LayerProgress&) = delete;
  JobControl job;

 private:
  Model& model_;
  std::shared_ptr<CaptureHook> hook_;
};

/// Options shared by the commands that load a model.
OptionSpec model_option();
OptionSpec tokenizer_option();
OptionSpec dtype_option();
OptionSpec weights_option();

}  // namespace latmix::cli
