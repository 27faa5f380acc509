// The strict readers shared by the use-case results' from_json (result_json.h).
#include "result_json.h"

#include <cmath>
#include <map>
#include <optional>

#include "latmix/error.h"
#include "latmix/quant.h"

namespace latmix::api::detail {

using json = nlohmann::json;

namespace {

const json& null_json() {
  static const json null;
  return null;
}

const json& empty_object() {
  static const json object = json::object();
  return object;
}

}  // namespace

ResultReader::ResultReader(std::string what, std::string path, const json& j, std::initializer_list<const char*> keys)
    : what_(std::move(what)), path_(std::move(path)), j_(&j) {
  if (!j.is_object()) wrong_type(what_, path_.empty() ? "(result)" : path_, "an object", j);
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* k : keys) known = known || key == k;
    if (!known) throw UsageError(what_ + ": unknown key '" + (path_.empty() ? key : path_ + "." + key) + "'");
  }
}

ResultReader ResultReader::object(const char* key, std::initializer_list<const char*> keys) const {
  const auto it = j_->find(key);
  return ResultReader(what_, name(key), it == j_->end() ? empty_object() : *it, keys);
}

void ResultReader::derived_object(const char* key) const {
  const auto it = j_->find(key);
  if (it != j_->end() && !it->is_object()) wrong_type(what_, name(key), "an object", *it);
}

const json& ResultReader::raw(const char* key) const {
  const auto it = j_->find(key);
  return it == j_->end() ? null_json() : *it;
}

json real_json(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

double as_real(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "inf") return kInf;
    if (s == "-inf") return -kInf;
    if (s == "nan") return kNaN;
  }
  throw WrongType{"a number (or \"inf\", \"-inf\", \"nan\")"};
}

std::vector<std::string> as_strings(const json& v) {
  if (!v.is_array()) throw WrongType{"an array of strings"};
  std::vector<std::string> out;
  for (const auto& x : v) {
    if (!x.is_string()) throw WrongType{"an array of strings"};
    out.push_back(x.get<std::string>());
  }
  return out;
}

std::vector<int64_t> as_integers(const json& v) {
  if (!v.is_array()) throw WrongType{"an array of integers"};
  std::vector<int64_t> out;
  for (const auto& x : v) {
    if (!x.is_number_integer()) throw WrongType{"an array of integers"};
    out.push_back(as_integer(x));
  }
  return out;
}

std::vector<double> as_numbers_or(const json& v, double null_value) {
  if (!v.is_array()) throw WrongType{"an array of numbers"};
  std::vector<double> out;
  for (const auto& x : v) {
    if (!x.is_null() && !x.is_number()) throw WrongType{"an array of numbers (null: not finite)"};
    out.push_back(x.is_null() ? null_value : x.get<double>());
  }
  return out;
}

namespace {

std::map<std::string, double> as_metrics(const json& v) {
  if (!v.is_object()) throw WrongType{"an object of numbers"};
  std::map<std::string, double> out;
  for (const auto& [k, x] : v.items()) {
    if (!x.is_null() && !x.is_number()) throw WrongType{"an object of numbers"};
    out[k] = x.is_null() ? kNaN : x.get<double>();
  }
  return out;
}

}  // namespace

TaskResult read_task_result(const std::string& what, const std::string& path, const json& j) {
  const ResultReader r(what, path, j, {"task", "metrics", "stderr", "items", "convention", "seconds"});
  TaskResult t;
  r.get("task", t.task, as_string);
  r.get("metrics", t.metrics, as_metrics);
  r.get("stderr", t.standard_errors, as_metrics);
  r.get("items", t.items, as_integer);
  r.get("convention", t.convention, as_string);
  r.get("seconds", t.seconds, as_number);
  return t;
}

std::vector<TaskResult> read_task_results(const ResultReader& r, const char* key) {
  std::vector<TaskResult> out;
  r.list(key, out, [&r](const std::string& path, const json& v) { return read_task_result(r.what(), path, v); });
  return out;
}

