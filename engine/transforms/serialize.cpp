// Transforms to and from PREFIX.safetensors + PREFIX.json.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/tensor_io.h"
#include "latmix/transform_fold.h"

namespace latmix {

namespace {

using nlohmann::json;

const at::Tensor& need(const NamedTensors& tensors, const std::string& name, const std::string& origin) {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  fail(origin, "tensor '" + name + "'", "present", "missing");
}

TransformPtr build(const std::string& kind, int64_t dim, const JsonObject& j, const NamedTensors& t,
                   const std::string& origin) {
  if (kind == "identity") return std::make_shared<IdentityTransform>(dim);
  if (kind == "diagonal") {
    return std::make_shared<DiagonalTransform>(need(t, "scale", origin), j.boolean_or("trainable", false));
  }
  if (kind == "hadamard") return std::make_shared<HadamardTransform>(dim, need(t, "signs", origin));
  if (kind == "block_hadamard") {
    return std::make_shared<BlockHadamardTransform>(dim, j.integer("block"), need(t, "signs", origin));
  }
  if (kind == "orthogonal") return std::make_shared<OrthogonalTransform>(need(t, "q", origin));
  if (kind == "rotation") {
    const std::string map = j.string_or("map", "exp");
    if (map != "exp" && map != "cayley") fail(origin, "rotation map", "exp or cayley", "'" + map + "'");
    auto r = std::make_shared<RotationTransform>(
        dim, need(t, "base", origin), map == "exp" ? RotationTransform::Map::Exp : RotationTransform::Map::Cayley);
    r->set_generator(need(t, "g", origin));
    return r;
  }
  if (kind == "affine_qr" || kind == "affine_lu") {
    auto param = kind == "affine_qr" ? AffineTransform::Param::QR : AffineTransform::Param::LU;
    auto a = std::make_shared<AffineTransform>(dim, param);
    a->load_state(t, origin);
    return a;
  }
  if (kind == "kronecker") {
    auto k = std::make_shared<KroneckerTransform>(j.integer("d1"), j.integer("d2"), j.boolean_or("bias", false));
    k->load_state(t, origin);
    return k;
  }
  fail(origin, "transform kind",
       "identity, diagonal, hadamard, block_hadamard, orthogonal, rotation, affine_qr, affine_lu or kronecker",
       "'" + kind + "'");
}

void add_slot(const TransformPtr& t, const std::string& prefix, json& slot,
              std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  if (!t) {
    slot = nullptr;
    return;
  }
  slot = t->describe();
  for (const auto& [name, tensor] : t->state()) {
    tensors.emplace_back(prefix + name, tensor.detach().to(at::kCPU).contiguous());
  }
}

TransformPtr read_slot(const json& slot, const std::string& prefix, const SafetensorsFile& file,
                       const std::string& origin) {
  if (slot.is_null()) return nullptr;
  if (!slot.is_object() || !slot.contains("kind") || !slot["kind"].is_string()) {
    fail(origin, "transform '" + prefix + "'", "an object with a kind", json_excerpt(slot));
  }
  NamedTensors tensors;
  for (const auto& info : file.header().tensors) {
    const std::string& name = info.name;
    if (name.rfind(prefix, 0) == 0 && name.find('.', prefix.size()) == std::string::npos) {
      tensors.emplace_back(name.substr(prefix.size()), file.tensor(name));
    }
  }
  return transform_from_state(slot, tensors, origin + " (" + prefix + ")");
}

std::vector<TransformPtr> read_list(const json& j, const char* key, const SafetensorsFile& file,
                                    const std::string& origin) {
  std::vector<TransformPtr> out;
  if (!j.contains(key)) return out;
  if (!j[key].is_array()) fail(origin, std::string("key '") + key + "'", "an array", j[key].type_name());
  for (size_t l = 0; l < j[key].size(); ++l) {
    out.push_back(read_slot(j[key][l], std::string(key) + "." + std::to_string(l) + ".", file, origin));
  }
  return out;
}

}  // namespace

TransformPtr transform_from_state(const json& description, const NamedTensors& tensors, const std::string& origin) {
  if (!description.is_object() || !description.contains("kind") || !description["kind"].is_string()) {
    fail(origin, "transform description", "an object with \"kind\"", json_excerpt(description));
  }
  const JsonObject d(description, origin);
  const int64_t dim = d.integer("dim");
  TransformPtr t = build(d.string("kind"), dim, d, tensors, origin);
  if (t->dim() != dim) fail(origin, "transform width", std::to_string(dim), std::to_string(t->dim()));
  return t;
}

void save_transforms(const std::string& path_prefix, const TransformPlan& plan) {
  save_transforms(path_prefix, plan, json());
}

void save_transforms(const std::string& path_prefix, const TransformPlan& plan, const json& metadata) {
  json j = {{"format", "latmix-transforms"}, {"version", 1}};
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  add_slot(plan.residual, "residual.", j["residual"], tensors);
  auto add_list = [&](const char* key, const std::vector<TransformPtr>& list) {
    j[key] = json::array();
    for (size_t l = 0; l < list.size(); ++l) {
      add_slot(list[l], std::string(key) + "." + std::to_string(l) + ".", j[key][l], tensors);
    }
  };
  add_list("value", plan.value);
  add_list("down_online", plan.down_online);
  // Written only when used, so files of plans without them stay as before.
  if (!plan.attn_online.empty()) add_list("attn_online", plan.attn_online);
  if (!plan.mlp_online.empty()) add_list("mlp_online", plan.mlp_online);
  if (!metadata.is_null()) j["metadata"] = metadata;
  write_safetensors(path_prefix + ".safetensors", tensors, {{"format", "latmix-transforms"}});
  write_file_atomic(path_prefix + ".json", j.dump(2) + "\n");
}

TransformPlan load_transforms(const std::string& path_prefix) {
  const std::string json_path = path_prefix + ".json";
  const json j = read_json_file(json_path);
  const JsonObject r(j, json_path);
  if (r.string_or("format", "") != "latmix-transforms") {
    fail(json_path, "format", "\"latmix-transforms\"", r.string_or("format", "none"));
  }
  if (r.integer_or("version", 0) != 1) fail(json_path, "version", "1", std::to_string(r.integer_or("version", 0)));
  auto file = SafetensorsFile::open(path_prefix + ".safetensors");
  TransformPlan plan;
  plan.residual = read_slot(r.has("residual") ? j["residual"] : json(), "residual.", *file, json_path);
  plan.value = read_list(j, "value", *file, json_path);
  plan.down_online = read_list(j, "down_online", *file, json_path);
  plan.attn_online = read_list(j, "attn_online", *file, json_path);
  plan.mlp_online = read_list(j, "mlp_online", *file, json_path);
  return plan;
}

json load_transforms_metadata(const std::string& path_prefix) {
  const std::string json_path = path_prefix + ".json";
  const json j = read_json_file(json_path);
  if (!j.is_object() || !j.contains("metadata")) return nullptr;
  if (!j["metadata"].is_object()) fail(json_path, "key 'metadata'", "an object", j["metadata"].type_name());
  return j["metadata"];
}

}  // namespace latmix
