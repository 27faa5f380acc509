// The explain-a-block task (latmix/api/block.h): requests and results <-> JSON, and the one place
// where a request becomes tokens, an activation, a block, its comparison and its transformed twin.
#include "latmix/api/block.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "latmix/calib_data.h"
#include "latmix/calib_transforms.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "request_json.h"
#include "result_json.h"
#include "windows.h"

namespace latmix::api {

using json = nlohmann::json;

namespace {

const char* const kMxFormats[] = {"mxfp4",      "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3",
                                  "mxfp8_e5m2", "mxint8",     "mxint4"};

// ---- JSON ------------------------------------------------------------------------------------------

// A number that may not be finite: the string "inf", "-inf" or "nan" (result_json.h).
using detail::as_real;
using detail::real_json;
template <typename T>
json reals_json(const std::vector<T>& values) {
  json out = json::array();
  for (T v : values) out.push_back(real_json(static_cast<double>(v)));
  return out;
}
template <typename T>
std::vector<T> as_reals(const json& v) {
  if (!v.is_array()) throw detail::WrongType{"an array of numbers"};
  std::vector<T> out;
  for (const auto& x : v) out.push_back(static_cast<T>(as_real(x)));
  return out;
}
std::vector<int64_t> as_ids(const json& v) {
  if (!v.is_array()) throw detail::WrongType{"an array of integers"};
  std::vector<int64_t> out;
  for (const auto& x : v) out.push_back(detail::as_integer(x));
  return out;
}
std::vector<int> as_codes(const json& v) {
  if (!v.is_array()) throw detail::WrongType{"an array of integers"};
  std::vector<int> out;
  for (const auto& x : v) out.push_back(static_cast<int>(detail::as_integer(x)));
  return out;
}

// A member written and read by two functions (the views, the comparison rows).
template <typename R, typename T, typename Write, typename Read>
detail::Field<R> member(T R::*m, Write write, Read read) {
  return {[m, write](const R& r) { return write(r.*m); }, [m, read](R& r, const json& v) { r.*m = read(v); }, false};
}

// In the order of `latmix mx block --help`.
const detail::FieldTable<ExplainBlockRequest>& request_fields() {
  using R = ExplainBlockRequest;
  using detail::as_bool;
  using detail::as_integer;
  using detail::as_string;
  using detail::as_unsigned;
  using detail::required;
  static const detail::FieldTable<R> table = {
      {"model", required(&R::model, as_string)},
      {"tokenizer", required(&R::tokenizer, as_string)},
      {"point", required(&R::point, as_string)},
      {"layer", required(&R::layer, as_integer)},
      {"token", required(&R::token, as_integer)},
      {"block", required(&R::block, as_integer)},
      {"format", required(&R::format, as_string)},
      {"transform", required(&R::transform, as_string)},
      {"sample", required(&R::sample, as_string)},
      {"sample_tokens", required(&R::sample_tokens, as_integer)},
      {"text", required(&R::text, as_string)},
      {"sequence", required(&R::sequence, as_integer)},
      {"samples", required(&R::samples, as_integer)},
      {"seqlen", required(&R::seqlen, as_integer)},
      {"sampling", required(&R::sampling, as_string)},
      {"seed", required(&R::seed, as_unsigned)},
      {"bos", required(&R::bos, as_bool)},
      {"ids", member(&R::ids, [](const std::vector<int64_t>& ids) { return json(ids); }, as_ids)},
      {"dtype", required(&R::dtype, as_string)},
      {"device", required(&R::device, as_string)},
  };
  return table;
}

const detail::FieldTable<MxBlockView>& view_fields() {
  using V = MxBlockView;
  using detail::as_integer;
  using detail::as_string;
  using detail::required;
  auto real = [](double v) { return real_json(v); };
  auto code = [](const json& v) { return static_cast<int>(as_integer(v)); };
  static const detail::FieldTable<V> table = {
      {"format", required(&V::format, as_string)},
      {"format_details", required(&V::format_details, as_string)},
      {"values", member(&V::values, reals_json<float>, as_reals<float>)},
      {"quantized", member(&V::quantized, reals_json<float>, as_reals<float>)},
      {"codes", member(&V::codes, [](const std::vector<int>& c) { return json(c); }, as_codes)},
      {"amax", member(&V::amax, real, as_real)},
      {"scale_code", member(&V::scale_code, [](int c) { return json(c); }, code)},
      {"scale", member(&V::scale, real, as_real)},
      {"scale_rule", required(&V::scale_rule, as_string)},
      {"element_max", member(&V::element_max, real, as_real)},
      {"grid", member(&V::grid, reals_json<double>, as_reals<double>)},
      {"clipped", member(&V::clipped, [](int c) { return json(c); }, code)},
      {"mse", member(&V::mse, real, as_real)},
      {"sqnr_db", member(&V::sqnr_db, real, as_real)},
  };
  return table;
}

const detail::FieldTable<FormatComparison>& comparison_fields() {
  using C = FormatComparison;
  auto real = [](double v) { return real_json(v); };
  static const detail::FieldTable<C> table = {
      {"format", detail::required(&C::format, detail::as_string)},
      {"scale", detail::required(&C::scale, detail::as_string)},
      {"sqnr_db", member(&C::sqnr_db, real, as_real)},
      {"mse", member(&C::mse, real, as_real)},
      {"clipped", detail::required(&C::clipped, detail::as_integer)},
  };
  return table;
}

// Nested values: a mistake inside is named by its path ("block explanation: key 'before': ...").
json view_json(const MxBlockView& v) { return detail::write_request(view_fields(), v); }
MxBlockView read_view(const std::string& what, const json& j) { return detail::read_request(what, view_fields(), j); }
json rows_json(const std::vector<FormatComparison>& rows) {
  json out = json::array();
  for (const auto& r : rows) out.push_back(detail::write_request(comparison_fields(), r));
  return out;
}
std::vector<FormatComparison> read_rows(const std::string& what, const json& j) {
  if (!j.is_array()) throw detail::WrongType{"an array of comparison rows"};
  std::vector<FormatComparison> out;
  for (const auto& r : j) out.push_back(detail::read_request(what, comparison_fields(), r));
  return out;
}

const detail::FieldTable<BlockExplanation>& result_fields() {
  using B = BlockExplanation;
  using detail::as_bool;
  using detail::as_integer;
  using detail::as_string;
  using detail::required;
  const std::string what = "block explanation: key ";
  static const detail::FieldTable<B> table = {
      {"point", required(&B::point, as_string)},
      {"layer", required(&B::layer, as_integer)},
      {"token", required(&B::token, as_integer)},
      {"tokens", required(&B::tokens, as_integer)},
      {"token_id", member(&B::token_id, [](int32_t id) { return json(id); },
                          [](const json& v) { return static_cast<int32_t>(as_integer(v)); })},
      {"token_text", required(&B::token_text, as_string)},
      {"token_clamped", required(&B::token_clamped, as_bool)},
      {"block", required(&B::block, as_integer)},
      {"blocks", required(&B::blocks, as_integer)},
      {"block_clamped", required(&B::block_clamped, as_bool)},
      {"first_channel", required(&B::first_channel, as_integer)},
      {"last_channel", required(&B::last_channel, as_integer)},
      {"format", required(&B::format, as_string)},
      {"transform", required(&B::transform, as_string)},
      {"text", required(&B::text, as_string)},
      {"sequence", required(&B::sequence, as_integer)},
      {"ids", member(&B::ids, [](const std::vector<int64_t>& ids) { return json(ids); }, as_ids)},
      {"before", member(&B::before, view_json, [what](const json& v) { return read_view(what + "'before'", v); })},
      {"comparison", member(&B::comparison, rows_json,
                            [what](const json& v) { return read_rows(what + "'comparison'", v); })},
      {"after",
       {[](const B& b) { return b.after ? view_json(*b.after) : json(nullptr); },
        [what](B& b, const json& v) {
          if (v.is_null()) {
            b.after.reset();
          } else {
            b.after = read_view(what + "'after'", v);
          }
        },
        true}},
      {"comparison_after", member(&B::comparison_after, rows_json,
                                  [what](const json& v) { return read_rows(what + "'comparison_after'", v); })},
  };
  return table;
}

// ---- the task's steps ---------------------------------------------------------------------------------

// The request's tokens: its ids, the sample's opening, or the calibration sequence of its text.
std::vector<int64_t> token_ids(const ExplainBlockRequest& r, const Model& model, const Tokenizer& tokenizer) {
  if (!r.ids.empty()) {
    for (int64_t id : r.ids) {
      if (id < 0 || id >= model.config().vocab_size) {
        throw UsageError("ids: token id " + std::to_string(id) + " outside the vocabulary (0.." +
                         std::to_string(model.config().vocab_size - 1) + ")");
      }
    }
    return r.ids;
  }
  if (r.text.empty()) {
    if (r.sample.empty()) {
      throw UsageError("no text to take tokens from: give --text FILE (the bundled sample was not found)");
    }
    if (r.sample_tokens < 1) throw UsageError("sample_tokens: expected 1 or more");
    const std::string text = read_text_file(r.sample);
    std::vector<int32_t> ids = tokenizer.encode_with_bos(text.substr(0, 8000));
    if (ids.size() > static_cast<size_t>(r.sample_tokens)) ids.resize(static_cast<size_t>(r.sample_tokens));
    if (ids.empty()) fail(r.sample, "no tokens in the sample's opening");
    return {ids.begin(), ids.end()};
  }
  const CalibrationOptions o =
      detail::window_options(r.samples, r.seqlen, r.sampling, r.seed, r.bos, model, tokenizer);
  if (r.sequence < 0 || r.sequence >= r.samples) {
    throw UsageError("--sequence: expected 0 to " + std::to_string(r.samples - 1) + " (--samples " +
                     std::to_string(r.samples) + "), found " + std::to_string(r.sequence));
  }
  const CalibrationSet set = load_calibration_text(r.text, tokenizer, o);
  if (r.sequence >= set.size()) {
    fail(r.text, "calibration sequence", "0 to " + std::to_string(set.size() - 1), std::to_string(r.sequence));
  }
  const auto& seq = set.sequences[static_cast<size_t>(r.sequence)];
  return {seq.begin(), seq.end()};
}

CapturePoint checked_point(const std::string& name) {
  try {
    return parse_capture_point(name);
  } catch (const UsageError& e) {
    throw UsageError(std::string("--point: ") + e.what());
  }
}

MxFormat checked_format(const std::string& name) {
  const auto names = explain_block_formats();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw UsageError("--format: expected one of " + list + ", found '" + name + "'");
  }
  return MxFormat::parse(name);
}

// The transform of the request: none, a built-in one, or a learned plan's file.
ActivationTransform checked_transform(const ExplainBlockRequest& r, const Model& model, const MxFormat& format) {
  const auto names = builtin_transform_names();
  if (std::find(names.begin(), names.end(), r.transform) != names.end()) {
    return make_builtin_activation_transform(r.transform, model, format, r.seed);
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(r.transform + ".json", ec)) {
    throw UsageError("--transform: '" + r.transform + "' is neither a built-in transform (" + builtin_transform_list() +
                     ") nor the prefix of a transforms file (no " + r.transform + ".json)");
  }
  return make_plan_activation_transform(r.transform, model);
}

}  // namespace

