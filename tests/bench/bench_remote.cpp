// Issue 19's figures: the overhead of a statistics request through `latmix serve` on 127.0.0.1 over
// the same request in-process, and how fast a learning job's events reach a client.
// Usage: bench_remote MODEL TEXT [repeats=5] [learn_steps=300] [device=cpu] [learn_model=MODEL]
//   learn_model: the model the learning runs on (default MODEL). Its steps must come faster than the
//   30 events/s the issue asks the client to receive, e.g. make_random_model's `--shape tiny` (2
//   layers of width 64, about 100 steps/s on this machine's CPU); a separate learning model starts from
//   --init hadamard, since its head width 16 is below the MX block that block_hadamard needs.
//   MODEL: a model folder (the issue measures gutenberg-llama-22M from ../shared/data/models);
//   TEXT: calibration text (resources/calibration/pride_and_prejudice_ch1-6.txt).
// The server keeps the model open between jobs (as it does for a client that asks again), so both
// sides time the statistics work on a model already loaded; the first remote run, which loads it,
// is left out as a warm-up, as is the first in-process run.
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "latmix/api/learn.h"
#include "latmix/api/statistics.h"
#include "latmix/malloc_tuning.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/serve/client.h"
#include "latmix/serve/server.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_remote MODEL TEXT [repeats=5] [learn_steps=300] [device=cpu] [learn_model=MODEL]\n");
    return 2;
  }
  namespace fs = std::filesystem;
  // As `latmix serve` and the studio run: one malloc arena from the start (latmix/malloc_tuning.h), so that
  // the in-process runs on a new thread below are measured as the server's worker runs.
  latmix::tune_malloc_for_tensors();
  const std::string model_path = fs::canonical(argv[1]).string();
  const std::string text = fs::canonical(argv[2]).string();
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 5;
  const int learn_steps = argc > 4 ? std::atoi(argv[4]) : 300;
  const std::string device = argc > 5 ? argv[5] : "cpu";
  const std::string learn_model_path = argc > 6 ? fs::canonical(argv[6]).string() : model_path;
  const std::string out = fs::temp_directory_path().string() + "/bench_remote_" + std::to_string(::getpid());
  fs::create_directories(out);

  latmix::api::StatisticsRequest r;
  r.model = model_path;
  r.data = text;
  r.samples = 16;
  r.seqlen = 256;
  r.point = "residual,mlp_in";
  r.transform = "hadamard";
  r.weights = "memory";
  r.device = device;

  // In-process: the model held in memory, as the server holds it.
  latmix::LoadOptions lo;
  lo.device = latmix::parse_device(device);
  const latmix::Model model = latmix::load_model(model_path, lo);
  const auto tokenizer = latmix::load_model_tokenizer(model_path, "", static_cast<int32_t>(model.config().vocab_size));
  latmix::serve::ServeOptions o;
  o.port = 0;
  o.roots = {fs::path(model_path).parent_path().string(), fs::path(text).parent_path().string(), out};
  if (learn_model_path != model_path) o.roots.push_back(fs::path(learn_model_path).parent_path().string());
  o.token = latmix::serve::generate_token();
  o.device = device;
  latmix::serve::Server server(o);
  const int port = server.bind();
  std::thread serving([&] { server.run(); });
  const latmix::serve::RemoteEngine engine("http://127.0.0.1:" + std::to_string(port), o.token);

  // Rounds of the three, interleaved so that a load that changes while the benchmark runs (another
  // program, the CPU's clock) weighs on each alike: in-process on the main thread, in-process on a
  // new thread with a progress callback (what the engine's worker does), and through the server.
  // Round 0 (the server loads the model) is left out.
  std::vector<double> local, threaded, remote, ratios, worker_side;
  latmix::api::StatisticsResult last_result;
  size_t result_bytes = 0;
  for (int i = 0; i <= repeats; ++i) {
    auto t = Clock::now();
    last_result = latmix::api::run_statistics(r, model, *tokenizer);
    const double l = seconds_since(t);
    double w = 0;
    std::thread worker([&] {
      latmix::JobControl job;
      job.progress = [](std::string_view, int64_t, int64_t) {};
      const auto tw = Clock::now();
      latmix::api::run_statistics(r, model, *tokenizer, job);
      w = seconds_since(tw);
    });
    worker.join();
    t = Clock::now();
    const nlohmann::json result = engine.run("statistics", latmix::api::to_json(r), {});
    const double m = seconds_since(t);
    result_bytes = nlohmann::json::to_cbor(result).size();
    // The task's own time on the engine's worker (its result's seconds; RemoteEngine::run removes the job).
    const double on_worker = result.value("seconds", 0.0);
    if (i == 0) continue;
    local.push_back(l), threaded.push_back(w), remote.push_back(m), ratios.push_back(m / l);
    worker_side.push_back(on_worker);
  }
  int worker_threads = 0;
  std::thread([&] { worker_threads = at::get_num_threads(); }).join();
  std::printf("in-process on a new thread with progress: %.3f s (median of %d); intra-op threads: main %d, a new "
              "thread %d\n", median(threaded), repeats, at::get_num_threads(), worker_threads);
  // What the wire adds in any case: the result as JSON, as CBOR, and read back.
  const auto ts = Clock::now();
  const std::vector<uint8_t> wire = nlohmann::json::to_cbor(latmix::api::to_json(last_result));
  const double to_wire = seconds_since(ts);
  const auto tr = Clock::now();
  latmix::api::statistics_result_from_json(nlohmann::json::from_cbor(wire));
  const double from_wire = seconds_since(tr);
  const double l = median(local), m = median(remote);
  std::printf("statistics (%s on %s, %lld x %lld tokens, %s): in-process %.3f s, remote %.3f s (median of %d "
              "interleaved rounds): overhead %+.1f %% (median of the rounds' ratios %+.1f %%; result %.1f KiB as "
              "CBOR)\n",
              fs::path(model_path).filename().c_str(), device.c_str(), static_cast<long long>(r.samples),
              static_cast<long long>(r.seqlen), r.point.c_str(), l, m, repeats, 100.0 * (m - l) / l,
              100.0 * (median(ratios) - 1.0), static_cast<double>(result_bytes) / 1024.0);
  std::printf("  of which the result's conversions: to JSON and CBOR %.3f s on the engine, CBOR to the typed result "
              "%.3f s on the client\n", to_wire, from_wire);
  std::printf("  the task on the engine's worker (its result's seconds): %.3f s (median); the rest (submit, "
              "queue, events, the result's conversions, transfer and reading): %.3f s\n", median(worker_side), m - median(worker_side));

  // Learning events: a run of many short steps, in-process (the steps it makes per second) and on the
  // engine followed by a client (the step events the client receives per second).
  latmix::api::LearnRequest learn;
  learn.model = learn_model_path;
  learn.method = "latmix";
  if (learn_model_path != model_path) learn.init = "hadamard";
  learn.calib = text;
  learn.samples = 2;
  learn.seqlen = 16;
  learn.batch = 1;
  learn.steps = learn_steps;
  learn.validation = 0;
  learn.device = device;
  {
    latmix::LearnControl control;
    int64_t made = 0;
    Clock::time_point t0{}, t1{};
    control.on_step = [&](const latmix::LearnEvent&) {
      if (made++ == 0) t0 = Clock::now();
      t1 = Clock::now();
    };
    if (learn_model_path == model_path) {
      latmix::api::run_learn(learn, model, *tokenizer, control);
    } else {
      const latmix::Model learn_model = latmix::load_model(learn_model_path, lo);
      const auto learn_tokenizer =
          latmix::load_model_tokenizer(learn_model_path, "", static_cast<int32_t>(learn_model.config().vocab_size));
      latmix::api::run_learn(learn, learn_model, *learn_tokenizer, control);
    }
    const double made_span = std::chrono::duration<double>(t1 - t0).count();
    std::printf("learning in-process: %lld steps over %.2f s: %.0f steps/s made\n", static_cast<long long>(made),
                made_span, made_span > 0 ? static_cast<double>(made - 1) / made_span : 0.0);
  }
  const std::string id = engine.submit("learn", latmix::api::to_json(learn))["id"];
  int64_t steps = 0;
  Clock::time_point first{}, last{};
  engine.follow(id, 0, [&](const latmix::serve::JobEvent& e) {
    if (e.type == "step") {
      if (steps++ == 0) first = Clock::now();
      last = Clock::now();
    }
    return true;
  });
  const double span = std::chrono::duration<double>(last - first).count();
  std::printf("learning events: %lld steps received over %.2f s: %.0f events/s delivered to the client\n",
              static_cast<long long>(steps), span, span > 0 ? static_cast<double>(steps - 1) / span : 0.0);
  server.stop();
  serving.join();
  fs::remove_all(out);
  return 0;
}
