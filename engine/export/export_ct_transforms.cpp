// compressed-tensors transform groups (issue 18): one group per distinct matrix, float32, a
// block-diagonal transform stored as its one block with head_dim, and the read-back checks.
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <filesystem>

#include "export/export_internal.h"
#include "latmix/error.h"
#include "latmix/json.h"

namespace latmix::export_detail {

namespace fs = std::filesystem;

namespace {

// The smallest block size b < n (a power of two, at least 2) for which the n x n matrix is
// block-diagonal with every block equal to the first; n when there is none.
int64_t repeated_block(const at::Tensor& m) {
  const int64_t n = m.size(0);
  for (int64_t b = 2; b < n; b *= 2) {
    // Quick reject on row 0 before building an n x n comparison.
    if (n % b != 0 || m[0].narrow(0, b, n - b).ne(0).any().item<bool>()) continue;
    const at::Tensor first = m.narrow(0, 0, b).narrow(1, 0, b);
    const at::Tensor expected = at::kron(at::eye(n / b, m.options()), first);
    if (at::equal(m, expected)) return b;
  }
  return n;
}

const char* kTransformed[] = {"q", "k", "v", "gate", "up", "down"};

// For F = A^T = D B^T (A = B D: signs first, then a block-diagonal B, as MR-GPTQ's block
// Hadamard): the signs d that make D F block-diagonal with equal blocks, or undefined. Row jb + i
// takes the sign that matches its block to block 0's row i.
at::Tensor factor_signs(const at::Tensor& f) {
  const int64_t n = f.size(0);
  for (int64_t b = 2; b < n; b *= 2) {
    if (n % b != 0 || f[0].narrow(0, b, n - b).ne(0).any().item<bool>()) continue;
    // Block 0's rows get the sign that makes the block's first column non-negative (for a Hadamard
    // block: the plain Sylvester matrix), so that layers with different signs share one block.
    at::Tensor d = at::where(f.select(1, 0) < 0, at::full({n}, -1.0, f.options()), at::ones({n}, f.options()));
    d.narrow(0, b, n - b).fill_(1);
    bool ok = true;
    for (int64_t r = b; r < n && ok; ++r) {
      const int64_t j = r / b, i = r % b;
      const at::Tensor mine = f[r].narrow(0, j * b, b), ref = f[i].narrow(0, 0, b) * d[i];
      if (at::equal(mine, ref)) continue;
      if (at::equal(mine, -ref)) {
        d[r] = -1;
        continue;
      }
      ok = false;
    }
    if (ok && repeated_block(f * d.unsqueeze(1)) == b) return d;
  }
  return {};
}

}  // namespace

std::vector<CtTransformGroup> ct_transform_groups(const TransformPlan& plan, const ModelConfig& config,
                                                  std::vector<CtSignFold>* sign_folds) {
  c10::InferenceMode guard;
  std::vector<CtTransformGroup> groups;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    const Transform* last = nullptr;
    at::Tensor block;
    for (const char* name : kTransformed) {
      const TransformPtr t = online_transform(plan, l, name);
      if (!t) continue;
      if (t.get() != last) {  // q/k/v (and gate/up) share one transform: one matrix
        const int64_t n = t->dim();
        // Rows e_i A^T; stored as sqrt(n) A^T so that x W / sqrt(n) = x A^T (both runtimes).
        at::Tensor a_t = t->forward(at::eye(n, at::TensorOptions().dtype(at::kDouble)));
        int64_t b = repeated_block(a_t.to(at::kFloat));
        if (b == n) {
          // Signs before the blocks fold into what produces the input: up_proj's rows for down_proj
          // ((s * up(h)) * silu(gate(h)) = s * x), the norm's gain for q/k/v and gate/up.
          const at::Tensor d = factor_signs(a_t.to(at::kFloat));
          if (d.defined()) {
            a_t = a_t * d.to(at::kDouble).unsqueeze(1);
            b = repeated_block(a_t.to(at::kFloat));
            if (sign_folds) sign_folds->push_back({l, transform_scheme_name(name), d});
          }
        }
        block = (a_t.narrow(0, 0, b).narrow(1, 0, b) * std::sqrt(static_cast<double>(b))).to(at::kFloat).contiguous();
        last = t.get();
      }
      const std::string scheme = transform_scheme_name(name);
      const std::string module = hf_linear_name(l, name);
      CtTransformGroup* found = nullptr;
      for (auto& g : groups) {
        if (g.scheme == scheme && g.matrix.sizes() == block.sizes() && at::equal(g.matrix, block)) found = &g;
      }
      if (!found) {
        groups.push_back({scheme, scheme, {}, block, block.size(0) < t->dim() ? block.size(0) : 0, t->dim()});
        found = &groups.back();
      }
      found->modules.push_back(module);
    }
  }
  // Names: the scheme alone when it has one group, else scheme_0, scheme_1, ... in layer order.
  std::map<std::string, int> count, index;
  for (const auto& g : groups) ++count[g.scheme];
  for (auto& g : groups) {
    if (count[g.scheme] > 1) g.name = g.scheme + "_" + std::to_string(index[g.scheme]++);
  }
  return groups;
}

