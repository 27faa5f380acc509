#include "session_file.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QStandardPaths>

#include <cmath>

#include <nlohmann/json.hpp>

#include "latmix/api/learn.h"
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

QJsonObject session_json(const LearnRequest& r) {
  // The engine's request JSON (latmix/api/learn.h), every knob included.
  return QJsonDocument::fromJson(QByteArray::fromStdString(api::to_json(r).dump())).object();
}

namespace {

// Sessions written before the engine's request (session 6 and earlier): the Learn tab's fields of
// then, where an empty name meant the method's default and samples / seqlen were always set.
LearnRequest legacy_learn_request(const QJsonObject& o) {
  LearnRequest r;
  auto text = [&o](const char* key, const std::string& fallback) {
    return o.value(key).toString(QString::fromStdString(fallback)).toStdString();
  };
  auto name = [&o](const char* key) {
    const QString v = o.value(key).toString();
    return v.isEmpty() ? std::nullopt : std::optional<std::string>(v.toStdString());
  };
  auto count = [&o](const char* key) {
    return o.contains(key) ? std::optional<int64_t>(static_cast<int64_t>(o.value(key).toDouble())) : std::nullopt;
  };
  auto number = [&o](const char* key) {
    return o.contains(key) ? std::optional<double>(o.value(key).toDouble()) : std::nullopt;
  };
  r.method = text("method", r.method);
  r.quant = text("quant", r.quant);
  r.calib = text("calib", r.calib);
  r.samples = count("samples");
  r.seqlen = count("seqlen");
  r.seed = o.value("seed").toString("0").toULongLong();
  r.optimizer = name("optimizer");
  r.schedule = name("schedule");
  r.init = name("init");
  r.steps = count("steps");
  r.batch = count("batch");
  r.lr = number("lr");
  r.lambda = number("lambda");
  r.warmup = number("warmup");
  r.grad_clip = number("grad_clip");
  r.validation = count("validation");
  r.eval_every = count("eval_every");
  r.patience = count("patience");
  r.deployed_check = name("deployed_check");
  return r;
}

}  // namespace

LearnRequest learn_request_from_session_json(const QJsonObject& o) {
  // The old format is told by its seed, a string (the engine's request has a number).
  if (o.value("seed").isString()) return legacy_learn_request(o);
  const QByteArray text = QJsonDocument(o).toJson(QJsonDocument::Compact);
  return api::learn_request_from_json(nlohmann::json::parse(text.toStdString()));
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
                     {"request", session_json(run.request)},
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
  run.request = learn_request_from_session_json(j.value("request").toObject());
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
                         {"learn", session_json(session.learn)},
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
  s.current_model = root.value("current_model").toString();
  s.current_run = root.value("current_run").toInt();
  std::vector<LearnRun> runs;
  try {  // the learn requests (the Learn tab's and each run's) are read strictly
    s.learn = learn_request_from_session_json(root.value("learn").toObject());
    for (const QJsonValue& v : root.value("runs").toArray()) runs.push_back(learn_run_from_json(v.toObject()));
  } catch (const Error& e) {
    *error = path + ": " + QString::fromUtf8(e.what());
    return StudioSession();
  }
  const QString dir = QFileInfo(path).absolutePath();
  for (LearnRun& run : runs) {
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
