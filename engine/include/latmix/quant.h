#pragma once
/// \file quant.h
/// Room: engine/quant/ (latmix_engine).
/// The quantized model: a QuantSpec says what to quantize in which MX format, quantize_model()
/// applies it to a copy of a model (docs/quantization.md).
///
/// What is quantized, per decoder layer in the spec's range:
///  - weights of q/k/v/o/gate/up/down (W [out, in], MX blocks along `in`), replaced by their
///    dequantized values (round-to-nearest, or MX-aware GPTQ, see quant_gptq.h);
///  - activations entering those linears (CapturePoint AttnIn, OIn, MlpIn, DownIn), fake-quantized
///    at run time along the last dimension by an ActivationQuantHook;
///  - embeddings never; lm_head (weights, and its input FinalNormOut when activations are
///    quantized) only with `lm_head=FORMAT`. Norm gains and biases stay in high precision.
///
/// Spec grammar (comma-separated key=value items, in any order; one grammar everywhere):
///   w=FORMAT|none        weight format (none: weights kept)
///   a=FORMAT|none        activation format (none: activations kept; W4A16 = w=mxfp4,a=none)
///   FORMAT               shorthand for w=FORMAT,a=FORMAT
///   block=N              MX block size of every format (default: the format's, 32 for MX)
///   scale=floor|ceil|rceil|even   E8M0 scale rule (default floor, OCP)
///   round=even|away      element rounding (default even)
///   weights=rtn|gptq     weight quantizer (default rtn; gptq needs calibration data)
///   lm_head=FORMAT|none  quantize lm_head too (default none)
///   layers=A-B | A- | A  decoder layers to quantize (default all; A- = A to the last)
///   damp=X, act_order=on|off, gptq_block=N, gptq_scales=dynamic|static
///                        GPTQ options (defaults 0.01, off, 128, dynamic; see quant_gptq.h)
/// FORMAT is an MxFormat name (mxfp4, mxfp6_e3m2, mxfp6_e2m3, mxfp8_e4m3, mxfp8_e5m2, mxint8,
/// mxint4, nvfp4) or the aliases mxfp8 (= mxfp8_e4m3) and mxfp6 (= mxfp6_e2m3).
/// block/scale/round apply to every format of the spec.
///
/// Hook order: quantize_model() keeps the hooks the FP model already has (e.g. the
/// OnlineTransformHook of a folded down_online transform at DownIn) and installs the activation
/// hook after them, so activations are quantized after they are transformed, as a deployed
/// kernel would see them. Install further transform hooks on the quantized model *before* it
/// (i.e. quantize a model whose transforms are already in place).

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/mx.h"
#include "latmix/progress.h"
#include "latmix/quant_gptq.h"

namespace latmix {

namespace dist {
class Group;
}

/// The weight quantizer.
enum class WeightMethod {
  Rtn,   ///< round to nearest (fake_quantize of the weight)
  Gptq,  ///< MX-aware GPTQ with calibration data
};

/// "rtn" / "gptq".
std::string to_string(WeightMethod method);

/// What to quantize and how. An unset format means "kept in the model's precision".
struct QuantSpec {
  std::optional<MxFormat> weights;      ///< linear weights of the decoder layers
  std::optional<MxFormat> activations;  ///< inputs of those linears
  std::optional<MxFormat> lm_head;      ///< lm_head weight (default: kept, as the papers do)
  WeightMethod method = WeightMethod::Rtn;
  int64_t first_layer = 0;  ///< first decoder layer quantized
  int64_t last_layer = -1;  ///< last decoder layer quantized (inclusive); -1: the last one
  GptqOptions gptq;         ///< used when method == Gptq

  /// Whether decoder layer `layer` is quantized (for a model of `num_layers` layers).
  bool covers_layer(int64_t layer, int64_t num_layers) const;
};

/// Parses the grammar above. \throws latmix::UsageError naming the bad key or value (unknown key,
/// duplicate key, bad format name, block < 1, a malformed layer range, ...).
QuantSpec parse_quant_spec(const std::string& text);

/// The canonical form: "w=mxfp4,a=mxfp4,block=32,scale=floor,round=even,weights=rtn" then, when
/// not default, lm_head, layers and (for gptq) damp/act_order/gptq_block/gptq_scales.
/// parse_quant_spec(to_string(s)) == s for every spec parse_quant_spec() can produce.
std::string to_string(const QuantSpec& spec);

bool operator==(const QuantSpec& a, const QuantSpec& b);
inline bool operator!=(const QuantSpec& a, const QuantSpec& b) {
  return !(a == b);
}

/// Fake-quantizes the inputs of the quantized linears along their last dimension:
/// AttnIn, OIn, MlpIn, DownIn of the covered layers, and FinalNormOut when `lm_head_input`.
class ActivationQuantHook : public CaptureHook {
 public:
  ActivationQuantHook(MxFormat format, int64_t first_layer, int64_t last_layer, bool lm_head_input, int64_t num_layers);
  bool wants(CapturePoint point, int64_t layer) const override;
  at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) override;
  const MxFormat& format() const { return format_; }

 private:
  MxFormat format_;
  int64_t first_, last_;
  bool lm_head_input_;
  int64_t num_layers_;
};

