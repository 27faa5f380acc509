// Model fingerprints, and transforms saved and loaded with them (export.h).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <vector>

#include "export/export_internal.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/sha256.h"
#include "latmix/version.h"

namespace latmix {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The first `count` bytes of a file (fewer when it is shorter).
std::string read_prefix(const std::string& path, uint64_t count) {
  const int fd = open_regular_file(path);
  std::string bytes(count, '\0');
  const ssize_t got = ::pread(fd, bytes.data(), bytes.size(), 0);
  ::close(fd);
  if (got < 0) fail(path, "read error");
  bytes.resize(static_cast<size_t>(got));
  return bytes;
}

uint64_t size_of(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  if (ec) fail(path, "cannot read the file size: " + ec.message());
  return static_cast<uint64_t>(n);
}

// The safetensors header block (length prefix and JSON) of a file.
std::string safetensors_header_bytes(const std::string& path) {
  const std::string head = read_prefix(path, 8);
  if (head.size() < 8) fail(path, "safetensors header", "at least 8 bytes", std::to_string(head.size()) + " bytes");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(head[static_cast<size_t>(i)]);
  if (n > kMaxSafetensorsHeaderBytes) fail(path, "safetensors header length", "at most 100 MB", std::to_string(n));
  return read_prefix(path, 8 + n);
}

json file_entry(const std::string& name, uint64_t bytes, const std::string& digest) {
  return {{"name", name}, {"bytes", bytes}, {"sha256", digest}};
}

std::string canonical(const std::string& path) {
  std::error_code ec;
  const fs::path c = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal().string() : c.string();
}

struct FileFacts {
  int64_t bytes = 0;
  std::string sha256;
};

// The "files" list of a fingerprint by name; `file` and `where` name it in errors.
std::map<std::string, FileFacts> file_facts(const json& list, const std::string& file, const std::string& where) {
  if (!list.is_array()) fail(file, "key '" + where + "'", "an array", json_excerpt(list));
  std::map<std::string, FileFacts> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonObject f(list[i], file, where + "[" + std::to_string(i) + "]");
    out[f.string_or("name", "")] = {f.integer_or("bytes", 0), f.string_or("sha256", "")};
  }
  return out;
}

// "model.safetensors: 13054392 bytes (was 13054400)", one part per file that differs.
std::string describe_differences(const std::map<std::string, FileFacts>& before,
                                 const std::map<std::string, FileFacts>& after) {
  std::vector<std::string> parts;
  for (const auto& [name, f] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      parts.push_back(name + " is gone");
    } else if (name == "config.json" && f.sha256 != it->second.sha256) {
      parts.push_back("config.json: contents differ");
    } else if (f.bytes != it->second.bytes) {
      parts.push_back(name + ": " + std::to_string(it->second.bytes) + " bytes (was " + std::to_string(f.bytes) + ")");
    } else if (f.sha256 != it->second.sha256) {
      parts.push_back(name + ": header differs (SHA-256 " + it->second.sha256.substr(0, 12) + "..., was " +
                      f.sha256.substr(0, 12) + "...)");
    }
  }
  for (const auto& [name, f] : after) {
    if (!before.count(name)) parts.push_back(name + " is new");
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out.empty() ? "the file lists match but the digests differ" : out;
}

}  // namespace

json ModelFingerprint::to_json() const {
  return {{"path", model_path},
          {"model_digest", model_digest},
          {"fingerprint", fingerprint},
          {"files", files},
          {"settings", settings}};
}

ModelFingerprint model_fingerprint(const std::string& model_path, const json& settings) {
  ModelFingerprint fp;
  fp.model_path = canonical(model_path);
  fp.settings = settings.is_null() ? json::object() : settings;
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) {
    const std::string config = (fs::path(model_path) / "config.json").string();
    const std::string text = read_text_file(config);
    fp.files.push_back(file_entry("config.json", text.size(), sha256_hex(text)));
    const std::string index = (fs::path(model_path) / "model.safetensors.index.json").string();
    const TensorStore store = TensorStore::open(model_path);
    std::vector<std::string> shards = store.files();
    if (fs::is_regular_file(index, ec) && !fs::is_regular_file(fs::path(model_path) / "model.safetensors", ec)) {
      const std::string t = read_text_file(index);
      fp.files.push_back(file_entry("model.safetensors.index.json", t.size(), sha256_hex(t)));
    }
    std::vector<std::pair<std::string, std::string>> named;
    for (const std::string& s : shards) named.emplace_back(fs::path(s).filename().string(), s);
    std::sort(named.begin(), named.end());
    for (const auto& [name, path] : named) {
      fp.files.push_back(file_entry(name, size_of(path), sha256_hex(safetensors_header_bytes(path))));
    }
  } else {
    fp.files.push_back(file_entry(fs::path(model_path).filename().string(), size_of(model_path),
                                  sha256_hex(read_prefix(model_path, 28))));
  }
  fp.model_digest = sha256_hex(fp.files.dump());
  fp.fingerprint = sha256_hex(fp.model_digest + "\n" + fp.settings.dump());
  return fp;
}

void save_transforms_for_model(const std::string& path_prefix, const TransformPlan& plan, const std::string& model_path,
                               const json& settings) {
  const ModelFingerprint fp = model_fingerprint(model_path, settings);
  json metadata = {{"model", fp.to_json()},
                   {"settings", fp.settings},
                   {"tool", {{"name", "latmix"}, {"version", version()}, {"git_commit", git_commit()}}}};
  save_transforms(path_prefix, plan, metadata);
}

CheckedTransforms load_transforms_checked(const std::string& path_prefix, const std::string& model_path) {
  CheckedTransforms out;
  out.metadata = load_transforms_metadata(path_prefix);
  const std::string json_path = path_prefix + ".json";
  if (out.metadata.is_null() || !out.metadata.contains("model")) {
    out.notes.push_back(json_path + " carries no model fingerprint: it could not be checked against " + model_path);
  } else {
    const JsonObject recorded(out.metadata["model"], json_path, "metadata.model");
    const json settings = recorded.has("settings") ? recorded.object("settings").value() : json::object();
    const ModelFingerprint now = model_fingerprint(model_path, settings);
    if (now.model_digest != recorded.string_or("model_digest", "")) {
      const std::string was = recorded.string_or("path", "");
      const json no_files = json::array();
      const std::string diff = describe_differences(
          file_facts(recorded.has("files") ? recorded.at("files") : no_files, json_path, recorded.path_of("files")),
          file_facts(now.files, "", "files"));
      if (was == now.model_path) {
        fail(json_path, "the model at " + now.model_path + " changed on disk since these transforms were learned (" +
                            diff + "); learn them again for the model as it is now");
      }
      fail(json_path, "these transforms were learned for another model (" + was + ", fingerprint " +
                          recorded.string_or("fingerprint", "").substr(0, 16) + "...), not " + now.model_path + " (" +
                          diff + ")");
    }
  }
  out.plan = load_transforms(path_prefix);
  return out;
}

}  // namespace latmix