std::vector<std::string> explain_block_formats() {
  // A list, not a copy of kMxFormats plus one (GCC 12's -Warray-bounds misjudges the append).
  return {"mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "mxint4", "nvfp4"};
}

json to_json(const ExplainBlockRequest& request) { return detail::write_request(request_fields(), request); }

ExplainBlockRequest explain_block_request_from_json(const json& j) {
  return detail::read_request("explain-block request", request_fields(), j);
}

std::string scale_label(const MxBlockView& b) {
  const double e = std::log2(b.scale);
  if (b.scale > 0 && std::abs(e - std::round(e)) < 1e-12) return "2^" + std::to_string(static_cast<int>(std::round(e)));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", b.scale);
  return buf;
}

std::vector<FormatComparison> compare_formats(const at::Tensor& block) {
  std::vector<FormatComparison> rows;
  for (const char* name : kMxFormats) {
    const MxBlockView v = inspect_mx_block(block, MxFormat::parse(name));
    rows.push_back({v.format, scale_label(v), v.sqnr_db, v.mse, v.clipped});
  }
  // NVFP4 uses blocks of 16: the 32 values are two NVFP4 blocks.
  const MxErrorStats s = mx_error_stats(block, MxFormat::parse("nvfp4"), 0);
  rows.push_back({"nvfp4 (2 x 16)", "E4M3 per 16", s.sqnr_db, s.mse, s.clipped});
  return rows;
}

json to_json(const BlockExplanation& result) { return detail::write_request(result_fields(), result); }

BlockExplanation block_explanation_from_json(const json& j) {
  return detail::read_request("block explanation", result_fields(), j);
}

BlockExplanation run_explain_block(const ExplainBlockRequest& r, const Model& model, const Tokenizer& tokenizer,
                                   const JobControl& job) {
  const CapturePoint cp = checked_point(r.point);
  const MxFormat fmt = checked_format(r.format);
  const int64_t layers = model.config().num_layers;
  if (cp != CapturePoint::FinalNormOut && (r.layer < 0 || r.layer >= layers)) {
    throw UsageError("--layer: expected 0 to " + std::to_string(layers - 1) + ", found " + std::to_string(r.layer));
  }
  if (r.token < 0) throw UsageError("--token: expected 0 or more, found " + std::to_string(r.token));
  if (r.block < 0) throw UsageError("--block: expected 0 or more, found " + std::to_string(r.block));
  const ActivationTransform apply = r.transform == "none" ? ActivationTransform() : checked_transform(r, model, fmt);
  std::vector<int64_t> ids = token_ids(r, model, tokenizer);
  job.cancel.check();

  c10::InferenceMode guard;
  BlockExplanation out;
  out.point = capture_point_name(cp);
  out.layer = cp == CapturePoint::FinalNormOut ? layers : r.layer;
  const at::Tensor act = capture_activation(model, at::tensor(ids, at::kLong), cp, out.layer, job);
  out.tokens = act.size(0);
  out.token = std::min<int64_t>(r.token, out.tokens - 1);
  out.token_clamped = out.token != r.token;
  const int64_t size = fmt.block;  // 32, or 16 for NVFP4
  out.blocks = (act.size(1) + size - 1) / size;
  out.block = std::min<int64_t>(r.block, out.blocks - 1);
  out.block_clamped = out.block != r.block;
  const int64_t width = std::min<int64_t>(size, act.size(1) - out.block * size);
  out.first_channel = out.block * size;
  out.last_channel = out.first_channel + width - 1;
  out.token_id = static_cast<int32_t>(ids[static_cast<size_t>(out.token)]);
  out.token_text = tokenizer.decode({out.token_id});
  out.format = r.format;
  out.transform = r.transform;
  out.text = r.text;
  out.sequence = r.text.empty() ? 0 : r.sequence;
  out.ids = std::move(ids);

  const at::Tensor values = act[out.token].narrow(0, out.first_channel, width).contiguous();
  out.before = inspect_mx_block(values, fmt);
  out.comparison = compare_formats(values);
  if (apply) {
    const at::Tensor rotated = apply(cp, out.layer, act[out.token]);
    const at::Tensor after = rotated.narrow(0, out.first_channel, width).contiguous();
    out.after = inspect_mx_block(after, fmt);
    out.comparison_after = compare_formats(after);
  }
  return out;
}

}  // namespace latmix::api
