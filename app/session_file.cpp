#include "session_file.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QStandardPaths>

#include <cmath>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix::studio {

namespace {

constexpr int kVersion = 1;
const char* const kFormat = "latmix-studio-session";

QJsonArray strings(const QStringList& list) {
  QJsonArray a;
  for (const QString& s : list) a.append(s);
  return a;
}

QStringList strings(const QJsonValue& v) {
  QStringList out;
  for (const QJsonValue& s : v.toArray()) out << s.toString();
  return out;
}

QJsonArray pairs(const std::vector<std::pair<QString, double>>& list) {
  QJsonArray a;
  for (const auto& [name, value] : list) a.append(QJsonArray{name, value});
  return a;
}

std::vector<std::pair<QString, double>> pairs(const QJsonValue& v) {
  std::vector<std::pair<QString, double>> out;
  for (const QJsonValue& p : v.toArray()) out.emplace_back(p.toArray().at(0).toString(), p.toArray().at(1).toDouble());
  return out;
}

// The plan's two files, copied unless an identical-looking copy is there already.
QString copy_plan(const QString& from, const QString& to) {
  for (const char* ext : {".json", ".safetensors"}) {
    const QString src = from + ext, dst = to + ext;
    if (!QFileInfo::exists(src)) return src + ": the run's plan file is missing";
    if (QFileInfo(src).canonicalFilePath() == QFileInfo(dst).canonicalFilePath()) continue;
    if (QFileInfo::exists(dst)) {
      if (QFileInfo(dst).size() == QFileInfo(src).size()) continue;
      QFile::remove(dst);
    }
    if (!QFile::copy(src, dst)) return dst + ": cannot write the copy of " + src;
  }
  return {};
}

}  // namespace

QJsonObject to_json(const LearnRequest& r) {
  QJsonObject o{{"method", r.method}, {"quant", r.quant},   {"calib", r.calib},
                {"samples", r.samples}, {"seqlen", r.seqlen}, {"seed", QString::number(r.seed)},
                {"optimizer", r.optimizer}, {"schedule", r.schedule}, {"init", r.init}};
  if (r.steps) o["steps"] = static_cast<double>(*r.steps);
  if (r.batch) o["batch"] = static_cast<double>(*r.batch);
  if (r.lr) o["lr"] = *r.lr;
  if (r.lambda) o["lambda"] = *r.lambda;
  if (r.warmup) o["warmup"] = *r.warmup;
  if (r.grad_clip) o["grad_clip"] = *r.grad_clip;
  if (r.validation) o["validation"] = static_cast<double>(*r.validation);
  if (r.eval_every) o["eval_every"] = static_cast<double>(*r.eval_every);
  if (r.patience) o["patience"] = static_cast<double>(*r.patience);
  if (!r.deployed_check.isEmpty()) o["deployed_check"] = r.deployed_check;
  return o;
}

LearnRequest learn_request_from_json(const QJsonObject& o) {
  LearnRequest r;
  r.method = o.value("method").toString(r.method);
  r.quant = o.value("quant").toString(r.quant);
  r.calib = o.value("calib").toString(r.calib);
  r.samples = o.value("samples").toInt(r.samples);
  r.seqlen = o.value("seqlen").toInt(r.seqlen);
  r.seed = o.value("seed").toString("0").toULongLong();
  r.optimizer = o.value("optimizer").toString();
  r.schedule = o.value("schedule").toString();
  r.init = o.value("init").toString();
  if (o.contains("steps")) r.steps = static_cast<qint64>(o.value("steps").toDouble());
  if (o.contains("batch")) r.batch = static_cast<qint64>(o.value("batch").toDouble());
  if (o.contains("lr")) r.lr = o.value("lr").toDouble();
  if (o.contains("lambda")) r.lambda = o.value("lambda").toDouble();
  if (o.contains("warmup")) r.warmup = o.value("warmup").toDouble();
  if (o.contains("grad_clip")) r.grad_clip = o.value("grad_clip").toDouble();
  if (o.contains("validation")) r.validation = static_cast<qint64>(o.value("validation").toDouble());
  if (o.contains("eval_every")) r.eval_every = static_cast<qint64>(o.value("eval_every").toDouble());
  if (o.contains("patience")) r.patience = static_cast<qint64>(o.value("patience").toDouble());
  r.deployed_check = o.value("deployed_check").toString();
  return r;
}

