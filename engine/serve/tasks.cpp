// The server's use cases by name (latmix/serve/tasks.h).
#include "latmix/serve/tasks.h"

#include <utility>

#include "latmix/api/analyze.h"
#include "latmix/api/block.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/export.h"
#include "latmix/api/learn.h"
#include "latmix/api/model.h"
#include "latmix/api/statistics.h"
#include "latmix/error.h"
#include "latmix/model_files.h"

namespace latmix::serve {

using json = nlohmann::json;

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"describe", "statistics", "explain_block", "analyze", "evaluate",
                                                 "compare",  "learn",      "export",        "verify"};
  return names;
}

const std::vector<std::string>& pausable_tasks() {
  static const std::vector<std::string> names = {"learn", "compare", "export"};
  return names;
}

namespace {

const std::vector<std::pair<std::string, std::string>>& command_table() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"describe", "info"},   {"statistics", "stats"}, {"explain_block", "mx block"}, {"analyze", "analyze"},
      {"evaluate", "eval"},   {"compare", "compare"},  {"learn", "learn"},            {"export", "export"},
      {"verify", "verify"}};
  return table;
}

// Takes a key the task adds to an api/ request out of `request` (the api/ parser is strict).
template <typename T>
T take(json& request, const std::string& task, const std::string& key, T fallback) {
  if (!request.contains(key)) return fallback;
  const json value = request[key];
  request.erase(key);
  if (value.is_null()) return fallback;
  try {
    return value.get<T>();
  } catch (const json::exception&) {
    throw UsageError(task + " request: key '" + key + "': expected a " +
                     (std::is_same<T, bool>::value          ? "boolean"
                      : std::is_same<T, std::string>::value ? "string"
                                                            : "whole number") +
                     ", found " + value.dump());
  }
}

// A learn request's "nproc": the processes that learn together (1 to 1024).
int take_nproc(json& request, const std::string& task) {
  if (request.contains("nproc") && !request["nproc"].is_null() && !request["nproc"].is_number_integer()) {
    throw UsageError(task + " request: key 'nproc': expected a whole number, found " + request["nproc"].dump());
  }
  const auto nproc = take<int64_t>(request, task, "nproc", 1);
  if (nproc < 1 || nproc > 1024) {
    throw UsageError(task + " request: key 'nproc': expected 1 to 1024, found " + std::to_string(nproc));
  }
  return static_cast<int>(nproc);
}

// auto: mapped on the CPU, in memory on CUDA (as `latmix --weights auto`).
bool mapped_for(const std::string& weights, const std::string& device) {
  if (weights != "auto" && weights != "mapped" && weights != "memory")
    throw UsageError("--weights: expected auto, mapped or memory, found '" + weights + "'");
  if (weights == "auto") return parse_device(device).is_cpu();
  return weights == "mapped";
}

json step_json(const LearnEvent& e) { return e.to_json(); }

}  // namespace

std::string task_command(const std::string& task) {
  for (const auto& [t, c] : command_table()) {
    if (t == task) return c;
  }
  return "";
}

std::string command_task(const std::string& command) {
  for (const auto& [t, c] : command_table()) {
    if (c == command) return t;
  }
  return "";
}

void set_task_device(const std::string& task, json& request, const std::string& device) {
  if (!request.is_object()) return;
  // A device of the wrong type is left for the request's strict parser to refuse.
  const auto set = [&](json& r) {
    if (r.is_object() && r.contains("device") && r["device"].is_string()) r["device"] = device;
  };
  if (task == "compare") {
    if (request.contains("learning")) set(request["learning"]);
  } else if (task != "describe" && task != "verify") {
    set(request);
  }
}

