// The studio's scratch folders (scratch_dir.h).
#include "scratch_dir.h"

#include <signal.h>

#include <QCoreApplication>
#include <QDir>
#include <QRegularExpression>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <vector>

namespace latmix::studio {

namespace {

std::mutex g_mutex;
std::vector<std::weak_ptr<QTemporaryDir>> g_dirs;
bool g_routine_added = false;

// At QCoreApplication's destruction: whatever a leftover holder keeps, the folders go.
void remove_all_scratch_dirs() {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (const auto& w : g_dirs) {
    if (const auto d = w.lock()) d->remove();
  }
  g_dirs.clear();
}

}  // namespace

int remove_stale_scratch_dirs(const QString& temp_path, const QString& app_name) {
  const QRegularExpression name("^" + QRegularExpression::escape(app_name) + "-(\\d+)-[A-Za-z0-9]{6}$");
  int removed = 0;
  const QDir temp(temp_path);
  for (const QString& entry : temp.entryList(QDir::Dirs | QDir::NoDotAndDotDot | QDir::Hidden)) {
    const auto m = name.match(entry);
    if (!m.hasMatch()) continue;
    const qint64 pid = m.captured(1).toLongLong();
    if (pid <= 0 || pid == QCoreApplication::applicationPid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to ask)
    if (temp.rmdir(entry)) ++removed;  // only an empty folder: a dead run's learned plans stay
  }
  return removed;
}

std::shared_ptr<QTemporaryDir> make_scratch_dir() {
  const QString app = QCoreApplication::applicationName().isEmpty() ? QStringLiteral("latmix-studio")
                                                                    : QCoreApplication::applicationName();
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_routine_added && QCoreApplication::instance() != nullptr) {
    g_routine_added = true;
    remove_stale_scratch_dirs(QDir::tempPath(), app);
    qAddPostRoutine(remove_all_scratch_dirs);
  }
  auto dir = std::make_shared<QTemporaryDir>(QDir::tempPath() + "/" + app + "-" +
                                             QString::number(QCoreApplication::applicationPid()) + "-XXXXXX");
  g_dirs.erase(std::remove_if(g_dirs.begin(), g_dirs.end(), [](const auto& w) { return w.expired(); }), g_dirs.end());
  g_dirs.push_back(dir);
  return dir;
}

}  // namespace latmix::studio