QJsonObject to_json(const LearnRun& run, const QString& plan_file) {
  const LearnOutcome& o = run.outcome;
  QJsonArray curve;
  for (const LearnStep& s : run.curve) {
    QJsonObject step{{"step", static_cast<double>(s.step)},   {"total", static_cast<double>(s.total)},
                     {"layer", static_cast<double>(s.layer)}, {"loss", s.loss},
                     {"terms", pairs(s.terms)},               {"lr", s.lr},
                     {"grad_norm", s.grad_norm},              {"seconds", s.seconds}};
    if (s.validation) step["validation"] = *s.validation;
    curve.append(step);
  }
  QJsonArray validation_curve;
  for (const auto& [step, value] : o.validation_curve)
    validation_curve.append(QJsonObject{{"step", static_cast<double>(step)}, {"loss", value}});
  QJsonObject validation{{"samples", static_cast<double>(o.validation_samples)},
                         {"curve", validation_curve},
                         {"best_step", static_cast<double>(o.best_step)},
                         {"stopped_early", o.stopped_early},
                         {"note", o.validation_note}};
  if (std::isfinite(o.deployed_start)) {  // JSON has no NaN
    validation["deployed"] = QJsonObject{{"start", o.deployed_start}, {"result", o.deployed_result}};
  }
  return QJsonObject{{"run", o.run},
                     {"validation", validation},
                     {"method", o.method},
                     {"quant", o.quant},
                     {"settings", o.settings_json},
                     {"calibration", o.calibration},
                     {"learned", o.learned},
                     {"steps", static_cast<double>(o.steps)},
                     {"first_loss", o.first_loss},
                     {"last_loss", o.last_loss},
                     {"seconds", o.seconds},
                     {"conditions", pairs(o.conditions)},
                     {"transforms", strings(o.transforms)},
                     {"plan", plan_file},
                     {"model_path", o.model_path},
                     {"model_digest", o.model_digest},
                     {"saved_prefix", o.saved_prefix},
                     {"in_session", o.in_session},
                     {"notes", strings(o.notes)},
                     {"finished_at", o.finished_at},
                     {"request", to_json(run.request)},
                     {"curve", curve}};
}

LearnRun learn_run_from_json(const QJsonObject& j) {
  LearnRun run;
  LearnOutcome& o = run.outcome;
  o.run = j.value("run").toInt();
  o.method = j.value("method").toString();
  o.quant = j.value("quant").toString();
  o.settings_json = j.value("settings").toString();
  o.calibration = j.value("calibration").toString();
  o.learned = j.value("learned").toBool();
  o.steps = static_cast<qint64>(j.value("steps").toDouble());
  o.first_loss = j.value("first_loss").toDouble();
  o.last_loss = j.value("last_loss").toDouble();
  o.seconds = j.value("seconds").toDouble();
  o.conditions = pairs(j.value("conditions"));
  o.transforms = strings(j.value("transforms"));
  o.plan_prefix = j.value("plan").toString();
  o.model_path = j.value("model_path").toString();
  o.model_digest = j.value("model_digest").toString();
  o.saved_prefix = j.value("saved_prefix").toString();
  o.in_session = j.value("in_session").toBool();
  o.notes = strings(j.value("notes"));
  o.finished_at = j.value("finished_at").toString();
  const QJsonObject validation = j.value("validation").toObject();  // absent in older sessions
  o.validation_samples = static_cast<qint64>(validation.value("samples").toDouble());
  for (const QJsonValue& v : validation.value("curve").toArray()) {
    const QJsonObject p = v.toObject();
    o.validation_curve.emplace_back(static_cast<qint64>(p.value("step").toDouble()), p.value("loss").toDouble());
  }
  o.best_step = static_cast<qint64>(validation.value("best_step").toDouble(-1));
  o.stopped_early = validation.value("stopped_early").toBool();
  o.validation_note = validation.value("note").toString();
  if (validation.contains("deployed")) {
    const QJsonObject d = validation.value("deployed").toObject();
    o.deployed_start = d.value("start").toDouble();
    o.deployed_result = d.value("result").toDouble();
  }
  run.request = learn_request_from_json(j.value("request").toObject());
  for (const QJsonValue& v : j.value("curve").toArray()) {
    const QJsonObject s = v.toObject();
    LearnStep step;
    step.step = static_cast<qint64>(s.value("step").toDouble());
    step.total = static_cast<qint64>(s.value("total").toDouble());
    step.layer = static_cast<qint64>(s.value("layer").toDouble(-1));
    step.loss = s.value("loss").toDouble();
    step.terms = pairs(s.value("terms"));
    step.lr = s.value("lr").toDouble();
    step.grad_norm = s.value("grad_norm").toDouble();
    step.seconds = s.value("seconds").toDouble();
    if (s.contains("validation")) step.validation = s.value("validation").toDouble();
    run.curve.push_back(std::move(step));
  }
  return run;
}

