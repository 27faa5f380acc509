#include "learn_request.h"

#include <QRegularExpression>

#include <algorithm>

#include "latmix/error.h"
#include "latmix/quant.h"
#include "latmix/tokenizer.h"

namespace latmix::studio {

LearnSettings LearnRequest::settings(at::Device device) const {
  const std::string spec_text = quant.toStdString();
  const QuantSpec spec = parse_quant_spec(spec_text);
  LearnSettings s = method_defaults(method.toStdString(), spec, device);
  s.seed = seed;
  // As in the CLI: weights=rtn|gptq given explicitly wins over the method's weight quantizer.
  if (spec_text.find("weights=") != std::string::npos) s.quant.method = spec.method;
  if (!find_method(s.method).learned) return s;
  if (steps) s.steps = *steps;
  if (batch) s.batch = *batch;
  if (lr) s.lr = *lr;
  if (!optimizer.isEmpty()) s.optimizer = parse_optimizer(optimizer.toStdString());
  if (warmup) s.warmup = *warmup;
  if (!schedule.isEmpty()) {
    if (schedule != "cosine" && schedule != "constant") {
      throw UsageError("schedule: expected cosine or constant, found '" + schedule.toStdString() + "'");
    }
    s.cosine = schedule == "cosine";
  }
  if (grad_clip) s.grad_clip = *grad_clip;
  if (lambda) s.lambda = *lambda;
  if (!init.isEmpty()) s.init = parse_transform_init(init.toStdString());
  // The checks of settings_from_args (engine/cli/commands_learn.cpp).
  if (validation) {
    if (*validation < 0) throw UsageError("validation: expected 0 or more");
    s.validation = *validation;
  }
  if (eval_every) {
    if (*eval_every < 1) throw UsageError("eval every: expected 1 or more");
    s.eval_every = *eval_every;
  }
  if (patience) {
    if (*patience < 0) throw UsageError("patience: expected 0 or more");
    s.patience = *patience;
  }
  if (!deployed_check.isEmpty()) s.deployed_check = parse_deployed_check(deployed_check.toStdString());
  return s;
}

QStringList LearnRequest::cliArguments() const {
  QStringList a = {
      "--quant", quant, "--calib", calib, "--samples", QString::number(samples), "--seqlen", QString::number(seqlen)};
  if (!data_dir.isEmpty() && calib == "gutenberg") a << "--data-dir" << data_dir;
  if (steps) a << "--steps" << QString::number(*steps);
  if (batch) a << "--batch" << QString::number(*batch);
  if (lr) a << "--lr" << QString::number(*lr, 'g', 6);
  if (!optimizer.isEmpty()) a << "--optimizer" << optimizer;
  if (warmup) a << "--warmup" << QString::number(*warmup, 'g', 6);
  if (!schedule.isEmpty()) a << "--schedule" << schedule;
  if (grad_clip) a << "--grad-clip" << QString::number(*grad_clip, 'g', 6);
  if (lambda) a << "--lambda" << QString::number(*lambda, 'g', 6);
  if (!init.isEmpty()) a << "--init" << init;
  if (validation) a << "--validation" << QString::number(*validation);
  if (eval_every) a << "--eval-every" << QString::number(*eval_every);
  if (patience) a << "--patience" << QString::number(*patience);
  if (!deployed_check.isEmpty()) a << "--deployed-check" << deployed_check;
  if (seed != 0) a << "--seed" << QString::number(seed);
  return a;
}

int default_calibration_samples(bool gpu) {
  return gpu ? 256 : 32;
}

int default_calibration_seqlen(bool gpu, qint64 max_position) {
  const qint64 context = max_position > 0 ? max_position : 2048;
  return gpu ? static_cast<int>(std::min<qint64>(context, 2048)) : 128;
}

CalibrationSet load_learning_calibration(const LearnRequest& request, const Tokenizer& tokenizer) {
  CalibrationOptions co;
  co.samples = request.samples;
  co.seqlen = request.seqlen;
  if (co.samples < 1) throw UsageError("samples: expected 1 or more");
  if (co.seqlen < 2) throw UsageError("seqlen: expected 2 or more");
  const std::vector<std::string> files = calibration_files(request.calib.toStdString(), request.data_dir.toStdString());
  // Enough text for the windows to be spread over several books, without tokenizing all of them.
  return load_calibration_files(files, tokenizer, co, 4 * co.samples * co.seqlen);
}

QString shell_command(const QStringList& argv) {
  static const QRegularExpression plain("^[A-Za-z0-9_@%+=:,./-]+$");
  QStringList out;
  for (const QString& a : argv) {
    if (!a.isEmpty() && plain.match(a).hasMatch()) {
      out << a;
    } else {
      QString q = a;
      q.replace("'", "'\\''");
      out << "'" + q + "'";
    }
  }
  return out.join(' ');
}

}  // namespace latmix::studio
