#include <filesystem>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/tensor_io.h"

namespace latmix {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSingleName = "model.safetensors";
constexpr const char* kIndexName = "model.safetensors.index.json";

std::string label(std::string_view name) {
  return "tensor '" + std::string(name) + "'";
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

TensorStore TensorStore::open(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  TensorStore store;
  store.path_ = path;
  fs::path single;
  fs::path index;
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / kSingleName, ec)) {
      single = p / kSingleName;
    } else if (fs::exists(p / kIndexName, ec)) {
      index = p / kIndexName;
    } else {
      fail(path, "no safetensors weights in the folder", std::string(kSingleName) + " or " + kIndexName, "neither");
    }
  } else if (fs::is_regular_file(p, ec)) {
    (ends_with(path, ".index.json") ? index : single) = p;
  } else {
    fail(path, "cannot open tensors", "a model folder or a .safetensors file", "no such file");
  }

  if (!single.empty()) {
    store.files_.push_back(SafetensorsFile::open(single.string()));
    for (const TensorInfo& t : store.files_[0]->header().tensors) {
      store.entries_.emplace(t.name, Entry{0, &t});
    }
    return store;
  }

  const std::string index_path = index.string();
  const SafetensorsIndex idx = parse_safetensors_index(read_text_file(index_path), index_path);
  if (idx.weight_map.empty()) fail(index_path, "weight_map", "at least one tensor", "none");
  const fs::path folder = index.parent_path();
  for (const std::string& shard : idx.shards()) {
    const fs::path shard_path = folder / shard;
    if (!fs::is_regular_file(shard_path, ec)) {
      fail(index_path, "shard '" + shard + "' listed in weight_map", "an existing file",
           "no file " + shard_path.string());
    }
    store.files_.push_back(SafetensorsFile::open(shard_path.string()));
    const size_t file_index = store.files_.size() - 1;
    for (const TensorInfo& t : store.files_.back()->header().tensors) {
      const auto listed = idx.weight_map.find(t.name);
      if (listed == idx.weight_map.end()) {
        fail(index_path, label(t.name) + " of shard '" + shard + "' is not in weight_map", "every tensor listed",
             "an unlisted tensor");
      }
      if (listed->second != shard) {
        fail(index_path, label(t.name) + " is listed in shard '" + listed->second + "'",
             "only in '" + listed->second + "'", "also in '" + shard + "'");
      }
      store.entries_.emplace(t.name, Entry{file_index, &t});
    }
  }
  for (const auto& [name, shard] : idx.weight_map) {
    if (store.entries_.count(name) == 0) {
      fail(index_path, label(name) + " listed in weight_map", "in shard '" + shard + "'", "not in that shard");
    }
  }
  return store;
}

const TensorStore::Entry& TensorStore::require(std::string_view name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) fail(path_, label(name) + " missing");
  return it->second;
}

bool TensorStore::contains(std::string_view name) const {
  return entries_.find(name) != entries_.end();
}

at::Tensor TensorStore::get(std::string_view name) const {
  return files_[require(name).file]->tensor(name);
}

at::Tensor TensorStore::raw_bytes(std::string_view name) const {
  return files_[require(name).file]->raw_bytes(name);
}

const TensorInfo& TensorStore::info(std::string_view name) const {
  return *require(name).info;
}

const SafetensorsFile& TensorStore::file_of(std::string_view name) const {
  return *files_[require(name).file];
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& file : files_) {
    for (const TensorInfo& t : file->header().tensors) out.push_back(t.name);
  }
  return out;
}

std::vector<std::string> TensorStore::names_ending_with(std::string_view suffix) const {
  std::vector<std::string> out;
  for (std::string& name : names()) {
    if (ends_with(name, suffix)) out.push_back(std::move(name));
  }
  return out;
}

uint64_t TensorStore::total_bytes() const {
  uint64_t total = 0;
  for (const auto& file : files_) total += file->header().data_size;
  return total;
}

std::vector<std::string> TensorStore::files() const {
  std::vector<std::string> out;
  for (const auto& file : files_) out.push_back(file->path());
  return out;
}

const std::map<std::string, std::string>& TensorStore::metadata() const {
  return files_.front()->header().metadata;
}

}  // namespace latmix
