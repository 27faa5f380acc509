// `latmix serve` (engine/serve): path confinement, the job queue, and the server end to end on
// 127.0.0.1 with its client, on the bundled model (issue 19).
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "api_test_support.h"
#include "latmix/api/analyze.h"
#include "latmix/api/block.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/export.h"
#include "latmix/api/learn.h"
#include "latmix/api/model.h"
#include "latmix/api/statistics.h"
#include "latmix/error.h"
#include "latmix/serve/client.h"
#include "latmix/serve/jobs.h"
#include "latmix/serve/roots.h"
#include "latmix/serve/server.h"
#include "latmix/serve/tasks.h"
#include "latmix/transform_fold.h"
#include "test_paths.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using latmix::serve::JobEvent;
using latmix::serve::JobQueue;
using latmix::serve::JobState;
using latmix::serve::PathRefused;
using latmix::serve::Roots;
using latmix::test::kBundledModel;
using latmix::test::kBundledSample;
using latmix::test::source_path;

std::string refused(const std::function<void()>& f) {
  try {
    f();
  } catch (const PathRefused& e) {
    return e.what();
  }
  return "";
}

// Every task's request with its defaults, as JSON.
std::map<std::string, json> default_requests() {
  return {{"describe", latmix::api::to_json(latmix::api::DescribeRequest{})},
          {"statistics", latmix::api::to_json(latmix::api::StatisticsRequest{})},
          {"learn", latmix::api::to_json(latmix::api::LearnRequest{})},
          {"explain_block", latmix::api::to_json(latmix::api::ExplainBlockRequest{})},
          {"analyze", latmix::api::to_json(latmix::api::AnalyzeRequest{})},
          {"evaluate", latmix::api::to_json(latmix::api::EvaluateRequest{})},
          {"compare", latmix::api::to_json(latmix::api::CompareRequest{})},
          {"export", latmix::api::to_json(latmix::api::ExportRequest{})},
          {"verify", latmix::api::to_json(latmix::api::VerifyRequest{})}};
}

// ---- roots --------------------------------------------------------------------------------------------

TEST(ServeRoots, PathsInsideARootAreCanonicalAndOthersAreRefused) {
  const std::string base = latmix::test::temp_dir("serve-roots");
  fs::create_directories(base + "/root/models");
  fs::create_directories(base + "/elsewhere");
  std::ofstream(base + "/elsewhere/secret.txt") << "secret";
  std::ofstream(base + "/root/models/a.txt") << "a";
  fs::create_symlink(base + "/elsewhere", base + "/root/escape");
  fs::create_symlink(base + "/root/models", base + "/root/inside");
  const Roots roots({base + "/root"});
  const std::string root = fs::canonical(base + "/root").string();
  EXPECT_EQ(roots.confine(root + "/models/a.txt", "k"), root + "/models/a.txt");
  EXPECT_EQ(roots.confine("models/a.txt", "k"), root + "/models/a.txt");  // relative: against the first root
  EXPECT_EQ(roots.confine(root, "k"), root);
  EXPECT_EQ(roots.confine(root + "/inside/a.txt", "k"), root + "/models/a.txt");  // a link that stays inside
  EXPECT_EQ(roots.confine(root + "/out/new/run.json", "k"), root + "/out/new/run.json");  // an output to come
  EXPECT_NE(refused([&] { roots.confine(base + "/elsewhere/secret.txt", "key 'data'"); })
                .find("key 'data': '" + base + "/elsewhere/secret.txt' is outside the folders this server serves"),
            std::string::npos);
  EXPECT_NE(refused([&] { roots.confine("../elsewhere/secret.txt", "k"); }), "");
  EXPECT_NE(refused([&] { roots.confine(root + "/models/../../elsewhere/secret.txt", "k"); }), "");
  EXPECT_NE(refused([&] { roots.confine(root + "/escape/secret.txt", "k"); }), "");  // a link leading out
  EXPECT_NE(refused([&] { roots.confine(root + "/nothing/../../elsewhere/x", "k"); }).find("climbs out"),
            std::string::npos);
  EXPECT_NE(refused([&] { roots.confine("/etc/passwd", "k"); }), "");
  EXPECT_NE(refused([&] { roots.confine(root + "x/a", "k"); }), "");  // a sibling whose name starts alike
  EXPECT_THROW(Roots({base + "/missing"}), latmix::UsageError);
  EXPECT_THROW(Roots(std::vector<std::string>{}), latmix::UsageError);
}

