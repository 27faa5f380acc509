// latmix --engine URL jobs ... | files | download: the jobs and files of a `latmix serve` engine (issue 19).
#include <cstdio>
#include <ctime>
#include <iostream>

#include "commands.h"
#include "commands_stats.h"
#include "console.h"
#include "latmix/error.h"
#include "remote.h"
#include "result_text.h"

namespace latmix::cli {

namespace {

using json = nlohmann::json;

const serve::RemoteEngine& engine_or_refuse(const std::string& command) {
  const serve::RemoteEngine* engine = remote_engine();
  if (!engine) throw UsageError("latmix " + command + ": needs --engine URL (latmix --engine URL " + command + " ...)");
  return *engine;
}

std::string clock_time(double epoch) {
  if (epoch <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(epoch);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

int run_jobs_list(const Args& args) {
  const json jobs = engine_or_refuse("jobs list").jobs();
  if (args.flag("json")) {
    std::cout << jobs.dump(2) << "\n";
    return 0;
  }
  std::printf("%-16s  %-13s  %-9s  %-8s  %-8s  %s\n", "job", "task", "state", "queued", "ended", "progress / error");
  for (const json& j : jobs.at("jobs")) {
    std::string state = j.at("state").get<std::string>();
    if (state == "queued") state += " #" + std::to_string(j.at("position").get<int64_t>());
    std::string detail = j.at("error").get<std::string>();
    if (detail.empty() && j.at("progress").is_object()) {
      const json& p = j.at("progress");
      detail = p.at("stage").get<std::string>() + " " + std::to_string(p.at("done").get<int64_t>()) + "/" +
               std::to_string(p.at("total").get<int64_t>());
    }
    std::printf("%-16s  %-13s  %-9s  %-8s  %-8s  %s\n", j.at("id").get<std::string>().c_str(),
                j.at("task").get<std::string>().c_str(), state.c_str(), clock_time(j.at("created")).c_str(),
                clock_time(j.at("ended")).c_str(), detail.c_str());
  }
  return 0;
}

// Follows a job from its first event: the progress bars and notes as the command shows them, then its
// result (the command's --json).
int run_jobs_attach(const Args& args) {
  const serve::RemoteEngine& engine = engine_or_refuse("jobs attach");
  const std::string id = args.get("id");
  const json info = engine.job(id);
  ProgressPrinter progress(args.flag("quiet"));
  std::string end_state, error;
  engine.follow(
      id, 0,
      [&](const serve::JobEvent& e) {
        if (e.type == "progress") {
          progress.update(e.data.at("stage").get<std::string>(), e.data.at("done").get<int64_t>(),
                          e.data.at("total").get<int64_t>());
        } else if (e.type == "note" && !args.flag("quiet")) {
          progress.finish();
          std::fprintf(stderr, "%s\n", e.data.at("text").get<std::string>().c_str());
        } else if (e.type == "step" && !args.flag("quiet")) {
          progress.update("learn", e.data.value("step", int64_t{0}), e.data.value("total", int64_t{0}));
        } else if (e.type == "end") {
          end_state = e.data.at("state").get<std::string>();
          error = e.data.at("error").get<std::string>();
        }
        return true;
      },
      interrupt_token());
  progress.finish();
  interrupt_token().check();  // Ctrl-C leaves the job running: attach again later
  if (end_state == "cancelled") throw Cancelled();
  std::cout << engine.result(id).dump(2) << "\n";
  (void)info;
  return 0;
}

// Asks a learning job for a snapshot (statistics of its transforms as they are at its next step end)
// and prints it as `latmix stats` does. The job's model, tokenizer and transforms are used.
int run_jobs_snapshot(const Args& args) {
  const serve::RemoteEngine& engine = engine_or_refuse("jobs snapshot");
  const std::string id = args.get("id");
  json request = api::to_json(statistics_request_from_args(args));
  for (const char* key : {"model", "tokenizer", "transform", "transforms"}) {
    if (!args.has(key)) request.erase(key);
  }
  const int64_t after = engine.job(id).at("events").get<int64_t>();
  const int64_t number = engine.snapshot(id, request, "cli").at("snapshot").get<int64_t>();
  ProgressPrinter progress(args.flag("quiet"));
  if (!args.flag("quiet")) std::fprintf(stderr, "snapshot %lld asked: taken at the job's next step end\n", static_cast<long long>(number));
  json event;
  engine.follow(
      id, after,
      [&](const serve::JobEvent& e) {
        if (e.type == "progress" && e.data.at("stage").get<std::string>() != "learn") {
          progress.update(e.data.at("stage").get<std::string>(), e.data.at("done").get<int64_t>(),
                          e.data.at("total").get<int64_t>());
        }
        if (e.type == "snapshot" && e.data.value("snapshot", int64_t{0}) == number) {
          event = e.data;
          return false;
        }
        return true;
      },
      interrupt_token());
  progress.finish();
  interrupt_token().check();
  if (event.is_null()) throw Error("job " + id + " ended without answering snapshot " + std::to_string(number));
  if (event.contains("error")) {
    throw Error("snapshot " + std::to_string(number) + " of job " + id + ": " + event.at("error").get<std::string>());
  }
  const json result = engine.snapshot_result(id, number);
  if (args.flag("json")) {
    std::cout << result.dump(1) << "\n";
    return 0;
  }
  std::printf("snapshot %lld of job %s, after step %lld\n", static_cast<long long>(number), id.c_str(),
              static_cast<long long>(event.value("step", int64_t{0})));
  std::printf("%s", format_stats_text(api::statistics_result_from_json(result)).c_str());
  return 0;
}

int run_jobs_action(const Args& args, const std::string& verb) {
  const serve::RemoteEngine& engine = engine_or_refuse("jobs " + verb);
  const std::string id = args.get("id");
  json info;
  if (verb == "cancel") info = engine.cancel(id);
  else if (verb == "pause") info = engine.pause(id);
  else if (verb == "resume") info = engine.resume(id);
  else {
    engine.remove(id);
    std::printf("removed job %s\n", id.c_str());
    return 0;
  }
  std::printf("job %s (%s): %s\n", id.c_str(), info.at("task").get<std::string>().c_str(),
              info.at("state").get<std::string>().c_str());
  return 0;
}

int run_files(const Args& args) {
  const json listing = engine_or_refuse("files").files(args.get("path"));
  if (args.flag("json")) {
    std::cout << listing.dump(2) << "\n";
    return 0;
  }
  if (!listing.at("path").get<std::string>().empty()) std::printf("%s:\n", listing.at("path").get<std::string>().c_str());
  for (const json& e : listing.at("entries")) {
    const bool folder = e.at("kind") == "folder";
    std::printf("%12s  %s%s\n", folder ? "" : std::to_string(e.value("bytes", int64_t{0})).c_str(),
                e.at("name").get<std::string>().c_str(), folder ? "/" : "");
  }
  return 0;
}

int run_download(const Args& args) {
  const serve::RemoteEngine& engine = engine_or_refuse("download");
  ProgressPrinter progress(args.flag("quiet"));
  JobControl job;
  job.cancel = interrupt_token();
  job.progress = progress.callback();
  engine.download(args.get("path"), args.get("out"), job);
  progress.finish();
  std::printf("downloaded %s to %s\n", args.get("path").c_str(), args.get("out").c_str());
  return 0;
}

OptionSpec id_option() { return {"id", "JOB", "the job's id (latmix --engine URL jobs list)", "", true}; }

std::vector<OptionSpec> snapshot_options() {
  std::vector<OptionSpec> options = {id_option()};
  for (OptionSpec o : statistics_options()) {
    if (o.name == "model") o.required = false;
    options.push_back(std::move(o));
  }
  return options;
}

}  // namespace

std::vector<Command> remote_commands() {
  const std::string needs = "\nNeeds --engine URL before the command (docs/remote.md).";
  return {
      {{"jobs list", "List the jobs of an engine (latmix --engine URL jobs list).",
        "Every job the engine keeps: id, task, state (queued with its position, running, paused, done, failed,\n"
        "cancelled), when it was queued and ended, its progress or its error." + needs,
        {}},
       run_jobs_list},
      {{"jobs attach", "Follow a job of an engine to its end and print its result.",
        "Reads the job's events from the first (a learning job's curve so far, then live) with the progress\n"
        "bars and notes, then prints the result as the command's --json does. Ctrl-C detaches and leaves the\n"
        "job running." + needs,
        {id_option()}},
       run_jobs_attach},
      {{"jobs snapshot", "Statistics of a learning job's transforms as they are now (the heatmap, mid-run).",
        "Asks a running or paused learn job of an engine for the statistics of `latmix stats` with the\n"
        "transforms it has learned so far: the job computes them at its next step end (at once when paused)\n"
        "on the model it holds, then goes on. The model, tokenizer and transforms are the job's: leave\n"
        "--model, --transform and --transforms out. Prints what `latmix stats` prints (--json: its result)." + needs,
        snapshot_options()},
       run_jobs_snapshot},
      {{"jobs cancel", "Cancel a job of an engine.", "A queued job is dropped; a running one stops at its next check." + needs,
        {id_option()}},
       [](const Args& a) { return run_jobs_action(a, "cancel"); }},
      {{"jobs pause", "Pause a learning job of an engine between steps.", "learn, compare and export jobs pause." + needs,
        {id_option()}},
       [](const Args& a) { return run_jobs_action(a, "pause"); }},
      {{"jobs resume", "Resume a paused job of an engine.", needs.substr(1), {id_option()}},
       [](const Args& a) { return run_jobs_action(a, "resume"); }},
      {{"jobs remove", "Forget an ended job of an engine (its result too).", needs.substr(1), {id_option()}},
       [](const Args& a) { return run_jobs_action(a, "remove"); }},
      {{"files", "List a folder of an engine's roots.",
        "Without --path: the roots (latmix serve --root). Paths are the server's." + needs,
        {{"path", "DIR", "the folder", "", false}}},
       run_files},
      {{"download", "Copy a file of an engine's roots here (an export's .zip bundle).",
        "Written atomically to --out." + needs,
        {{"path", "FILE", "the file on the server", "", true}, {"out", "FILE", "where to write it here", "", true}}},
       run_download},
  };
}

/// The commands that only run against an engine.
bool remote_only_command(const std::string& name) {
  return name.rfind("jobs ", 0) == 0 || name == "files" || name == "download";
}

}  // namespace latmix::cli