QString save_session(const StudioSession& session, const QString& path) {
  const QFileInfo info(path);
  const QString plans = info.absolutePath() + "/" + info.completeBaseName() + ".plans";
  if (!QDir().mkpath(plans)) return plans + ": cannot create the folder for the session's plans";
  QJsonArray runs;
  for (const LearnRun& run : session.runs) {
    QString plan_file;
    if (!run.outcome.plan_prefix.isEmpty()) {
      const QString model = QFileInfo(run.outcome.model_path).completeBaseName();
      const QString name = QString("%1-run-%2-%3").arg(model).arg(run.outcome.run).arg(run.outcome.method);
      const QString error = copy_plan(run.outcome.plan_prefix, plans + "/" + name);
      if (!error.isEmpty()) return error;
      plan_file = info.completeBaseName() + ".plans/" + name;  // relative: the session can move
    }
    runs.append(to_json(run, plan_file));
  }
  const QJsonObject root{{"format", kFormat},
                         {"version", kVersion},
                         {"model", session.model_path},
                         {"tab", session.tab},
                         {"learn", to_json(session.learn)},
                         {"current_model", session.current_model},
                         {"current_run", session.current_run},
                         {"runs", runs}};
  try {
    const QByteArray json = QJsonDocument(root).toJson();
    write_file_atomic(path.toStdString(), std::string_view(json.constData(), static_cast<size_t>(json.size())));
  } catch (const Error& e) {
    return QString::fromStdString(e.what());
  }
  return {};
}

StudioSession load_session(const QString& path, QString* error, QStringList* notes) {
  StudioSession s;
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    *error = path + ": cannot read (" + f.errorString() + ")";
    return s;
  }
  QJsonParseError pe;
  const QJsonDocument doc = QJsonDocument::fromJson(f.readAll(), &pe);
  const QJsonObject root = doc.object();
  if (pe.error != QJsonParseError::NoError || root.value("format").toString() != kFormat) {
    *error = path + ": expected a LATMiX Studio session (\"format\": \"" + kFormat + "\"), found " +
             (pe.error != QJsonParseError::NoError ? "invalid JSON (" + pe.errorString() + ")" : "another file");
    return s;
  }
  if (root.value("version").toInt() > kVersion) {
    *error = path + QString(": session version %1, this studio reads up to %2").arg(root.value("version").toInt()).arg(kVersion);
    return s;
  }
  s.model_path = root.value("model").toString();
  s.tab = root.value("tab").toInt();
  s.learn = learn_request_from_json(root.value("learn").toObject());
  s.current_model = root.value("current_model").toString();
  s.current_run = root.value("current_run").toInt();
  const QString dir = QFileInfo(path).absolutePath();
  for (const QJsonValue& v : root.value("runs").toArray()) {
    LearnRun run = learn_run_from_json(v.toObject());
    if (!run.outcome.plan_prefix.isEmpty()) {
      run.outcome.plan_prefix = dir + "/" + run.outcome.plan_prefix;
      if (!QFileInfo::exists(run.outcome.plan_prefix + ".safetensors")) {
        *notes << QString("run %1 (%2): its plan %3.safetensors is missing; left out")
                      .arg(run.outcome.run)
                      .arg(run.outcome.method, run.outcome.plan_prefix);
        continue;
      }
    }
    s.runs.push_back(std::move(run));
  }
  return s;
}

QString recovery_session_path() {
  return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/recovery/last.latmix-session";
}

}  // namespace latmix::studio