TEST(ServeRoots, EveryPathOfARequestIsConfinedAndPrefixFilesToo) {
  const std::string base = latmix::test::temp_dir("serve-request");
  fs::create_directories(base + "/root");
  fs::create_directories(base + "/out");
  fs::create_symlink(base + "/out/plan.json", base + "/root/plan.json");  // PREFIX.json leads out
  const Roots roots({base + "/root"});
  const std::string root = fs::canonical(base + "/root").string();
  json learn = {{"model", "m"}, {"calib", "a.txt,b.txt"}, {"out", "runs/p"}, {"data_dir", ""}, {"method", "rtn"}};
  latmix::serve::confine_request("learn", learn, roots);
  EXPECT_EQ(learn["model"], root + "/m");
  EXPECT_EQ(learn["calib"], root + "/a.txt," + root + "/b.txt");
  EXPECT_EQ(learn["out"], root + "/runs/p");
  EXPECT_EQ(learn["data_dir"], "");   // empty: the server's default
  EXPECT_EQ(learn["method"], "rtn");  // no path
  json gutenberg = {{"calib", "gutenberg"}};
  latmix::serve::confine_request("learn", gutenberg, roots);
  EXPECT_EQ(gutenberg["calib"], "gutenberg");
  json stats = {{"transforms", root + "/plan"}};
  EXPECT_THROW(latmix::serve::confine_request("statistics", stats, roots), PathRefused);
  json block = {{"transform", "hadamard"}};  // a built-in transform, no path
  latmix::serve::confine_request("explain_block", block, roots);
  EXPECT_EQ(block["transform"], "hadamard");
  json eval = {{"tasks", "alice,text:texts/t.txt,wikitext2"}};  // only text: items are paths
  latmix::serve::confine_request("evaluate", eval, roots);
  EXPECT_EQ(eval["tasks"], "alice,text:" + root + "/texts/t.txt,wikitext2");
  json leak = {{"tasks", "frankenstein,text:/etc/passwd"}};
  EXPECT_THROW(latmix::serve::confine_request("compare", leak, roots), PathRefused);
  json compare = {{"learning", {{"model", "/etc"}}}};
  EXPECT_THROW(latmix::serve::confine_request("compare", compare, roots), PathRefused);
  json wrong = {{"model", 3}};
  EXPECT_THROW(latmix::serve::confine_request("describe", wrong, roots), latmix::UsageError);
  json any;
  EXPECT_THROW(latmix::serve::confine_request("nope", any, roots), latmix::UsageError);
}

// Every string key of every task's request is either a path the server confines or one of the
// values below: a request field added later must be classified here, or this fails.
TEST(ServeRoots, EveryStringKeyOfEveryRequestIsClassified) {
  const std::map<std::string, json> requests = default_requests();
  ASSERT_EQ(requests.size(), latmix::serve::task_names().size());
  const std::set<std::string> not_paths = {"device", "dtype", "weights", "sampling", "format", "scale", "round",
                                           "transform", "point", "transform_name", "method", "quant", "optimizer",
                                           "schedule", "param", "init", "rotation_map", "mode", "loss",
                                           "deployed_check", "affine", "blocks", "methods", "tasks", "bos", "as",
                                           "gguf_float", "transforms_source", "split"};
  // Keys whose default is null: numbers and switches left unset.
  const std::set<std::string> unset_numbers = {"layer", "block", "calib_samples", "calib_seqlen", "affine_bias",
                                               "batch", "eval_every", "gptq_refresh", "grad_clip", "kept_layers",
                                               "lambda", "loss_chunk", "lr", "micro_batch", "momentum", "patience",
                                               "recompute", "samples", "seqlen", "steps", "teacher_cache",
                                               "validation", "warmup", "weight_decay"};
  for (const auto& [task, request] : requests) {
    std::set<std::string> paths;
    for (const auto& k : latmix::serve::path_keys(task)) paths.insert(k.key);
    for (const auto& [key, value] : request.items()) {
      if (value.is_string()) {
        EXPECT_TRUE(paths.count(key) || not_paths.count(key)) << task << ": key '" << key << "' is not classified";
      } else if (value.is_null()) {
        EXPECT_TRUE(unset_numbers.count(key) || not_paths.count(key)) << task << ": key '" << key << "' is not classified";
      }
    }
  }
}