/// One quantized linear's figures.
struct LinearQuantReport {
  int64_t layer = 0;          ///< decoder layer (num_layers for lm_head)
  std::string name;           ///< "q", "k", "v", "o", "gate", "up", "down", "lm_head"
  double weight_sqnr_db = 0;  ///< 10 log10(||W||^2 / ||W - Q||^2); +inf when exact
  /// GPTQ only (NaN for RTN): relative squared output error on the calibration inputs,
  /// tr(dW H dW^T) / tr(W H W^T) (see GptqResult).
  double relative_output_error = 0;
  int64_t reprojected = 0;  ///< GPTQ only: see GptqResult::reprojected
  double seconds = 0;
};

/// What quantize_model() did.
struct QuantReport {
  std::string spec;  ///< canonical spec
  std::vector<LinearQuantReport> linears;
  int64_t calibration_sequences = 0;  ///< GPTQ only
  int64_t calibration_seqlen = 0;
  double seconds = 0;
  /// A few lines: the spec, the time, the mean weight SQNR per linear kind.
  std::string describe() const;
};

/// The result: a new model (weights copied where quantized; the FP model is untouched) with the
/// activation hook installed (null when activations are kept), and the report.
struct QuantizedModel {
  Model model;
  std::shared_ptr<ActivationQuantHook> activation_hook;
  QuantReport report;
};

/// Applies `spec` to a copy of `fp` (see the file comment). GPTQ needs `calib`; it runs layer by
/// layer: the Hessians of layer l's four linear inputs are collected in one pass over the
/// calibration data through the model whose layers < l are already quantized (weights only, the
/// GPTQ convention: no activation quantization while calibrating), then layer l's weights are
/// quantized. The calibration set's residual stream is carried from layer to layer (each layer
/// runs twice: for its Hessians, then with its quantized weights for the next layer's inputs), so
/// the work grows linearly with the depth. Memory: that stream (samples x seqlen x hidden in the
/// model's dtype, on its device) and the Hessians of one layer. lm_head's Hessian comes from one
/// full pass of the quantized model.
/// Progress: stage "quantize", done/total in linears; cancel checked between linears and batches.
/// \throws latmix::UsageError for a layer range outside the model, GPTQ without calibration data,
/// or GPTQ with nvfp4 weights; latmix::Cancelled when cancelled.
QuantizedModel quantize_model(const Model& fp, const QuantSpec& spec, const CalibrationSet* calib = nullptr,
                              const JobControl& job = {});

/// Where quantize_model() keeps what it made, and who shares the work.
struct QuantizeOptions {
  /// Each layer's quantized linears move to host memory once the calibration stream has passed
  /// the layer (the export of a model on a GPU: device memory stays the FP model plus one layer's
  /// work, not two models). The quantized model then cannot run forward; GPTQ of lm_head (which
  /// runs the whole quantized model) keeps the layers on the device.
  bool layers_to_host = false;
  /// Data-parallel GPTQ (issue 22; null: this process alone). Every process of the group calls
  /// quantize_model() with the same model, spec and calibration set. Each runs its share of the
  /// calibration batches through the layers (batch b goes to rank b mod N); each Hessian is the
  /// processes' sums added up (sum over ranks of samples x running mean, divided by all samples);
  /// the seven linears of a layer are GPTQ-quantized by rank (index mod N) and sent to the others.
  /// Every process ends with the same weights and report. Against one process the Hessians differ
  /// in the order of their float sums only, which can move a GPTQ rounding decision.
  dist::Group* group = nullptr;
};
QuantizedModel quantize_model(const Model& fp, const QuantSpec& spec, const CalibrationSet* calib,
                              const JobControl& job, const QuantizeOptions& options);

/// Quantizes a model's linear weights on demand, one decoder layer at a time, without holding the
/// quantized model: for writers that stream tensor by tensor (an export of a mapped model).
/// weight() gives exactly the tensor quantize_model() would put in that slot: RTN quantizes the
/// one weight asked for; GPTQ quantizes the seven linears of a layer when the first of them is
/// asked for (the Hessians of one layer at a time, collected from the calibration stream carried
/// through the layers before it with their quantized weights, as quantize_model() does) and holds
/// them until a later layer is asked for. Memory: one layer's quantized weights and Hessians, the
/// calibration stream, and one converted matrix of the FP model (a mapped model stays mapped).
class StreamingQuantizer {
 public:
  /// \throws latmix::UsageError as quantize_model() does, and for GPTQ with lm_head=FORMAT (its
  /// Hessian needs a pass of the whole quantized model: use quantize_model()).
  StreamingQuantizer(const Model& fp, const QuantSpec& spec, const CalibrationSet* calib, const JobControl& job);
  ~StreamingQuantizer();
  StreamingQuantizer(const StreamingQuantizer&) = delete;
  StreamingQuantizer& operator=(const StreamingQuantizer&) = delete;

  /// The quantized weight [out, in] in the model's compute dtype of linear `name` ("q", "k", "v",
  /// "o", "gate", "up", "down") of decoder layer `layer`, or of "lm_head" (layer = num_layers).
  /// Under GPTQ, layers must be asked for in increasing order.
  /// \throws latmix::UsageError for a linear the spec does not quantize or an earlier layer.
  at::Tensor weight(int64_t layer, const std::string& name);
  /// The report lines of the linears quantized so far (in the order quantize_model() lists them
  /// when the layers are asked for in order); `seconds` is the time spent quantizing.
  const QuantReport& report() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace latmix
