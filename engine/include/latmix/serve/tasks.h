#pragma once
/// \file serve/tasks.h
/// Room: engine/serve/ (latmix_serve). The use cases a server runs, by name, with JSON in and out:
/// each task parses its request strictly (the api/ request's from_json), opens the model it names
/// (kept open for the next job that names the same model, device, dtype and weights), runs the
/// api/ function and returns its result's to_json() — the same JSON `latmix <command> --json`
/// prints in-process.
///
/// | task | request | function | CLI |
/// |---|---|---|---|
/// | describe | api::DescribeRequest + "overview" (bool), "weights" | describe_model (+ weight_overview) | info |
/// | statistics | api::StatisticsRequest | run_statistics | stats |
/// | explain_block | api::ExplainBlockRequest + "weights" | run_explain_block | mx block |
/// | analyze | api::AnalyzeRequest | run_analyze | analyze |
/// | evaluate | api::EvaluateRequest | run_evaluate | eval |
/// | compare | api::CompareRequest | run_compare | compare |
/// | learn | api::LearnRequest + "nproc" (number of processes) | run_learn | learn |
/// | export | api::ExportRequest | run_export | export |
/// | verify | api::VerifyRequest | run_verify | verify |

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "latmix/distributed.h"
#include "latmix/model.h"
#include "latmix/serve/jobs.h"
#include "latmix/tokenizer.h"

namespace latmix::serve {

/// Every task's name, in the table's order.
const std::vector<std::string>& task_names();
/// The tasks whose runs pause between learning steps (learn, compare, export).
const std::vector<std::string>& pausable_tasks();
/// The `latmix` command of a task ("explain_block" -> "mx block"), and back ("" when none).
std::string task_command(const std::string& task);
std::string command_task(const std::string& command);

/// Sets the request's device (compare: its learning request's) to `device`: the server's, which
/// every task runs on. Tasks without a device (describe, verify), and a "device" that is not a
/// string (refused by the request's parser), are left as they are.
void set_task_device(const std::string& task, nlohmann::json& request, const std::string& device);

/// The checks of a request that need no model (its strict from_json and the task's model-free
/// checks), run when a job is submitted so that a bad request is refused at once.
/// \throws latmix::UsageError naming the key or option.
void check_task_request(const std::string& task, const nlohmann::json& request);

/// The other processes of a data-parallel learn job: a learn request's "nproc" above 1 (issue 22;
/// LearnControl::group). This process is rank 0; the others run in processes of their own.
class Ranks {
 public:
  virtual ~Ranks() = default;
  virtual dist::Group& group() = 0;
  /// Waits for the others to end. \throws latmix::Error naming each one that failed.
  virtual void finish() = 0;
  /// `error` with what happened to the others (stopped first when still running).
  virtual std::string explain(const std::string& error) = 0;
};

/// Starts the other `nproc` - 1 processes of a learn job on `request` (the api::LearnRequest's JSON,
/// with the server's device) and joins their group; `cancel` (the job's) ends the wait for them.
/// \throws latmix::Error when they cannot start or join, latmix::Cancelled.
using StartRanks =
    std::function<std::unique_ptr<Ranks>(const nlohmann::json& request, int nproc, const CancelToken& cancel)>;

/// What the server decides for every task.
struct TaskEnvironment {
  /// The device every task runs on (`latmix serve --device`): a request's "device" is replaced by
  /// it (a client does not know the server's GPUs).
  std::string device = "cpu";
  /// The bundled calibration sample on the server ("" when not installed): the default of every
  /// text a request leaves empty, as in-process.
  std::string bundled_sample;
  /// Starts the processes of a learn request with "nproc" above 1 (null: such a request is refused).
  StartRanks start_ranks;
};

/// Runs tasks on one thread at a time (the job queue's worker), keeping the last model open.
class TaskHost {
 public:
  explicit TaskHost(TaskEnvironment environment);
  ~TaskHost();
  const TaskEnvironment& environment() const { return environment_; }
  /// Runs `task` on `request` (its paths already confined). \throws latmix::UsageError for an
  /// unknown task or a bad request, latmix::Error, latmix::Cancelled.
  nlohmann::json run(const std::string& task, nlohmann::json request, const TaskEvents& events);
  /// Closes the model kept open.
  void close_model();
  /// A learn job's snapshot (the job queue's SnapshotRunner), on the job's thread: the statistics
  /// of `statistics` with `plan` (in memory: no file is written) on the model the job holds, named
  /// "METHOD, step N". \throws latmix::UsageError for a bad request, latmix::Error.
  nlohmann::json snapshot(const nlohmann::json& learn, const nlohmann::json& statistics, const TransformPlan& plan,
                          int64_t step, const JobControl& job);

 private:
  struct Open;
  std::shared_ptr<Open> open(const std::string& model, const std::string& tokenizer, const std::string& dtype,
                             bool mapped, const JobControl& job);
  TaskEnvironment environment_;
  std::shared_ptr<Open> open_;
};

}  // namespace latmix::serve
