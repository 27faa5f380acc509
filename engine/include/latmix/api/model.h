#pragma once
/// \file api/model.h
/// Room: engine/api, the use-case layer (issue 16). The describe-a-model task: `latmix info` and the
/// studio's model panel and Overview. One place builds the summary of a model (describe_model(),
/// from its file headers: no weight is read), its module rows (model_modules(), from the loaded
/// model), and the Overview's weight statistics (weight_overview(), which reads every linear).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "latmix/model.h"
#include "latmix/progress.h"
#include "latmix/tokenizer.h"

namespace latmix::api {

/// Which model to describe: `latmix info`'s options.
struct DescribeRequest {
  std::string model;      ///< --model: Hugging Face folder or llama2.c .bin
  std::string tokenizer;  ///< --tokenizer ("": the model's own)
};
nlohmann::json to_json(const DescribeRequest& request);
/// Strict: an unknown key or a value of the wrong type is a latmix::UsageError naming the key
/// ("describe request: key 'model': expected a string, ...").
DescribeRequest describe_request_from_json(const nlohmann::json& json);

/// One tensor of the model, as the model panel lists it.
struct ModuleRow {
  std::string name;   ///< "layers.3.mlp.down_proj"
  std::vector<int64_t> shape;
  std::string dtype;  ///< "float" (LibTorch's name of the dtype held: the file's when mapped)
  int64_t parameters = 0;
  /// "[256, 704]"
  std::string shape_text() const;
};

/// The Overview's weight statistics: rows = layers, columns = the seven linears (q, k, v, o, gate,
/// up, down); max|W| / RMS(W) (the outlier ratio) and RMS(W) of each.
struct WeightOverview {
  std::vector<std::string> columns;
  int64_t rows = 0;
  std::vector<float> max_over_rms;  ///< rows x columns, row-major
  std::vector<float> rms;
};

/// A model described: the architecture, sizes, stored dtypes, parameter count and tokenizer, by the
/// names of `latmix info --json`'s keys.
struct ModelDescription {
  std::string path;
  std::string architecture;   ///< as config.json writes it ("LlamaForCausalLM")
  std::string family;         ///< to_string(Architecture)
  std::string source_format;  ///< "huggingface" or "llama2.c"
  int64_t layers = 0, hidden_size = 0, intermediate_size = 0, attention_heads = 0, kv_heads = 0, head_dim = 0;
  int64_t vocab_size = 0, max_position = 0;
  std::string rope_type;  ///< to_string(RopeType)
  double rope_theta = 0;
  std::optional<double> rope_factor;                   ///< llama3 rope only
  std::optional<int64_t> rope_original_max_position;  ///< llama3 rope only
  double rms_norm_eps = 0;
  bool tied_embeddings = false, attention_bias = false, qk_norm = false;
  std::string checkpoint_dtype;  ///< as the checkpoint declares it
  int64_t parameters = 0;
  uint64_t weight_bytes = 0;                     ///< the tensors the model uses, as stored
  std::map<std::string, int64_t> stored_dtypes;  ///< "BF16" -> tensors stored in it
  std::string tokenizer_kind;
  int64_t tokenizer_vocab = 0;
  /// The tensors of the loaded model (model_modules()); empty when described from the headers.
  std::vector<ModuleRow> modules;
  /// The weight statistics (weight_overview()); unset unless computed.
  std::optional<WeightOverview> overview;
};

/// The description as `latmix info --json` prints it: path, architecture, family, source_format,
/// layers, hidden_size, intermediate_size, attention_heads, kv_heads, head_dim, vocab_size,
/// max_position, rope {type, theta[, factor, original_max_position]}, rms_norm_eps,
/// tied_embeddings, attention_bias, qk_norm, checkpoint_dtype, parameters, weight_bytes,
/// stored_dtypes, tokenizer {kind, vocab_size}; then "modules" (name, shape, dtype, parameters) when
/// there are any, and "overview" (columns, rows, max_over_rms, rms) when computed.
nlohmann::json to_json(const ModelDescription& description);
/// The inverse of to_json(), strict ("model description: key 'layers': ..."); a key left out keeps
/// the default.
ModelDescription model_description_from_json(const nlohmann::json& json);

/// Describes the model from its headers (inspect_model(): config.json or the llama2.c header, and
/// the safetensors headers checked; no weight read, milliseconds for any size) and `tokenizer`.
/// \throws latmix::Error naming the file and the problem.
ModelDescription describe_model(const DescribeRequest& request, const Tokenizer& tokenizer);
/// The same, with the tokenizer the request names (the model's own when unset) loaded here.
ModelDescription describe_model(const DescribeRequest& request);

/// Every tensor of the loaded model, in the order of its files: embed_tokens, each layer's norms,
/// projections and biases, norm, lm_head (when not tied).
std::vector<ModuleRow> model_modules(const Model& model);

/// How the loaded model holds its weights: "memory-mapped (matrices as stored, converted at use)" or
/// "in memory (Float)" (LibTorch's name of the compute dtype).
std::string weights_held(const Model& model);

/// max|W| / RMS(W) of each linear of each layer, each matrix converted to fp32 when read (the same
/// figures mapped or held). Reports ("overview", matrices done, total) and checks the cancel token
/// per matrix.
WeightOverview weight_overview(const Model& model, const JobControl& job = {});

}  // namespace latmix::api
