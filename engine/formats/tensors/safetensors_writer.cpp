#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/tensor_io.h"

namespace latmix {

namespace fs = std::filesystem;

namespace {

std::string label(const std::string& name) {
  return "tensor '" + name + "'";
}

std::string shape_of(const at::Tensor& t) {
  return shape_to_string(t.sizes().vec());
}

// One file to write: its sources, their layout and the header block.
struct FilePlan {
  fs::path path;
  std::vector<const TensorSource*> sources;
  std::vector<TensorInfo> infos;
  std::string header;
  uint64_t data_bytes = 0;
};

uint64_t source_bytes(const TensorSource& s, const std::string& path) {
  for (int64_t d : s.shape) {
    if (d < 0) fail(path, label(s.name) + ": shape " + shape_to_string(s.shape), "non-negative sizes");
  }
  const auto bytes = tensor_byte_size(s.dtype, s.shape);
  if (!bytes) {
    fail(path, label(s.name) + ": " + std::string(dtype_name(s.dtype)) + " " + shape_to_string(s.shape),
         "a whole number of bytes that fits in 64 bits", "an odd bit count or an overflow");
  }
  return *bytes;
}

void check_sources(const std::vector<TensorSource>& sources, const std::string& path) {
  std::set<std::string_view> names;
  for (const TensorSource& s : sources) {
    if (!names.insert(s.name).second) fail(path, label(s.name), "each tensor name once", "it twice");
    if (!s.produce) fail(path, label(s.name) + ": produce", "a callable", "an empty function");
  }
}

FilePlan plan_file(const fs::path& path, std::vector<const TensorSource*> sources,
                   const std::map<std::string, std::string>& metadata) {
  FilePlan plan;
  plan.path = path;
  plan.sources = std::move(sources);
  for (const TensorSource* s : plan.sources) {
    const uint64_t bytes = source_bytes(*s, path.string());
    plan.infos.push_back(TensorInfo{s->name, s->dtype, s->shape, plan.data_bytes, plan.data_bytes + bytes});
    plan.data_bytes += bytes;
  }
  plan.header = build_safetensors_header(plan.infos, metadata, path.string());
  return plan;
}

// Calls produce() and checks its result against the declared dtype and shape.
at::Tensor produce_checked(const TensorSource& s, const TensorInfo& info, const std::string& path) {
  at::Tensor t = s.produce();
  const std::string what = label(s.name) + ": produce() returned";
  if (!t.defined()) fail(path, what + " an undefined tensor");
  if (t.layout() != at::kStrided) fail(path, what + " a non-dense tensor", "a strided tensor");
  const auto type = to_torch_dtype(s.dtype);
  if (type) {
    if (t.scalar_type() != *type) {
      fail(path, what + " the wrong dtype", std::string(dtype_name(s.dtype)) + " (" + c10::toString(*type) + ")",
           c10::toString(t.scalar_type()));
    }
    if (t.sizes() != at::IntArrayRef(s.shape)) {
      fail(path, what + " the wrong shape", shape_to_string(s.shape), shape_of(t));
    }
  } else if (t.scalar_type() != at::kByte || static_cast<uint64_t>(t.numel()) != info.byte_size()) {
    fail(path, what + " the wrong raw bytes for " + std::string(dtype_name(s.dtype)) + " " + shape_to_string(s.shape),
         "a uint8 tensor of " + std::to_string(info.byte_size()) + " elements",
         std::string(c10::toString(t.scalar_type())) + " " + shape_of(t));
  }
  return t.to(at::kCPU).resolve_conj().resolve_neg().contiguous();
}

struct ByteProgress {
  const JobControl& job;
  uint64_t done = 0;
  uint64_t total = 0;
  void add(uint64_t bytes) {
    done += bytes;
    job.report("write", static_cast<int64_t>(done), static_cast<int64_t>(total));
  }
};

void write_file(AtomicFile& out, const FilePlan& plan, const JobControl& job, ByteProgress& progress) {
  out.write(plan.header.data(), plan.header.size());
  for (size_t i = 0; i < plan.sources.size(); ++i) {
    job.cancel.check();
    at::Tensor t = produce_checked(*plan.sources[i], plan.infos[i], out.target());
    out.write(t.data_ptr(), plan.infos[i].byte_size());
    t.reset();  // release before producing the next one
    progress.add(plan.infos[i].byte_size());
  }
  out.finish();
}

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

// Greedy split in the given order; a tensor larger than the limit gets a shard of its own.
std::vector<std::vector<const TensorSource*>> split_into_shards(const std::vector<TensorSource>& tensors,
                                                                uint64_t max_shard_bytes, const std::string& dir) {
  std::vector<std::vector<const TensorSource*>> groups(1);
  uint64_t in_group = 0;
  for (const TensorSource& s : tensors) {
    const uint64_t bytes = source_bytes(s, dir);
    if (!groups.back().empty() && bytes > max_shard_bytes - std::min(in_group, max_shard_bytes)) {
      groups.emplace_back();
      in_group = 0;
    }
    groups.back().push_back(&s);
    in_group += bytes;
  }
  return groups;
}

}  // namespace

TensorSource tensor_source(std::string name, at::Tensor tensor) {
  const auto dtype = from_torch_dtype(tensor.scalar_type());
  if (!dtype) {
    fail("", label(name) + ": LibTorch type " + c10::toString(tensor.scalar_type()) + " has no safetensors dtype");
  }
  TensorSource s;
  s.name = std::move(name);
  s.dtype = *dtype;
  s.shape = tensor.sizes().vec();
  s.produce = [t = std::move(tensor)] { return t; };
  return s;
}

void write_safetensors(const std::string& path, const std::vector<TensorSource>& tensors,
                       const std::map<std::string, std::string>& metadata, const JobControl& job) {
  check_sources(tensors, path);
  std::vector<const TensorSource*> all;
  for (const TensorSource& s : tensors) all.push_back(&s);
  const FilePlan plan = plan_file(path, std::move(all), metadata);
  ByteProgress progress{job, 0, plan.data_bytes};
  job.report("write", 0, static_cast<int64_t>(plan.data_bytes));
  AtomicFile out(plan.path.string());
  write_file(out, plan, job, progress);
  out.commit();
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSource> sources;
  sources.reserve(tensors.size());
  for (const auto& [name, t] : tensors) sources.push_back(tensor_source(name, t));
  write_safetensors(path, sources, metadata);
}

void write_safetensors_sharded(const std::string& dir, const std::vector<TensorSource>& tensors,
                               uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata,
                               const JobControl& job) {
  if (max_shard_bytes == 0) fail(dir, "max_shard_bytes", "more than 0", "0");
  check_sources(tensors, dir);
  const auto groups = split_into_shards(tensors, max_shard_bytes, dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create the output folder", "", ec.message());
  if (groups.size() == 1) {
    write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, metadata, job);
    return;
  }

  std::vector<FilePlan> plans;
  SafetensorsIndex index;
  index.total_size = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    const std::string name = shard_name(i, groups.size());
    for (const TensorSource* s : groups[i]) index.weight_map[s->name] = name;
    plans.push_back(plan_file(fs::path(dir) / name, groups[i], metadata));
    *index.total_size += plans.back().data_bytes;
  }
  const uint64_t total = *index.total_size;
  ByteProgress progress{job, 0, total};
  job.report("write", 0, static_cast<int64_t>(total));
  std::vector<std::unique_ptr<AtomicFile>> temps;  // all complete before any is renamed
  for (const FilePlan& plan : plans) {
    temps.push_back(std::make_unique<AtomicFile>(plan.path.string()));
    write_file(*temps.back(), plan, job, progress);
  }
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  temps.push_back(std::make_unique<AtomicFile>(index_path.string()));
  const std::string index_text = build_safetensors_index(index);
  temps.back()->write(index_text.data(), index_text.size());
  temps.back()->finish();
  for (auto& temp : temps) temp->commit();
}

}  // namespace latmix
