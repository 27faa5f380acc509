#include "engine_host.h"

#include <QMetaObject>
#include <QPointer>

#include <c10/util/Exception.h>

#include <chrono>
#include <new>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "latmix/error.h"

namespace latmix::studio {

namespace {
constexpr int kEngineNice = 10;
}

EngineHost::EngineHost(QObject* parent) : QObject(parent) { thread_ = std::thread([this] { run(); }); }

EngineHost::~EngineHost() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    for (auto& job : queue_) job.cancel.cancel();
    if (running_ != nullptr) running_->cancel.cancel();
  }
  wake_.notify_all();
  thread_.join();
}

quint64 EngineHost::submit(const QString& tag, Work work) {
  quint64 id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!tag.isEmpty()) {
      for (auto it = queue_.begin(); it != queue_.end();) {
        it = it->tag == tag ? queue_.erase(it) : it + 1;
      }
    }
    id = next_id_++;
    queue_.push_back(Job{id, tag, std::move(work), CancelToken()});
  }
  wake_.notify_one();
  return id;
}

void EngineHost::cancel(quint64 id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (running_ != nullptr && running_->id == id) running_->cancel.cancel();
  for (auto& job : queue_) {
    if (job.id == id) job.cancel.cancel();
  }
}

void EngineHost::cancelAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (running_ != nullptr) running_->cancel.cancel();
  for (auto& job : queue_) job.cancel.cancel();
}

bool EngineHost::busy() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_ != nullptr || !queue_.empty();
}

void EngineHost::post(QObject* context, std::function<void()> fn) {
  QPointer<QObject> guard(context);
  if (!guard) return;  // the receiver is gone (a window closed while its job ran)
  QMetaObject::invokeMethod(
      context,
      [guard, fn = std::move(fn)] {
        if (guard) fn();
      },
      Qt::QueuedConnection);
}

void EngineHost::run() {
#ifdef __linux__
  // A lower priority than the GUI thread (nice is per thread on Linux; threads LibTorch starts
  // from here inherit it): when both want the same core, the event loop runs first.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kEngineNice);
#endif
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      running_ = &job;
    }
    execute(job);
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = nullptr;
  }
}

void EngineHost::execute(Job& job) {
  const quint64 id = job.id;
  const QString tag = job.tag;
  if (job.cancel.cancelled()) {
    Q_EMIT jobCancelled(id, tag);
    return;
  }
  Q_EMIT jobStarted(id, tag);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last = Clock::time_point{};
  std::string last_stage;  // for an out-of-memory message
  JobControl control;
  control.cancel = job.cancel;
  control.progress = [this, id, &last, &last_stage](std::string_view stage, int64_t done, int64_t total) {
    // The first report of a stage always goes out: dropped, the bar would name the previous stage
    // until the new one reports again (one learned fit of `latmix analyze` can take minutes).
    const bool new_stage = stage != last_stage;
    if (new_stage) last_stage = std::string(stage);
    const auto now = Clock::now();
    if (!new_stage && done < total && now - last < std::chrono::milliseconds(33)) return;
    last = now;
    Q_EMIT jobProgress(id, QString::fromUtf8(stage.data(), static_cast<int>(stage.size())), done, total);
  };
  try {
    job.work(control);
    Q_EMIT jobFinished(id, tag, std::chrono::duration<double>(Clock::now() - start).count());
  } catch (const Cancelled&) {
    Q_EMIT jobCancelled(id, tag);
  } catch (const c10::Error& e) {
    Q_EMIT jobFailed(id, tag, QString::fromStdString(std::string("LibTorch: ") + e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    // Not a bare "std::bad_alloc" in the banner (issue 20, item 21): what ran and where.
    const std::string during = last_stage.empty() ? std::string() : " during '" + last_stage + "'";
    Q_EMIT jobFailed(id, tag,
                     QString::fromStdString("out of memory in '" + tag.toStdString() + "'" + during +
                                            " (std::bad_alloc): the inputs ask for more memory than this machine "
                                            "gives; lower the samples, sequence length or batch, or check the "
                                            "input files"));
  } catch (const std::exception& e) {
    Q_EMIT jobFailed(id, tag, QString::fromStdString(e.what()));
  }
}

}  // namespace latmix::studio