void check_task_request(const std::string& task, const json& original) {
  if (!original.is_object()) throw UsageError(task + " request: expected a JSON object");
  json request = original;
  if (task == "describe") {
    take<bool>(request, task, "overview", false);
    mapped_for(take<std::string>(request, task, "weights", "auto"), "cpu");
    api::describe_request_from_json(request);
  } else if (task == "statistics") {
    api::check_statistics_request(api::statistics_request_from_json(request));
  } else if (task == "explain_block") {
    mapped_for(take<std::string>(request, task, "weights", "auto"), "cpu");
    api::explain_block_request_from_json(request);
  } else if (task == "analyze") {
    api::analyze_request_from_json(request);
  } else if (task == "evaluate") {
    api::evaluate_request_from_json(request);
  } else if (task == "compare") {
    api::compare_request_from_json(request);
  } else if (task == "learn") {
    take_nproc(request, task);
    api::learn_request_from_json(request);
  } else if (task == "export") {
    api::check_export_request(api::export_request_from_json(request));
  } else if (task == "verify") {
    api::verify_request_from_json(request);
  } else {
    throw UsageError("unknown task '" + task + "' (tasks: describe, statistics, explain_block, analyze, evaluate, "
                     "compare, learn, export, verify)");
  }
}

struct TaskHost::Open {
  std::string key;
  std::shared_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

json TaskHost::snapshot(const json& learn, const json& statistics, const TransformPlan& plan, int64_t step,
                        const JobControl& job) {
  if (!open_) throw Error("snapshot: the learning job's model is not open");
  api::StatisticsRequest r = api::statistics_request_from_json(statistics);
  r.transform = "none";
  r.transforms.clear();
  r.transform_name = (learn.is_object() ? learn.value("method", std::string("learned")) : std::string("learned")) +
                     ", step " + std::to_string(step);
  return api::to_json(api::run_statistics(r, plan, *open_->model, *open_->tokenizer, job));
}

TaskHost::TaskHost(TaskEnvironment environment) : environment_(std::move(environment)) {
  parse_device(environment_.device);  // a bad --device fails at start
}

TaskHost::~TaskHost() = default;

void TaskHost::close_model() { open_.reset(); }

std::shared_ptr<TaskHost::Open> TaskHost::open(const std::string& model, const std::string& tokenizer,
                                               const std::string& dtype, bool mapped, const JobControl& job) {
  const std::string key = model + "\n" + tokenizer + "\n" + environment_.device + "\n" + dtype + "\n" +
                          (mapped ? "mapped" : "memory");
  if (open_ && open_->key == key) return open_;
  open_.reset();  // the old model's memory is given back before the new one loads
  LoadOptions options;
  options.dtype = parse_compute_dtype(dtype);
  options.device = parse_device(environment_.device);
  options.mapped = mapped;
  options.job = job;
  auto o = std::make_shared<Open>();
  o->key = key;
  o->model = std::make_shared<Model>(load_model(model, options));
  o->tokenizer = load_model_tokenizer(model, tokenizer, static_cast<int32_t>(o->model->config().vocab_size));
  open_ = o;
  return o;
}

json TaskHost::run(const std::string& task, json request, const TaskEvents& events) {
  if (!request.is_object()) throw UsageError(task + " request: expected a JSON object");
  const std::string& device = environment_.device;
  set_task_device(task, request, device);
  LearnControl learn_control;
  learn_control.job = events.job;
  learn_control.pause = events.pause;
  if (events.on_note) learn_control.on_note = events.on_note;
  if (events.on_step) learn_control.on_step = [&events](const LearnEvent& e) { events.on_step(step_json(e)); };

  if (task == "describe") {
    const bool overview = take<bool>(request, task, "overview", false);
    const std::string weights = take<std::string>(request, task, "weights", "auto");
    const api::DescribeRequest r = api::describe_request_from_json(request);
    api::ModelDescription d = api::describe_model(r);
    if (overview) {
      auto o = open(r.model, r.tokenizer, "fp32", mapped_for(weights, device), events.job);
      d.overview = api::weight_overview(*o->model, events.job);
    }
    return api::to_json(d);
  }
  if (task == "statistics") {
    const api::StatisticsRequest r = api::statistics_request_from_json(request);
    api::check_statistics_request(r);
    auto o = open(r.model, r.tokenizer, r.dtype, mapped_for(r.weights, device), events.job);
    return api::to_json(api::run_statistics(r, *o->model, *o->tokenizer, events.job));
  }
  if (task == "explain_block") {
    const std::string weights = take<std::string>(request, task, "weights", "auto");
    api::ExplainBlockRequest r = api::explain_block_request_from_json(request);
    if (r.sample.empty() && r.text.empty() && r.ids.empty()) r.sample = environment_.bundled_sample;
    auto o = open(r.model, r.tokenizer, r.dtype, mapped_for(weights, device), events.job);
    return api::to_json(api::run_explain_block(r, *o->model, *o->tokenizer, events.job));
  }
  if (task == "analyze") {
    const api::AnalyzeRequest r = api::analyze_request_from_json(request);
    auto o = open(r.model, r.tokenizer, r.dtype, mapped_for(r.weights, device), events.job);
    return api::to_json(api::run_analyze(r, *o->model, *o->tokenizer, events.job));
  }
  if (task == "evaluate") {
    const api::EvaluateRequest r = api::evaluate_request_from_json(request);
    api::EvaluateControl control;
    control.job = events.job;
    control.bundled_sample = environment_.bundled_sample;
    control.on_note = learn_control.on_note;
    auto o = open(r.model, r.tokenizer, r.dtype, mapped_for(r.weights, device), events.job);
    return api::to_json(api::run_evaluate(r, *o->model, *o->tokenizer, control));
  }
  if (task == "compare") {
    const api::CompareRequest r = api::compare_request_from_json(request);
    auto o = open(r.learning.model, r.learning.tokenizer, r.learning.dtype, false, events.job);
    return api::to_json(api::run_compare(r, *o->model, *o->tokenizer, learn_control));
  }
  if (task == "learn") {
    const int nproc = take_nproc(request, task);
    const api::LearnRequest r = api::learn_request_from_json(request);
    std::unique_ptr<Ranks> ranks;
    if (nproc > 1 && !find_method(r.method).learned) {
      if (events.on_note)
        events.on_note("note: nproc " + std::to_string(nproc) + ": nothing is learned, so one process does it all");
    } else if (nproc > 1) {
      if (!environment_.start_ranks) {
        throw UsageError("learn request: nproc " + std::to_string(nproc) + ": this server cannot start processes");
      }
      ranks = environment_.start_ranks(request, nproc, events.job.cancel);
      learn_control.group = &ranks->group();
    }
    // Snapshots (JobQueue::snapshot) are taken at step ends, where a paused run also holds (with
    // several processes: at the next step's start, all of them).
    events.step_end.attach(learn_control, events.pause);
    try {
      auto o = open(r.model, r.tokenizer, r.dtype, false, events.job);
      json result = api::to_json(api::run_learn(r, *o->model, *o->tokenizer, learn_control));
      if (ranks) ranks->finish();
      return result;
    } catch (const Cancelled&) {
      throw;
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      if (ranks) throw Error(ranks->explain(e.what()));
      throw;
    }
  }
  if (task == "export") {
    const api::ExportRequest r = api::export_request_from_json(request);
    api::check_export_request(r);
    const bool mapped = (r.weights == "auto" || mapped_for(r.weights, device)) && api::export_streams(r);
    auto o = open(r.model, r.tokenizer, r.dtype, mapped, events.job);
    api::ExportControl control;
    control.learn = learn_control;
    control.bundled_sample = environment_.bundled_sample;
    return api::to_json(api::run_export(r, *o->model, *o->tokenizer, control));
  }
  if (task == "verify") {
    const api::VerifyRequest r = api::verify_request_from_json(request);
    return api::to_json(api::run_verify(r, events.job));
  }
  throw UsageError("unknown task '" + task + "' (tasks: describe, statistics, explain_block, analyze, evaluate, "
                   "compare, learn, export, verify)");
}

}  // namespace latmix::serve
