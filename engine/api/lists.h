#pragma once
// Comma-separated option values of the use-case requests (engine/api, private): --methods, --point,
// and the capture points several tasks take, read one way.

#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/model.h"

namespace latmix::api::detail {

/// The non-empty items of "a,b,,c" as given ({"a", "b", "c"}).
inline std::vector<std::string> comma_list(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

/// --point LIST: the capture points, at least one. \throws latmix::UsageError naming --point.
inline std::vector<CapturePoint> capture_point_list(const std::string& list) {
  std::vector<CapturePoint> points;
  for (const std::string& name : comma_list(list)) {
    points.push_back(parse_option("point", [&] { return parse_capture_point(name); }));
  }
  if (points.empty()) throw UsageError("--point: expected one or more capture point names");
  return points;
}

}  // namespace latmix::api::detail
