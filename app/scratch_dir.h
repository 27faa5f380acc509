#pragma once
// The studio's private scratch folders (learned plans, heatmap snapshots): QTemporaryDir in
// QDir::tempPath() named "<application name>-<pid>-XXXXXX". Each is removed when its last holder
// lets go, and at the latest when the QCoreApplication is destroyed (a job may still hold one when
// the app quits: the folder went with the process before, ~70 were left in /tmp). Making the first
// one also removes the empty scratch folders of processes that no longer exist (killed or crashed
// runs); a dead run's folder that still holds files (learned plans) is kept.

#include <QString>
#include <QTemporaryDir>

#include <memory>

namespace latmix::studio {

std::shared_ptr<QTemporaryDir> make_scratch_dir();

/// Removes the empty scratch folders of `app_name` left by processes that no longer run; returns
/// how many (public for tests).
int remove_stale_scratch_dirs(const QString& temp_path, const QString& app_name);

}  // namespace latmix::studio
