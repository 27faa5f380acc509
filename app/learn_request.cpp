#include "learn_request.h"

#include <QRegularExpression>

namespace latmix::studio {

QStringList to_qstrings(const std::vector<std::string>& items) {
  QStringList out;
  for (const std::string& s : items) out << QString::fromStdString(s);
  return out;
}

QString shell_command(const QStringList& argv) {
  static const QRegularExpression plain("^[A-Za-z0-9_@%+=:,./-]+$");
  QStringList out;
  for (const QString& a : argv) {
    if (!a.isEmpty() && plain.match(a).hasMatch()) {
      out << a;
    } else {
      QString q = a;
      q.replace("'", "'\\''");
      out << "'" + q + "'";
    }
  }
  return out.join(' ');
}

}  // namespace latmix::studio