// ---- jobs ---------------------------------------------------------------------------------------------

TEST(ServeJobs, JobsRunInOrderWithTheirEventsAndResults) {
  std::atomic<bool> release{false};
  JobQueue jobs(
      [&](const std::string& task, const json& request, const latmix::serve::TaskEvents& events) -> json {
        if (task == "wait") {
          while (!release) {
            events.job.cancel.check();
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }
        if (task == "fail") throw latmix::Error("it broke");
        if (task == "usage") throw latmix::UsageError("--samples: expected 1 or more");
        events.on_note("note " + task);
        events.job.report("stage", 1, 2);
        events.job.report("stage", 2, 2);
        return {{"echo", request}};
      },
      {"learn"});
  const std::string a = jobs.submit("wait", 1);
  const std::string b = jobs.submit("ok", 2);
  const std::string c = jobs.submit("fail", 3);
  const std::string d = jobs.submit("usage", 4);
  const std::string e = jobs.submit("ok", 5);
  while (jobs.info(a)->state != JobState::Running) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(jobs.info(b)->position, 1);
  EXPECT_EQ(jobs.info(e)->position, 4);
  EXPECT_FALSE(jobs.pause(a));  // not a pausable task
  EXPECT_TRUE(jobs.cancel(e));  // queued: dropped at once
  EXPECT_EQ(jobs.info(e)->state, JobState::Cancelled);
  EXPECT_EQ(jobs.info(d)->position, 3);
  EXPECT_FALSE(jobs.result(a));
  release = true;
  bool ended = false;
  std::vector<JobEvent> log;
  while (!ended) {
    const auto batch = jobs.events(d, static_cast<int64_t>(log.size()), std::chrono::milliseconds(500), &ended);
    ASSERT_TRUE(batch);
    log.insert(log.end(), batch->begin(), batch->end());
  }
  EXPECT_EQ(jobs.result(b)->at("echo"), 2);
  EXPECT_EQ(jobs.info(c)->state, JobState::Failed);
  EXPECT_EQ(jobs.info(c)->error, "it broke");
  EXPECT_EQ(jobs.info(c)->error_kind, "error");
  EXPECT_EQ(jobs.info(d)->error_kind, "usage");
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i].seq, static_cast<int64_t>(i) + 1);
  EXPECT_EQ(log.front().type, "state");
  // d was queued behind b and c, and behind a too when the worker had not taken a yet.
  EXPECT_GE(log.front().data["position"].get<int64_t>(), 3);
  EXPECT_LE(log.front().data["position"].get<int64_t>(), 4);
  EXPECT_EQ(log.back().type, "end");
  EXPECT_EQ(log.back().data["state"], "failed");
  // b's log: queued, positions, running, the note, both progress reports, end.
  const auto b_log = *jobs.events(b, 0, std::chrono::milliseconds(0));
  std::vector<std::string> types;
  for (const auto& ev : b_log) types.push_back(ev.type);
  EXPECT_EQ(std::count(types.begin(), types.end(), "note"), 1);
  EXPECT_EQ(std::count(types.begin(), types.end(), "progress"), 2);
  EXPECT_FALSE(jobs.remove("0000000000000000"));
  EXPECT_TRUE(jobs.remove(b));
  EXPECT_FALSE(jobs.info(b));
  EXPECT_FALSE(jobs.events(b, 0, std::chrono::milliseconds(0)));
}

