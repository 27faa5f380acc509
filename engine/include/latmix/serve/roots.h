#pragma once
/// \file serve/roots.h
/// Room: engine/serve/ (latmix_serve). The folders a server serves (`latmix serve --root DIR`): every
/// path in a request is resolved on the server (a relative path against the first root, symbolic
/// links followed as far as the path exists) and must lie inside one of them. Path traversal
/// ("../"), a symbolic link that leads out of the roots, or an absolute path elsewhere is refused.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "latmix/error.h"

namespace latmix::serve {

/// A path outside the served roots (HTTP 403). The message names the request key and the path.
class PathRefused : public Error {
 public:
  explicit PathRefused(const std::string& message) : Error(message) {}
};

class Roots {
 public:
  /// Each folder must exist and be a folder (latmix::UsageError naming it otherwise); kept in their
  /// canonical form (symbolic links resolved). At least one.
  explicit Roots(const std::vector<std::string>& folders);
  const std::vector<std::string>& folders() const { return folders_; }

  /// The canonical absolute form of `path` when it lies inside a root (the root itself included);
  /// PathRefused naming `what` otherwise. A part of the path that does not exist yet (an output)
  /// is taken as written after the part that exists is resolved; ".." in that part is refused.
  std::string confine(const std::string& path, const std::string& what) const;

 private:
  std::vector<std::string> folders_;
};

/// The request keys of `task` that name files or folders on the server, as confine_request()
/// checks them: "file" (one path), "prefix" (PREFIX and PREFIX.json / .safetensors / .checkpoint),
/// "files" (a comma-separated list of paths; learn's --calib, where "gutenberg" is no path),
/// "transform" (a prefix unless "none" or a built-in transform's name), "tasks" (eval's and
/// compare's comma-separated tasks, whose `text:PATH` items are paths), "learning" (compare: the
/// learn request inside). Every other string key of a task's request is no path.
struct PathKey {
  std::string key;
  std::string kind;
};
const std::vector<PathKey>& path_keys(const std::string& task);

/// Rewrites every path of `request` (a task's request JSON) to its confined absolute form; an empty
/// path stays empty (the server's default: its bundled sample, its evaluation data). A key that is
/// absent stays absent. \throws PathRefused, latmix::UsageError for an unknown task or a path key
/// that is not a string.
void confine_request(const std::string& task, nlohmann::json& request, const Roots& roots);

}  // namespace latmix::serve