std::string fold_ct_signs(Model& model, const std::vector<CtSignFold>& folds) {
  c10::InferenceMode guard;
  auto flip_rows = [](at::Tensor& t, const at::Tensor& d) {
    if (t.defined())
      t = t * (t.dim() == 2 ? d.to(t.device(), t.scalar_type()).unsqueeze(1) : d.to(t.device(), t.scalar_type()));
  };
  for (const CtSignFold& f : folds) {
    LayerWeights& lw = model.weights().layers[static_cast<size_t>(f.layer)];
    if (f.scheme == "down_online") {
      flip_rows(lw.up, f.signs);
      flip_rows(lw.up_bias, f.signs);
    } else if (f.scheme == "mlp_online") {
      flip_rows(lw.mlp_norm, f.signs);
    } else {
      flip_rows(lw.attn_norm, f.signs);
    }
  }
  if (folds.empty()) return {};
  return "the random signs of " + std::to_string(folds.size()) +
         " online transforms were folded into what produces their input (up_proj's rows for down_proj, the "
         "norm's gain for q/k/v and gate/up; exact sign flips), so each is stored as one block with head_dim";
}

std::string ct_transform_tensor_name(const std::string& module, const std::string& group) {
  return module + "." + group + "_input.weight";
}

void check_ct_transform_groups(const std::string& dir, ExportVerification& out) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const nlohmann::json config = read_json_file(config_path);
  const nlohmann::json q = config.value("quantization_config", nlohmann::json::object());
  const nlohmann::json groups = q.contains("transform_config") && q["transform_config"].is_object()
                                    ? q["transform_config"].value("config_groups", nlohmann::json::object())
                                    : nlohmann::json::object();
  if (groups.empty()) return;
  const TensorStore store = TensorStore::open(dir);
  std::string problem;
  int64_t modules = 0;
  std::map<std::string, std::string> owner;  // module -> group: a module in two groups is applied twice
  for (const auto& [name, g] : groups.items()) {
    const nlohmann::json head = g.value("head_dim", nlohmann::json());
    at::Tensor first;
    for (const auto& apply : g.value("apply", nlohmann::json::array())) {
      for (const auto& target : apply.value("targets", nlohmann::json::array())) {
        const std::string module = target.get<std::string>();
        const std::string tensor = ct_transform_tensor_name(module, name);
        if (!problem.empty()) break;
        if (owner.count(module)) {
          problem = module + " is a target of groups " + owner[module] + " and " + name;
          break;
        }
        owner[module] = name;
        if (!store.contains(tensor)) {
          problem = "group " + name + ": " + tensor + " is missing";
          break;
        }
        const TensorInfo& info = store.info(tensor);
        const std::string weight =
            store.contains(module + ".weight_packed") ? module + ".weight_packed" : module + ".weight";
        const int64_t in = !store.contains(weight)               ? -1
                           : weight == module + ".weight_packed" ? store.info(weight).shape.at(1) * 2
                                                                 : store.info(weight).shape.at(1);
        const int64_t want = head.is_number_integer() ? head.get<int64_t>() : in;
        if (info.dtype != DType::F32 || info.shape != std::vector<int64_t>{want, want} || in < 0 || in % want != 0) {
          problem = "group " + name + ": " + tensor + " is " + shape_to_string(info.shape) + " (want F32 [" +
                    std::to_string(want) + ", " + std::to_string(want) + "] for an input of " + std::to_string(in) +
                    ")";
          break;
        }
        // compressed-tensors keeps one matrix per size in a group: every target must hold the same one.
        const at::Tensor m = store.get(tensor);
        if (!first.defined()) {
          first = m;
        } else if (!at::equal(first, m)) {
          problem = "group " + name + ": " + tensor +
                    " differs from the group's first matrix (compressed-tensors "
                    "would apply that one to every target)";
          break;
        }
        ++modules;
      }
    }
  }
  out.add("transform groups", problem.empty(),
          problem.empty() ? std::to_string(groups.size()) + " groups, " + std::to_string(modules) +
                                " targets, one F32 matrix per group as compressed-tensors and vLLM read them"
                          : problem);
}

}  // namespace latmix::export_detail
