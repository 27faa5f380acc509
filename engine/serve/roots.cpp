// Confining a request's paths to the served roots (latmix/serve/roots.h).
#include "latmix/serve/roots.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <system_error>

#include "latmix/calib_transforms.h"

namespace latmix::serve {

namespace fs = std::filesystem;

namespace {

// `inner` is `root` or below it (both canonical, lexically normal).
bool inside(const fs::path& inner, const fs::path& root) {
  auto r = root.begin();
  auto i = inner.begin();
  for (; r != root.end(); ++r, ++i) {
    if (r->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *r) return false;
  }
  return true;
}

std::string joined(const std::vector<std::string>& folders) {
  std::string s;
  for (const auto& f : folders) s += (s.empty() ? "" : ", ") + f;
  return s;
}

}  // namespace

Roots::Roots(const std::vector<std::string>& folders) {
  if (folders.empty()) throw UsageError("serve: at least one --root folder is needed");
  for (const auto& f : folders) {
    std::error_code ec;
    if (f.empty() || !fs::is_directory(f, ec)) throw UsageError("--root " + f + ": not a folder");
    const fs::path canonical = fs::canonical(f, ec);
    if (ec) throw UsageError("--root " + f + ": " + ec.message());
    folders_.push_back(canonical.string());
  }
}

std::string Roots::confine(const std::string& path, const std::string& what) const {
  if (path.find('\0') != std::string::npos) throw PathRefused(what + ": the path holds a NUL character");
  fs::path p(path);
  if (p.is_relative()) p = fs::path(folders_.front()) / p;
  // Resolve the longest part that exists (symbolic links followed); the rest is taken as written
  // but may not climb with "..".
  fs::path existing = p;
  fs::path rest;
  std::error_code ec;
  while (!existing.empty() && !fs::exists(fs::symlink_status(existing, ec))) {
    rest = existing.filename() / rest;
    if (existing == existing.parent_path()) break;
    existing = existing.parent_path();
  }
  for (const auto& part : rest) {
    if (part == "..") throw PathRefused(what + ": '" + path + "' climbs out of a folder that does not exist ('..')");
  }
  fs::path resolved = fs::canonical(existing, ec);
  if (ec) throw PathRefused(what + ": '" + path + "': " + ec.message());
  if (!rest.empty()) resolved = (resolved / rest).lexically_normal();
  std::string out = resolved.string();
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  for (const auto& root : folders_) {
    if (inside(fs::path(out), fs::path(root))) return out;
  }
  throw PathRefused(what + ": '" + path + "' is outside the folders this server serves (" + joined(folders_) +
                    "); give a path inside them (latmix serve --root)");
}

const std::vector<PathKey>& path_keys(const std::string& task) {
  static const std::map<std::string, std::vector<PathKey>> table = {
      {"describe", {{"model", "file"}, {"tokenizer", "file"}}},
      {"statistics",
       {{"model", "file"}, {"tokenizer", "file"}, {"data", "file"}, {"transforms", "prefix"}, {"out", "file"},
        {"safetensors", "file"}}},
      {"explain_block",
       {{"model", "file"}, {"tokenizer", "file"}, {"transform", "transform"}, {"sample", "file"}, {"text", "file"}}},
      {"analyze", {{"model", "file"}, {"tokenizer", "file"}, {"data", "file"}, {"out", "file"}}},
      {"evaluate",
       {{"model", "file"}, {"tokenizer", "file"}, {"data_dir", "file"}, {"calib", "file"}, {"out", "file"},
        {"tasks", "tasks"}}},
      {"learn",
       {{"model", "file"}, {"tokenizer", "file"}, {"calib", "files"}, {"data_dir", "file"}, {"out", "prefix"},
        {"events", "file"}, {"checkpoint", "prefix"}}},
      {"compare", {{"out", "file"}, {"tasks", "tasks"}, {"learning", "learning"}}},
      {"export",
       {{"model", "file"}, {"tokenizer", "file"}, {"transforms", "prefix"}, {"out", "file"}, {"verify_data", "file"},
        {"calib", "file"}}},
      {"verify", {{"path", "file"}, {"data", "file"}}},
  };
  const auto it = table.find(task);
  if (it == table.end()) throw UsageError("unknown task '" + task + "'");
  return it->second;
}

void confine_request(const std::string& task, nlohmann::json& request, const Roots& roots) {
  if (!request.is_object()) throw UsageError(task + " request: expected a JSON object");
  for (const PathKey& k : path_keys(task)) {
    if (!request.contains(k.key) || request[k.key].is_null()) continue;
    nlohmann::json& value = request[k.key];
    if (k.kind == "learning") {
      confine_request("learn", value, roots);
      continue;
    }
    if (!value.is_string()) throw UsageError(task + " request: key '" + k.key + "': expected a string");
    const std::string text = value.get<std::string>();
    if (text.empty()) continue;
    const std::string what = task + " request: key '" + k.key + "'";
    if (k.kind == "file") {
      value = roots.confine(text, what);
    } else if (k.kind == "prefix" || k.kind == "transform") {
      if (k.kind == "transform") {
        const auto names = builtin_transform_names();
        if (text == "none" || std::find(names.begin(), names.end(), text) != names.end()) continue;
      }
      const std::string prefix = roots.confine(text, what);
      for (const char* ext : {".json", ".safetensors", ".checkpoint"}) roots.confine(prefix + ext, what);
      value = prefix;
    } else if (k.kind == "tasks") {
      // Only the `text:PATH` items name files; the others are task names.
      std::string out;
      size_t start = 0;
      for (bool first = true; start <= text.size(); first = false) {
        const size_t comma = std::min(text.find(',', start), text.size());
        std::string item = text.substr(start, comma - start);
        if (item.rfind("text:", 0) == 0 && item.size() > 5) item = "text:" + roots.confine(item.substr(5), what);
        out += (first ? "" : ",") + item;
        start = comma + 1;
      }
      value = out;
    } else if (k.kind == "files") {
      if (text == "gutenberg") continue;
      // Item by item, an empty one kept empty (learn_settings() refuses it with its own message).
      std::string out;
      size_t start = 0;
      for (bool first = true; start <= text.size(); first = false) {
        const size_t comma = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, comma - start);
        out += (first ? "" : ",") + (item.empty() ? item : roots.confine(item, what));
        start = comma + 1;
      }
      value = out;
    }
  }
}

}  // namespace latmix::serve
