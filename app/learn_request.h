#pragma once
// The studio's learn request is the engine's (latmix/api/learn.h): the Learn tab fills one from its
// widgets (LearnPanel::request()) and shows one (setRequest()); the engine turns it into settings,
// calibration and a run, exactly as for `latmix learn`. Nothing here assembles the task.

#include <QString>
#include <QStringList>

#include <string>
#include <vector>

#include "latmix/api/learn.h"

namespace latmix::studio {

using LearnRequest = latmix::api::LearnRequest;

/// Engine strings as a QStringList.
QStringList to_qstrings(const std::vector<std::string>& items);

/// A command line with arguments quoted for a POSIX shell where needed.
QString shell_command(const QStringList& argv);

}  // namespace latmix::studio