// Every task with a device runs on the server's (a client does not know the server's GPUs), and a
// learn request's "nproc" is a whole number 1-1024 that a server without a way to start processes refuses.
TEST(ServeTasks, TasksRunOnTheServersDeviceAndNprocIsCheckedAtSubmission) {
  for (auto [task, request] : default_requests()) {
    latmix::serve::set_task_device(task, request, "cuda:3");
    if (task == "compare") {
      EXPECT_EQ(request["learning"]["device"], "cuda:3");
    } else if (task == "describe" || task == "verify") {
      EXPECT_FALSE(request.contains("device")) << task;
    } else {
      EXPECT_EQ(request["device"], "cuda:3") << task;
    }
  }
  json wrong = {{"device", 7}};
  latmix::serve::set_task_device("analyze", wrong, "cuda:3");
  EXPECT_EQ(wrong["device"], 7);  // left for the strict parser to refuse
  json learn = default_requests()["learn"];
  learn["nproc"] = 2;
  EXPECT_NO_THROW(latmix::serve::check_task_request("learn", learn));
  const auto refusal = [&](const json& nproc) {
    json r = learn;
    r["nproc"] = nproc;
    try {
      latmix::serve::check_task_request("learn", r);
    } catch (const latmix::UsageError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(refusal(0), "learn request: key 'nproc': expected 1 to 1024, found 0");
  EXPECT_EQ(refusal(1025), "learn request: key 'nproc': expected 1 to 1024, found 1025");
  EXPECT_EQ(refusal("2"), "learn request: key 'nproc': expected a whole number, found \"2\"");
  EXPECT_EQ(refusal(2.5), "learn request: key 'nproc': expected a whole number, found 2.5");
  // A server that cannot start processes (no TaskEnvironment::start_ranks) refuses before it loads anything.
  latmix::serve::TaskHost host(latmix::serve::TaskEnvironment{});
  learn["model"] = "/nonexistent";
  try {
    host.run("learn", learn, latmix::serve::TaskEvents{});
    ADD_FAILURE() << "ran";
  } catch (const latmix::UsageError& e) {
    EXPECT_STREQ(e.what(), "learn request: nproc 2: this server cannot start processes");
  }
}

TEST(ServeJobs, APausedLearningJobHoldsUntilResumedOrCancelled) {
  std::atomic<int> steps{0};
  JobQueue jobs(
      [&](const std::string&, const json&, const latmix::serve::TaskEvents& events) -> json {
        for (int i = 0; i < 1000000; ++i) {
          events.pause.wait(events.job.cancel);
          events.job.cancel.check();
          ++steps;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return nullptr;
      },
      {"learn"});
  const std::string id = jobs.submit("learn", json::object());
  while (steps < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(jobs.pause(id));
  EXPECT_EQ(jobs.info(id)->state, JobState::Paused);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int held = steps;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LE(steps - held, 1);
  ASSERT_TRUE(jobs.resume(id));
  while (steps < held + 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(jobs.cancel(id));
  bool ended = false;
  while (!ended) jobs.events(id, 0, std::chrono::milliseconds(200), &ended);
  EXPECT_EQ(jobs.info(id)->state, JobState::Cancelled);
  EXPECT_FALSE(jobs.cancel(id));
}

TEST(ServeJobs, SnapshotsAreTakenAtStepEndsAndOnesLeftWhenTheJobEndsSayWhy) {
  std::atomic<int> phase{0};
  JobQueue jobs(
      [&](const std::string& task, const json&, const latmix::serve::TaskEvents& events) -> json {
        while (phase == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (task == "learn" && phase == 1) {  // two steps, each ending where snapshots are taken
          while (phase == 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the test pauses first
          for (int64_t step = 1; step <= 2; ++step) {
            events.step_end.set_step(step);
            events.step_end.serve(latmix::TransformPlan(), events.job, events.pause);
          }
        }
        return nullptr;
      },
      {"learn"}, 64,
      [](const json& learn, const json& statistics, const latmix::TransformPlan&, int64_t step,
         const latmix::JobControl&) -> json {
        if (statistics.value("fail", false)) throw latmix::Error("no such text");
        return {{"step", step}, {"method", learn["method"]}};
      });
  const std::string other = jobs.submit("statistics", json::object());
  const std::string learn = jobs.submit("learn", {{"method", "latmix"}});
  EXPECT_FALSE(jobs.snapshot(learn, json::object(), "queued"));  // not running yet
  while (jobs.info(other)->state != JobState::Running) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(jobs.snapshot(other, json::object(), "not learning"));
  phase = 1;
  while (jobs.info(learn)->state != JobState::Running) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(jobs.pause(learn));  // holds at its first step end
  phase = 2;
  ASSERT_EQ(jobs.snapshot(learn, json::object(), "a"), std::optional<int64_t>(1));
  ASSERT_EQ(jobs.snapshot(learn, {{"fail", true}}, "b"), std::optional<int64_t>(2));
  std::vector<json> answers;
  int64_t after = 0;
  while (answers.size() < 2) {
    const auto batch = jobs.events(learn, after, std::chrono::milliseconds(500));
    ASSERT_TRUE(batch);
    for (const JobEvent& e : *batch) {
      after = e.seq;
      if (e.type == "snapshot") answers.push_back(e.data);
    }
  }
  EXPECT_EQ(answers[0], json({{"snapshot", 1}, {"tag", "a"}, {"step", 1}}));
  EXPECT_EQ(answers[1]["error"], "no such text");
  EXPECT_EQ(*jobs.snapshot_result(learn, 1), json({{"step", 1}, {"method", "latmix"}}));
  EXPECT_FALSE(jobs.snapshot_result(learn, 2));  // failed: nothing kept
  ASSERT_TRUE(jobs.resume(learn));
  bool ended = false;
  while (!ended) jobs.events(learn, 0, std::chrono::milliseconds(200), &ended);

  // A learn job that ends before any step end answers what was asked with an error.
  phase = 0;
  const std::string short_job = jobs.submit("learn", {{"method", "latmix"}});
  while (jobs.info(short_job)->state != JobState::Running) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(jobs.snapshot(short_job, json::object(), "late"), std::optional<int64_t>(1));
  phase = 3;
  ended = false;
  std::vector<JobEvent> log;
  while (!ended) {
    const auto batch = jobs.events(short_job, static_cast<int64_t>(log.size()), std::chrono::milliseconds(200), &ended);
    log.insert(log.end(), batch->begin(), batch->end());
  }
  ASSERT_GE(log.size(), 2u);
  const JobEvent& answer = log[log.size() - 2];
  EXPECT_EQ(answer.type, "snapshot");
  EXPECT_EQ(answer.data["tag"], "late");
  EXPECT_NE(answer.data.value("error", std::string()).find("before its next step"), std::string::npos) << answer.data;
  EXPECT_FALSE(jobs.snapshot(short_job, json::object(), "after the end"));
}

// ---- the server ---------------------------------------------------------------------------------------

class ServeServer : public ::testing::Test {
 protected:
  static constexpr const char* kToken = "test-token-0123456789";

  void SetUp() override {
    out_ = latmix::test::temp_dir("serve-out");
    latmix::serve::ServeOptions o;
    o.port = 0;
    o.roots = {source_path("resources"), out_};
    o.token = kToken;
    o.bundled_sample = source_path(kBundledSample);
    o.max_request_bytes = 64 * 1024;
    server_ = std::make_unique<latmix::serve::Server>(o);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
    url_ = "http://127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
  }
  latmix::serve::RemoteEngine client(const std::string& token = kToken) const { return {url_, token}; }

  std::string out_, url_;
  int port_ = 0;
  std::unique_ptr<latmix::serve::Server> server_;
  std::thread thread_;
};

// A result's JSON without its timings (seconds, elapsed: they differ from run to run).
json untimed(json j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (it.key() == "seconds" || it.key() == "elapsed" || it.key() == "elapsed_seconds") {
        it = j.erase(it);
      } else {
        *it = untimed(*it);
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (auto& v : j) v = untimed(v);
  }
  return j;
}

TEST_F(ServeServer, StatisticsAndDescribeGiveTheInProcessResult) {
  latmix::api::StatisticsRequest r;
  r.model = source_path(kBundledModel);
  r.data = source_path(kBundledSample);
  r.samples = 2;
  r.seqlen = 32;
  r.transform = "hadamard";
  r.point = "residual,mlp_in";
  r.weights = "memory";
  const auto engine = client();
  std::vector<std::string> stages;
  latmix::serve::RemoteCallbacks callbacks;
  callbacks.on_event = [&](const JobEvent& e) {
    if (e.type == "progress") stages.push_back(e.data["stage"]);
  };
  const json remote = engine.run("statistics", latmix::api::to_json(r), callbacks);
  const json local = latmix::api::to_json(
      latmix::api::run_statistics(r, latmix::test::bundled_model(), latmix::test::bundled_tokenizer()));
  EXPECT_EQ(untimed(remote), untimed(local));
  EXPECT_FALSE(stages.empty());
  const json described = engine.run("describe", {{"model", r.model}}, {});
  EXPECT_EQ(described, latmix::api::to_json(latmix::api::describe_model({r.model, ""})));
  const json facts = engine.engine();
  EXPECT_EQ(facts["device"], "cpu");
  EXPECT_EQ(facts["tasks"], json(latmix::serve::task_names()));
  EXPECT_EQ(facts["roots"].size(), 2u);
}

TEST_F(ServeServer, AWrongOrMissingTokenIsRefused) {
  try {
    client("wrong").engine();
    ADD_FAILURE() << "no error";
  } catch (const latmix::serve::RemoteError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_NE(std::string(e.what()).find("refused the token"), std::string::npos) << e.what();
  }
  httplib::Client raw("127.0.0.1", port_);
  const auto r = raw.Get("/v1/jobs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("Authorization: Bearer"), std::string::npos);
  EXPECT_THROW(latmix::serve::RemoteEngine(url_, ""), latmix::UsageError);
}

TEST_F(ServeServer, PathsOutsideTheRootsAreRefusedBeforeAnyJob) {
  const auto engine = client();
  latmix::test::expect_usage_error([&] { engine.submit("describe", {{"model", "/etc"}}); },
                                   "key 'model': '/etc' is outside the folders this server serves");
  latmix::test::expect_usage_error([&] { engine.submit("describe", {{"model", "../tests"}}); }, "is outside");
  latmix::test::expect_usage_error([&] { engine.files("/"); }, "is outside");
  latmix::test::expect_usage_error([&] { engine.download("/etc/passwd", out_ + "/p"); }, "is outside");
  EXPECT_FALSE(fs::exists(out_ + "/p"));
  EXPECT_EQ(engine.jobs()["jobs"].size(), 0u);
  // Inside: listed and downloaded.
  const json listing = engine.files(source_path("resources/calibration"));
  ASSERT_EQ(listing["entries"].size(), 1u);
  EXPECT_EQ(listing["entries"][0]["name"], "pride_and_prejudice_ch1-6.txt");
  engine.download(source_path(kBundledSample), out_ + "/copy.txt");
  std::ifstream a(source_path(kBundledSample)), b(out_ + "/copy.txt");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {}));
}

TEST_F(ServeServer, ItSurvivesMalformedRequestsWithAClearErrorEach) {
  static const char kNulBody[] = "{\"task\":\"describe\",\"request\":{\"model\":\"a\0b\"}}";
  httplib::Client raw("127.0.0.1", port_);
  raw.set_bearer_token_auth(kToken);
  const std::string valid = json{{"task", "describe"}, {"request", {{"model", "models/gutenberg-llama-6M"}}}}.dump();
  std::vector<std::string> bodies = {"", "{", "[]", "null", "1", "\"x\"", "{\"task\":1,\"request\":{}}",
                                     "{\"task\":\"describe\"}", "{\"task\":\"nope\",\"request\":{}}",
                                     "{\"task\":\"describe\",\"request\":[]}",
                                     "{\"task\":\"describe\",\"request\":{\"model\":7}}",
                                     "{\"task\":\"describe\",\"request\":{\"modell\":\"x\"}}",
                                     "{\"task\":\"describe\",\"request\":{},\"extra\":1}",
                                     "{\"task\":\"statistics\",\"request\":{\"samples\":\"x\"}}",
                                     "{\"task\":\"statistics\",\"request\":{\"format\":\"mxfp5\"}}",
                                     "{\"task\":\"learn\",\"request\":{\"steps\":-1.5}}",
                                     "{\"task\":\"export\",\"request\":{\"as\":\"pickle\"}}",
                                     "{\"task\":\"verify\",\"request\":{\"path\":\"\\u0000\"}}",
                                     std::string(kNulBody, sizeof kNulBody - 1),
                                     "\xff\xfe\xfd"};
  for (size_t n = 1; n < valid.size(); ++n) bodies.push_back(valid.substr(0, n));  // every truncation
  // Every key of every task's request with a value of the wrong type.
  for (const auto& [task, request] : default_requests()) {
    for (const auto& [key, value] : request.items()) {
      json wrong = json::object();
      wrong[key] = value.is_string() ? json(12345) : json::array({"a", {{"b", 1}}});
      bodies.push_back(json{{"task", task}, {"request", wrong}}.dump());
    }
  }
  size_t checked = 0;
  for (const auto& body : bodies) {
    const auto r = raw.Post("/v1/jobs", body, "application/json");
    ASSERT_TRUE(r) << body;
    EXPECT_GE(r->status, 400) << body;
    EXPECT_LT(r->status, 500) << body << " -> " << r->body;
    const json error = json::parse(r->body, nullptr, false);
    ASSERT_FALSE(error.is_discarded()) << r->body;
    EXPECT_FALSE(error["error"]["message"].get<std::string>().empty()) << body;
    ++checked;
  }
  // Too large, unknown endpoints and jobs, bad event numbers.
  const auto big = raw.Post("/v1/jobs", std::string(100 * 1024, 'x'), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  for (const char* path : {"/v1/nothing", "/v1/jobs/0123456789abcdef", "/v1/jobs/0123456789abcdef/result",
                           "/v1/jobs/0123456789abcdef/events", "/v1/jobs/xyz", "/v1/files?path=%2Fetc"}) {
    const auto r = raw.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_GE(r->status, 400) << path;
    EXPECT_LT(r->status, 500) << path;
    EXPECT_NE(r->body.find("\"message\""), std::string::npos) << path;
    ++checked;
  }
  EXPECT_GE(checked + 1, 200u);
  // Still serving.
  EXPECT_EQ(client().engine()["protocol"], 1);
  EXPECT_EQ(client().jobs()["jobs"].size(), 0u);
}

// A latmix run of the bundled model on 4 x 32 tokens of the bundled sample, its plan written to `out`.
latmix::api::LearnRequest learn_request(int64_t steps, const std::string& out) {
  latmix::api::LearnRequest r;
  r.model = source_path(kBundledModel);
  r.method = "latmix";
  r.calib = source_path(kBundledSample);
  r.samples = 4;
  r.seqlen = 32;
  r.steps = steps;
  r.out = out;
  return r;
}

TEST_F(ServeServer, AClientThatLeavesMidLearningCanBeFollowedByANewOneToTheEnd) {
  const latmix::api::LearnRequest r = learn_request(12, out_ + "/plan");
  std::string id;
  {
    const auto first = client();
    id = first.submit("learn", latmix::api::to_json(r))["id"];
    int steps_seen = 0;
    first.follow(id, 0, [&](const JobEvent& e) {
      if (e.type == "step") ++steps_seen;
      return steps_seen < 2;  // then this client goes away
    });
    EXPECT_EQ(steps_seen, 2);
  }
  const auto second = client();
  const json listed = second.jobs()["jobs"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["id"], id);
  EXPECT_EQ(listed[0]["task"], "learn");
  std::vector<JobEvent> events;
  second.follow(id, 0, [&](const JobEvent& e) {
    events.push_back(e);
    return true;
  });
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, "end");
  EXPECT_EQ(events.back().data["state"], "done");
  int64_t steps = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq, static_cast<int64_t>(i) + 1);  // the whole log, from the first event
    if (events[i].type == "step") ++steps;
  }
  const json result = second.result(id);
  EXPECT_EQ(steps, 12);
  EXPECT_EQ(result["steps"], 12);
  EXPECT_TRUE(fs::is_regular_file(out_ + "/plan.safetensors"));
  second.remove(id);
  EXPECT_EQ(second.jobs()["jobs"].size(), 0u);
}

// "Refresh heatmap with current transforms" on an engine: a learn job answers a snapshot at its next step
// end (at once while paused) with the statistics of the transforms it has then; the same numbers as
// in-process with the plan of that step. Refusals: other jobs, other models, transforms of one's own.
TEST_F(ServeServer, ALearningJobAnswersASnapshotWithTheStatisticsOfItsTransformsAtThatStep) {
  const latmix::api::LearnRequest r = learn_request(6, out_ + "/plan");
  latmix::api::StatisticsRequest stats;
  stats.data = source_path(kBundledSample);
  stats.samples = 2;
  stats.seqlen = 32;
  stats.point = "residual,mlp_in";
  json asked = latmix::api::to_json(stats);
  asked.erase("model");
  asked.erase("transform");
  asked.erase("transforms");

  const auto engine = client();
  const std::string id = engine.submit("learn", latmix::api::to_json(r))["id"];
  int64_t seen = 0;
  seen = engine.follow(id, 0, [&](const JobEvent& e) { return e.type != "step"; });
  engine.pause(id);
  // Asked twice while paused: both at the step it holds at, the same numbers.
  EXPECT_EQ(engine.snapshot(id, asked, "first")["snapshot"], 1);
  EXPECT_EQ(engine.snapshot(id, asked, "second")["snapshot"], 2);
  std::vector<json> answers;
  seen = engine.follow(id, seen, [&](const JobEvent& e) {
    if (e.type == "snapshot") answers.push_back(e.data);
    return answers.size() < 2;
  });
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0]["tag"], "first");
  EXPECT_EQ(answers[1]["tag"], "second");
  EXPECT_FALSE(answers[0].contains("error")) << answers[0].dump();
  const int64_t step = answers[0]["step"];
  EXPECT_EQ(answers[1]["step"], step);
  EXPECT_GE(step, 1);
  EXPECT_LT(step, 6);
  const json first = engine.snapshot_result(id, 1);
  EXPECT_EQ(untimed(first), untimed(engine.snapshot_result(id, 2)));
  EXPECT_EQ(first["transform"], "latmix, step " + std::to_string(step));

  // Refused: a transform of one's own, another model, a job that is not a running learn job, no job.
  const auto status_of = [&](const std::string& job, const json& request) {
    try {
      engine.snapshot(job, request);
    } catch (const latmix::UsageError& e) {  // the engine's 400 (its message is the error)
      EXPECT_TRUE(std::string(e.what()).find("snapshot request: key '") != std::string::npos) << e.what();
      return 400;
    } catch (const latmix::serve::RemoteError& e) {
      return e.status();
    }
    return 200;
  };
  json own = asked;
  own["transform"] = "hadamard";
  EXPECT_EQ(status_of(id, own), 400);
  json other = asked;
  other["model"] = out_;
  EXPECT_EQ(status_of(id, other), 400);
  EXPECT_EQ(status_of("0123456789abcdef", asked), 404);
  engine.resume(id);
  engine.follow(id, seen, [](const JobEvent&) { return true; });
  EXPECT_EQ(engine.job(id)["state"], "done");
  EXPECT_EQ(status_of(id, asked), 409);  // ended

  // In-process: the same run to that step, its plan, the same statistics.
  latmix::LearnControl control;
  int64_t local_step = 0;
  latmix::TransformPlan at_step;
  control.on_step = [&](const latmix::LearnEvent& e) { local_step = e.step; };
  control.snapshot_every = 1;
  control.on_snapshot = [&](const latmix::TransformPlan& plan) {
    if (local_step < step) return;
    at_step = plan;
    throw latmix::Cancelled();  // the rest of the run is not needed
  };
  EXPECT_THROW(latmix::api::run_learn(r, latmix::test::bundled_model(), latmix::test::bundled_tokenizer(), control),
               latmix::Cancelled);
  latmix::save_transforms(out_ + "/at-step", at_step);
  stats.model = r.model;
  stats.transforms = out_ + "/at-step";
  stats.transform_name = "latmix, step " + std::to_string(step);
  json local = latmix::api::to_json(
      latmix::api::run_statistics(stats, latmix::test::bundled_model(), latmix::test::bundled_tokenizer()));
  json remote = first;
  local.erase("request");
  remote.erase("request");
  EXPECT_EQ(untimed(remote), untimed(local));
}

TEST_F(ServeServer, AFailedTaskComesBackAsTheEngineError) {
  const auto engine = client();
  latmix::api::StatisticsRequest r;
  r.model = source_path(kBundledModel);
  r.data = out_ + "/missing.txt";
  try {
    engine.run("statistics", latmix::api::to_json(r), {});
    ADD_FAILURE() << "no error";
  } catch (const latmix::UsageError& e) {
    ADD_FAILURE() << "a usage error: " << e.what();
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.txt"), std::string::npos) << e.what();
  }
}

TEST(ServeToken, TheTokenFileIsPrivateAndReadBack) {
  const std::string dir = latmix::test::temp_dir("serve-token") + "/new";
  const std::string token = latmix::serve::generate_token();
  EXPECT_EQ(token.size(), 64u);
  EXPECT_NE(token, latmix::serve::generate_token());
  latmix::serve::write_token_file(dir + "/engine.token", token);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/engine.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(latmix::serve::read_token_file(dir + "/engine.token"), token);
  ::chmod((dir + "/engine.token").c_str(), 0644);
  EXPECT_THROW(latmix::serve::read_token_file(dir + "/engine.token"), latmix::Error);
  EXPECT_THROW(latmix::serve::read_token_file(dir + "/none"), latmix::Error);
}

}  // namespace
