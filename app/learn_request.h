#pragma once
// LearnRequest: what the Learn and Compare screens ask the engine to do, as plain values with the
// same names as the options of `latmix learn` / `latmix compare` (engine/cli/commands_learn.cpp).
// settings() turns it into LearnSettings exactly as the CLI does, and cliArguments() writes the
// equivalent command line, so every GUI run can be repeated headless.

#include <QString>
#include <QStringList>

#include <cstdint>
#include <optional>

#include "latmix/calib_data.h"
#include "latmix/learn.h"

namespace latmix {
class Model;
class Tokenizer;
}  // namespace latmix

namespace latmix::studio {

struct LearnRequest {
  QString method = "latmix";
  QString quant = "mxfp4";      ///< --quant: QuantSpec text; weights= given here overrides the method's
  QString calib = "gutenberg";  ///< --calib: "gutenberg" (the training books) or comma-separated files
  QString data_dir;             ///< --data-dir (for gutenberg)
  int samples = 32;             ///< --samples
  int seqlen = 128;             ///< --seqlen
  quint64 seed = 0;             ///< --seed
  // The learning knobs; unset means the method's default (as when the CLI option is left out).
  std::optional<qint64> steps, batch;
  std::optional<double> lr, lambda, warmup, grad_clip;
  QString optimizer, schedule, init;  ///< "" = the method's
  // Validation (docs/methods.md, "Never worse than the start"); unset / "" = the engine's default.
  std::optional<qint64> validation;  ///< --validation: held-out sequences (0: none)
  std::optional<qint64> eval_every;  ///< --eval-every: steps between measurements
  std::optional<qint64> patience;    ///< --patience: measurements without a new best (0: never stop)
  QString deployed_check;            ///< --deployed-check: "no", "ends" or "every"

  /// The settings for `device`: method_defaults() with the request applied (settings_from_args).
  /// \throws latmix::UsageError for a bad spec, method or value.
  LearnSettings settings(at::Device device) const;
  /// The options shared by `latmix learn` and `latmix compare` ("--quant", "mxfp4", ...).
  QStringList cliArguments() const;
};

/// The calibration sequences of a request (engine thread): the files of `calib`, read until there
/// are 4 x samples x seqlen tokens, then sampled evenly (calibration_for_learning in the CLI).
CalibrationSet load_learning_calibration(const LearnRequest& request, const Tokenizer& tokenizer);

/// Samples and sequence length the CLI uses when --samples / --seqlen are left out.
int default_calibration_samples(bool gpu);
int default_calibration_seqlen(bool gpu, qint64 max_position);

/// A command line with arguments quoted for a POSIX shell where needed.
QString shell_command(const QStringList& argv);

}  // namespace latmix::studio
