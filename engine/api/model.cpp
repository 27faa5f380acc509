// The describe-a-model task (latmix/api/model.h): the one summary of a model for `latmix info` and
// the studio, its module rows, and the Overview's weight statistics.
#include "latmix/api/model.h"

#include <c10/core/InferenceMode.h>

#include <utility>

#include "latmix/error.h"
#include "latmix/model_files.h"
#include "latmix/model_inspect.h"
#include "request_json.h"

namespace latmix::api {

using json = nlohmann::json;

namespace {

// ---- JSON ------------------------------------------------------------------------------------------

const detail::FieldTable<DescribeRequest>& request_fields() {
  using R = DescribeRequest;
  static const detail::FieldTable<R> table = {
      {"model", detail::required(&R::model, detail::as_string)},
      {"tokenizer", detail::required(&R::tokenizer, detail::as_string)},
  };
  return table;
}

// A nested object read strictly by its own table; its errors name the outer key.
template <typename T>
T read_nested(const std::string& what, const detail::FieldTable<T>& table, const json& v) {
  return detail::read_request("model description: key '" + what + "'", table, v);
}

struct Rope {
  std::string type;
  double theta = 0;
  std::optional<double> factor;
  std::optional<int64_t> original_max_position;
};
const detail::FieldTable<Rope>& rope_fields() {
  static const detail::FieldTable<Rope> table = {
      {"type", detail::required(&Rope::type, detail::as_string)},
      {"theta", detail::required(&Rope::theta, detail::as_number)},
      {"factor", detail::optional(&Rope::factor, detail::as_number)},
      {"original_max_position", detail::optional(&Rope::original_max_position, detail::as_integer)},
  };
  return table;
}

struct TokenizerFacts {
  std::string kind;
  int64_t vocab_size = 0;
};
const detail::FieldTable<TokenizerFacts>& tokenizer_fields() {
  static const detail::FieldTable<TokenizerFacts> table = {
      {"kind", detail::required(&TokenizerFacts::kind, detail::as_string)},
      {"vocab_size", detail::required(&TokenizerFacts::vocab_size, detail::as_integer)},
  };
  return table;
}

const detail::FieldTable<ModuleRow>& module_fields() {
  using M = ModuleRow;
  static const detail::FieldTable<M> table = {
      {"name", detail::required(&M::name, detail::as_string)},
      {"shape", {[](const M& m) { return json(m.shape); },
                 [](M& m, const json& v) {
                   if (!v.is_array()) throw detail::WrongType{"an array of integers"};
                   m.shape.clear();
                   for (const auto& d : v) m.shape.push_back(detail::as_integer(d));
                 }}},
      {"dtype", detail::required(&M::dtype, detail::as_string)},
      {"parameters", detail::required(&M::parameters, detail::as_integer)},
  };
  return table;
}

template <typename T>
std::vector<T> numbers(const json& v) {
  if (!v.is_array()) throw detail::WrongType{"an array of numbers"};
  std::vector<T> out;
  for (const auto& x : v) out.push_back(static_cast<T>(detail::as_number(x)));
  return out;
}

const detail::FieldTable<WeightOverview>& overview_fields() {
  using W = WeightOverview;
  static const detail::FieldTable<W> table = {
      {"columns", {[](const W& w) { return json(w.columns); },
                   [](W& w, const json& v) {
                     if (!v.is_array()) throw detail::WrongType{"an array of strings"};
                     w.columns.clear();
                     for (const auto& c : v) w.columns.push_back(detail::as_string(c));
                   }}},
      {"rows", detail::required(&W::rows, detail::as_integer)},
      {"max_over_rms", {[](const W& w) { return json(w.max_over_rms); },
                        [](W& w, const json& v) { w.max_over_rms = numbers<float>(v); }}},
      {"rms", {[](const W& w) { return json(w.rms); }, [](W& w, const json& v) { w.rms = numbers<float>(v); }}},
  };
  return table;
}

// `latmix info --json`'s keys, in its order.
const detail::FieldTable<ModelDescription>& description_fields() {
  using D = ModelDescription;
  using detail::as_bool;
  using detail::as_integer;
  using detail::as_number;
  using detail::as_string;
  using detail::as_unsigned;
  using detail::required;
  static const detail::FieldTable<D> table = {
      {"path", required(&D::path, as_string)},
      {"architecture", required(&D::architecture, as_string)},
      {"family", required(&D::family, as_string)},
      {"source_format", required(&D::source_format, as_string)},
      {"layers", required(&D::layers, as_integer)},
      {"hidden_size", required(&D::hidden_size, as_integer)},
      {"intermediate_size", required(&D::intermediate_size, as_integer)},
      {"attention_heads", required(&D::attention_heads, as_integer)},
      {"kv_heads", required(&D::kv_heads, as_integer)},
      {"head_dim", required(&D::head_dim, as_integer)},
      {"vocab_size", required(&D::vocab_size, as_integer)},
      {"max_position", required(&D::max_position, as_integer)},
      {"rope", {[](const D& d) {
                  Rope r{d.rope_type, d.rope_theta, d.rope_factor, d.rope_original_max_position};
                  json j = detail::write_request(rope_fields(), r);
                  for (const char* k : {"factor", "original_max_position"}) {
                    if (j[k].is_null()) j.erase(k);  // llama3 rope only
                  }
                  return j;
                },
                [](D& d, const json& v) {
                  const Rope r = read_nested("rope", rope_fields(), v);
                  d.rope_type = r.type;
                  d.rope_theta = r.theta;
                  d.rope_factor = r.factor;
                  d.rope_original_max_position = r.original_max_position;
                }}},
      {"rms_norm_eps", required(&D::rms_norm_eps, as_number)},
      {"tied_embeddings", required(&D::tied_embeddings, as_bool)},
      {"attention_bias", required(&D::attention_bias, as_bool)},
      {"qk_norm", required(&D::qk_norm, as_bool)},
      {"checkpoint_dtype", required(&D::checkpoint_dtype, as_string)},
      {"parameters", required(&D::parameters, as_integer)},
      {"weight_bytes", required(&D::weight_bytes, as_unsigned)},
      {"stored_dtypes", {[](const D& d) { return json(d.stored_dtypes); },
                         [](D& d, const json& v) {
                           if (!v.is_object()) throw detail::WrongType{"an object of dtype: tensor count"};
                           d.stored_dtypes.clear();
                           for (const auto& [k, n] : v.items()) d.stored_dtypes[k] = as_integer(n);
                         }}},
      {"tokenizer", {[](const D& d) {
                       const TokenizerFacts t{d.tokenizer_kind, d.tokenizer_vocab};
                       return detail::write_request(tokenizer_fields(), t);
                     },
                     [](D& d, const json& v) {
                       const TokenizerFacts t = read_nested("tokenizer", tokenizer_fields(), v);
                       d.tokenizer_kind = t.kind;
                       d.tokenizer_vocab = t.vocab_size;
                     }}},
      {"modules", {[](const D& d) {
                     json rows = json::array();
                     for (const auto& m : d.modules) rows.push_back(detail::write_request(module_fields(), m));
                     return rows;
                   },
                   [](D& d, const json& v) {
                     if (!v.is_array()) throw detail::WrongType{"an array of module rows"};
                     d.modules.clear();
                     for (const auto& m : v) d.modules.push_back(read_nested("modules", module_fields(), m));
                   }}},
      {"overview", {[](const D& d) {
                      return d.overview ? detail::write_request(overview_fields(), *d.overview) : json(nullptr);
                    },
                    [](D& d, const json& v) {
                      if (v.is_null()) {
                        d.overview.reset();
                      } else {
                        d.overview = read_nested("overview", overview_fields(), v);
                      }
                    },
                    true}},
  };
  return table;
}

void add_row(std::vector<ModuleRow>& rows, const std::string& name, const at::Tensor& t) {
  if (!t.defined()) return;
  rows.push_back({name, t.sizes().vec(), std::string(c10::toString(t.scalar_type())), t.numel()});
}

void add_layer_rows(std::vector<ModuleRow>& rows, int64_t l, const LayerWeights& w) {
  const std::string p = "layers." + std::to_string(l) + ".";
  const std::pair<const char*, const at::Tensor*> named[] = {
      {"input_layernorm", &w.attn_norm}, {"self_attn.q_proj", &w.q},     {"self_attn.q_proj.bias", &w.q_bias},
      {"self_attn.k_proj", &w.k},        {"self_attn.k_proj.bias", &w.k_bias},
      {"self_attn.v_proj", &w.v},        {"self_attn.v_proj.bias", &w.v_bias},
      {"self_attn.o_proj", &w.o},        {"self_attn.q_norm", &w.q_norm}, {"self_attn.k_norm", &w.k_norm},
      {"post_attention_layernorm", &w.mlp_norm}, {"mlp.gate_proj", &w.gate}, {"mlp.up_proj", &w.up},
      {"mlp.down_proj", &w.down}};
  for (const auto& [name, t] : named) add_row(rows, p + name, *t);
}

}  // namespace

std::string ModuleRow::shape_text() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

json to_json(const DescribeRequest& request) { return detail::write_request(request_fields(), request); }

DescribeRequest describe_request_from_json(const json& j) {
  return detail::read_request("describe request", request_fields(), j);
}

json to_json(const ModelDescription& d) {
  json j = detail::write_request(description_fields(), d);
  if (d.modules.empty()) j.erase("modules");
  if (!d.overview) j.erase("overview");
  return j;
}

ModelDescription model_description_from_json(const json& j) {
  return detail::read_request("model description", description_fields(), j);
}

namespace {

// The one place the summary's fields are taken from the headers.
ModelDescription describe(const std::string& path, const ModelHeaders& h, const Tokenizer& tokenizer) {
  const ModelConfig& c = h.config;
  ModelDescription d;
  d.path = path;
  d.architecture = c.architecture_name;
  d.family = to_string(c.arch);
  d.source_format = c.source_format;
  d.layers = c.num_layers;
  d.hidden_size = c.hidden_size;
  d.intermediate_size = c.intermediate_size;
  d.attention_heads = c.num_heads;
  d.kv_heads = c.num_kv_heads;
  d.head_dim = c.head_dim;
  d.vocab_size = c.vocab_size;
  d.max_position = c.max_position;
  d.rope_type = to_string(c.rope.type);
  d.rope_theta = c.rope.theta;
  if (c.rope.type == RopeType::Llama3) {
    d.rope_factor = c.rope.factor;
    d.rope_original_max_position = c.rope.original_max_position;
  }
  d.rms_norm_eps = c.rms_norm_eps;
  d.tied_embeddings = c.tie_word_embeddings;
  d.attention_bias = c.attention_bias;
  d.qk_norm = c.qk_norm;
  d.checkpoint_dtype = c.dtype;
  d.parameters = c.parameter_count();
  d.weight_bytes = h.weight_bytes;
  d.stored_dtypes = h.dtypes;
  d.tokenizer_kind = tokenizer.kind();
  d.tokenizer_vocab = tokenizer.vocab_size();
  return d;
}

}  // namespace

ModelDescription describe_model(const DescribeRequest& request, const Tokenizer& tokenizer) {
  return describe(request.model, inspect_model(request.model), tokenizer);
}

ModelDescription describe_model(const DescribeRequest& request) {
  const ModelHeaders h = inspect_model(request.model);
  // A llama2.c tokenizer file does not say its vocabulary size; the checkpoint's header does.
  const auto tokenizer =
      load_model_tokenizer(request.model, request.tokenizer, static_cast<int32_t>(h.config.vocab_size));
  return describe(request.model, h, *tokenizer);
}

std::vector<ModuleRow> model_modules(const Model& model) {
  const ModelConfig& c = model.config();
  std::vector<ModuleRow> rows;
  add_row(rows, "embed_tokens", model.weights().embed);
  for (int64_t l = 0; l < c.num_layers; ++l) add_layer_rows(rows, l, model.weights().layers[static_cast<size_t>(l)]);
  add_row(rows, "norm", model.weights().final_norm);
  if (!c.tie_word_embeddings) add_row(rows, "lm_head", model.weights().lm_head);
  return rows;
}

std::string weights_held(const Model& model) {
  return model.mapped() ? "memory-mapped (matrices as stored, converted at use)"
                        : "in memory (" + std::string(c10::toString(model.dtype())) + ")";
}

WeightOverview weight_overview(const Model& model, const JobControl& job) {
  c10::InferenceMode guard;
  WeightOverview o;
  o.columns = {"q", "k", "v", "o", "gate", "up", "down"};
  o.rows = model.config().num_layers;
  const int64_t total = o.rows * static_cast<int64_t>(o.columns.size());
  int64_t done = 0;
  job.report("overview", 0, total);
  // The stored weights (const): a mapped model's matrices are read from the mapping, one at a time.
  for (const auto& w : model.weights().layers) {
    for (const at::Tensor* t : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) {
      job.cancel.check();
      at::Tensor f = t->to(at::kFloat);
      const float rms = f.pow(2).mean().sqrt().item<float>();
      o.rms.push_back(rms);
      o.max_over_rms.push_back(rms > 0 ? f.abs().max().item<float>() / rms : 0.f);
      job.report("overview", ++done, total);
    }
  }
  return o;
}

}  // namespace latmix::api