LearnSettings read_learn_settings(const std::string& what, const std::string& path, const json& j) {
  const ResultReader r(what, path, j,
                       {"method", "quant", "mode", "loss", "steps", "batch", "optimizer", "lr", "momentum",
                        "weight_decay", "warmup", "schedule", "grad_clip", "lambda", "param", "init", "rotation_map",
                        "affine_bias", "validation", "eval_every", "patience", "deployed_check", "seed",
                        "gptq_refresh"});
  LearnSettings s;
  // The names are the parsers' own (latmix::UsageError listing the valid ones for another).
  auto named = [&r](const char* key, auto parse) {
    return [&r, key, parse](const json& v) {
      const std::string text = as_string(v);
      try {
        return parse(text);
      } catch (const UsageError& e) {
        throw UsageError(r.what() + ": key '" + r.name(key) + "': " + e.what());
      }
    };
  };
  r.get("method", s.method, as_string);
  r.get("quant", s.quant, named("quant", [](const std::string& t) { return parse_quant_spec(t); }));
  r.get("mode", s.mode, named("mode", [](const std::string& t) { return parse_learn_mode(t); }));
  r.get("loss", s.loss, named("loss", [](const std::string& t) { return parse_learn_loss(t); }));
  r.get("steps", s.steps, as_integer);
  r.get("batch", s.batch, as_integer);
  r.get("optimizer", s.optimizer, named("optimizer", [](const std::string& t) { return parse_optimizer(t); }));
  r.get("lr", s.lr, as_number);
  r.get("momentum", s.momentum, as_number);
  r.get("weight_decay", s.weight_decay, as_number);
  r.get("warmup", s.warmup, as_number);
  auto one_of = [&r](const char* key, const char* a, const char* b) {
    return [&r, key, a, b](const json& v) {
      const std::string text = as_string(v);
      if (text != a && text != b) {
        throw UsageError(r.what() + ": key '" + r.name(key) + "': expected " + a + " or " + b + ", found '" + text +
                         "'");
      }
      return text == a;
    };
  };
  r.get("schedule", s.cosine, one_of("schedule", "cosine", "constant"));
  r.get("grad_clip", s.grad_clip, as_number);
  r.get("lambda", s.lambda, as_number);
  bool qr = false;
  r.get("param", qr, one_of("param", "qr", "lu"));
  s.param = qr ? AffineTransform::Param::QR : AffineTransform::Param::LU;
  r.get("init", s.init, named("init", [](const std::string& t) { return parse_transform_init(t); }));
  bool exp = false;
  r.get("rotation_map", exp, one_of("rotation_map", "exp", "cayley"));
  s.rotation_map = exp ? RotationTransform::Map::Exp : RotationTransform::Map::Cayley;
  r.get("affine_bias", s.affine_bias, as_bool);
  r.get("validation", s.validation, as_integer);
  r.get("eval_every", s.eval_every, as_integer);
  r.get("patience", s.patience, as_integer);
  r.get("deployed_check", s.deployed_check,
        named("deployed_check", [](const std::string& t) { return parse_deployed_check(t); }));
  r.get("seed", s.seed, as_unsigned);
  r.get("gptq_refresh", s.gptq_refresh, as_integer);
  return s;
}

LearnEvent read_learn_event(const std::string& what, const std::string& path, const json& j) {
  const ResultReader r(what, path, j,
                       {"step", "total", "loss", "terms", "lr", "grad_norm", "seconds", "eta", "layer", "validation"});
  LearnEvent e;
  r.get("step", e.step, as_integer);
  r.get("total", e.total, as_integer);
  r.get("loss", e.loss, number_or(kNaN));
  r.get("terms", e.terms, [](const json& v) {
    if (!v.is_object()) throw WrongType{"an object of numbers"};
    std::vector<std::pair<std::string, double>> out;
    for (const auto& [k, x] : v.items()) {
      if (!x.is_null() && !x.is_number()) throw WrongType{"an object of numbers"};
      out.emplace_back(k, x.is_null() ? kNaN : x.get<double>());
    }
    return out;
  });
  r.get("lr", e.lr, as_number);
  r.get("grad_norm", e.grad_norm, number_or(kNaN));
  r.get("seconds", e.seconds, as_number);
  r.get("eta", e.eta, as_number);
  r.get("layer", e.layer, as_integer);
  r.get("validation", e.validation, [](const json& v) { return std::optional<double>(number_or(kNaN)(v)); });
  return e;
}

json conditions_json(const std::vector<std::pair<std::string, double>>& conditions) {
  json out = json::array();
  for (const auto& [name, value] : conditions) out.push_back({{"name", name}, {"value", value}});
  return out;
}

std::vector<std::pair<std::string, double>> read_conditions(const ResultReader& r, const char* key) {
  std::vector<std::pair<std::string, double>> out;
  r.list(key, out, [&r](const std::string& path, const json& v) {
    const ResultReader c(r.what(), path, v, {"name", "value"});
    std::pair<std::string, double> p{"", 0.0};
    c.get("name", p.first, as_string);
    c.get("value", p.second, number_or(kInf));
    return p;
  });
  return out;
}

std::vector<std::pair<int64_t, double>> read_validation_curve(const ResultReader& r, const char* key) {
  std::vector<std::pair<int64_t, double>> out;
  r.list(key, out, [&r](const std::string& path, const json& v) {
    const ResultReader c(r.what(), path, v, {"step", "loss"});
    std::pair<int64_t, double> p{0, 0.0};
    c.get("step", p.first, as_integer);
    c.get("loss", p.second, number_or(kNaN));
    return p;
  });
  return out;
}

}  // namespace latmix::api::detail
