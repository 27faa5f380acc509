// ActivationStats to and from JSON, and to safetensors.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "latmix/calib.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/tensor_io.h"

namespace latmix {

using json = nlohmann::json;

namespace {

// Non-finite numbers become null (JSON has no inf); read back as +inf.
template <class T>
json numbers(const std::vector<T>& v) {
  json a = json::array();
  for (T x : v) a.push_back(std::isfinite(static_cast<double>(x)) ? json(x) : json(nullptr));
  return a;
}
json number(double x) {
  return std::isfinite(x) ? json(x) : json(nullptr);
}

// Null (a non-finite number when written) reads back as +inf.
double read_number(const JsonObject& o, std::string_view key) {
  return o.has(key) ? o.number(key) : std::numeric_limits<double>::infinity();
}
template <class T>
std::vector<T> read_numbers(const JsonObject& o, std::string_view key) {
  const json& list = o.array(key);
  std::vector<T> out;
  out.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& x = list[i];
    if (!x.is_null() && !x.is_number())
      o.fail_key(std::string(key) + "[" + std::to_string(i) + "]", "a number or null", x);
    out.push_back(static_cast<T>(x.is_null() ? std::numeric_limits<double>::infinity() : x.get<double>()));
  }
  return out;
}
std::vector<int64_t> read_integers(const JsonObject& o, std::string_view key) {
  const json& list = o.array(key);
  std::vector<int64_t> out;
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_number_integer())
      o.fail_key(std::string(key) + "[" + std::to_string(i) + "]", "an integer", list[i]);
    out.push_back(list[i].get<int64_t>());
  }
  return out;
}

json outliers_json(const std::vector<OutlierChannel>& outliers) {
  json a = json::array();
  for (const OutlierChannel& o : outliers) {
    json tokens = json::array();
    for (const OutlierToken& t : o.tokens) {
      tokens.push_back(
          {{"token_id", t.token_id}, {"sequence", t.sequence}, {"position", t.position}, {"value", t.value}});
    }
    a.push_back({{"channel", o.channel},
                 {"block", o.block},
                 {"max_abs", o.max_abs},
                 {"rms", o.rms},
                 {"rms_ratio", o.rms_ratio},
                 {"energy_share", o.energy_share},
                 {"tokens", tokens}});
  }
  return a;
}

json view_json(const ViewStats& v) {
  const ChannelStats& c = v.channels;
  const BlockEnergyMap& b = v.blocks;
  const QuantStats& q = v.quant;
  return {{"mean", v.mean},
          {"rms", v.rms},
          {"max_abs", v.max_abs},
          {"kurtosis", v.kurtosis},
          {"energy", v.energy},
          {"channels",
           {{"max_abs", numbers(c.max_abs)},
            {"rms", numbers(c.rms)},
            {"mean", numbers(c.mean)},
            {"kurtosis", numbers(c.kurtosis)}}},
          {"blocks",
           {{"block", b.block},
            {"energy", numbers(b.energy)},
            {"energy_share", numbers(b.energy_share)},
            {"max_abs", numbers(b.max_abs)},
            {"max_over_rms", numbers(b.max_over_rms)},
            {"mean_crest", numbers(b.mean_crest)}}},
          {"quant",
           {{"format", q.format},
            {"elements", q.elements},
            {"clipped", q.clipped},
            {"mse", q.mse},
            {"sqnr_db", number(q.sqnr_db)},
            {"clip_rate", q.clip_rate},
            {"block_mse", numbers(q.block_mse)},
            {"block_sqnr_db", numbers(q.block_sqnr_db)},
            {"block_clip_rate", numbers(q.block_clip_rate)},
            {"scale_histogram", q.scale_histogram}}},
          {"outliers", outliers_json(v.outliers)}};
}

OutlierChannel outlier_from_json(const JsonObject& o) {
  OutlierChannel oc{o.integer("channel"),
                    o.integer("block"),
                    static_cast<float>(o.number("max_abs")),
                    static_cast<float>(o.number("rms")),
                    static_cast<float>(o.number("rms_ratio")),
                    static_cast<float>(o.number("energy_share")),
                    {}};
  for (size_t i = 0; i < o.array("tokens").size(); ++i) {
    const JsonObject t = o.element("tokens", i);
    oc.tokens.push_back({static_cast<int32_t>(t.integer_in("token_id", -1, INT32_MAX)), t.integer("sequence"),
                         t.integer("position"), static_cast<float>(t.number("value"))});
  }
  return oc;
}

ViewStats view_from_json(const JsonObject& j) {
  ViewStats v;
  v.mean = j.number("mean");
  v.rms = j.number("rms");
  v.max_abs = j.number("max_abs");
  v.kurtosis = j.number("kurtosis");
  v.energy = j.number("energy");
  const JsonObject c = j.object("channels");
  v.channels = {read_numbers<float>(c, "max_abs"), read_numbers<float>(c, "rms"), read_numbers<float>(c, "mean"),
                read_numbers<float>(c, "kurtosis")};
  const JsonObject b = j.object("blocks");
  v.blocks = {b.integer("block"),
              read_numbers<double>(b, "energy"),
              read_numbers<float>(b, "energy_share"),
              read_numbers<float>(b, "max_abs"),
              read_numbers<float>(b, "max_over_rms"),
              read_numbers<float>(b, "mean_crest")};
  const JsonObject q = j.object("quant");
  v.quant = {q.string("format"),
             q.integer("elements"),
             q.integer("clipped"),
             q.number("mse"),
             read_number(q, "sqnr_db"),
             q.number("clip_rate"),
             read_numbers<float>(q, "block_mse"),
             read_numbers<float>(q, "block_sqnr_db"),
             read_numbers<float>(q, "block_clip_rate"),
             read_integers(q, "scale_histogram")};
  for (size_t i = 0; i < j.array("outliers").size(); ++i)
    v.outliers.push_back(outlier_from_json(j.element("outliers", i)));
  return v;
}

}  // namespace

std::string stats_to_json(const ActivationStats& s, int indent) { return stats_json(s).dump(indent); }

json stats_json(const ActivationStats& s) {
  json layers = json::array();
  for (const LayerStats& l : s.layers) {
    json e = {{"point", capture_point_name(l.point)},
              {"layer", l.layer},
              {"features", l.features},
              {"tokens", l.tokens},
              {"original", view_json(l.original)}};
    if (l.transformed) e["transformed"] = view_json(*l.transformed);
    layers.push_back(std::move(e));
  }
  json j = {{"kind", "latmix.activation_stats"},
            {"version", 1},
            {"format", s.format},
            {"format_description", s.format_description},
            {"block", s.block},
            {"transform", s.transform},
            {"sequences", s.sequences},
            {"seqlen", s.seqlen},
            {"tokens", s.tokens},
            {"layers", std::move(layers)}};
  return j;
}

ActivationStats stats_from_json(const std::string& text, const std::string& origin) {
  return stats_from_json_value(parse_json_file(origin, text), origin);
}

ActivationStats stats_from_json_value(const json& j, const std::string& origin) {
  const JsonObject r(j, origin);
  if (r.string_or("kind", "") != "latmix.activation_stats") {
    fail(origin, "not an activation statistics file", "kind \"latmix.activation_stats\"", r.string_or("kind", "none"));
  }
  ActivationStats s;
  s.format = r.string("format");
  s.format_description = r.string("format_description");
  s.block = r.integer("block");
  s.transform = r.string("transform");
  s.sequences = r.integer("sequences");
  s.seqlen = r.integer("seqlen");
  s.tokens = r.integer("tokens");
  for (size_t i = 0; i < r.array("layers").size(); ++i) {
    const JsonObject e = r.element("layers", i);
    LayerStats l;
    l.point = parse_capture_point(e.string("point"));
    l.layer = e.integer("layer");
    l.features = e.integer("features");
    l.tokens = e.integer("tokens");
    l.original = view_from_json(e.object("original"));
    if (e.has("transformed")) l.transformed = view_from_json(e.object("transformed"));
    s.layers.push_back(std::move(l));
  }
  return s;
}

void write_stats_json(const std::string& path, const ActivationStats& stats) {
  write_file_atomic(path, stats_to_json(stats, 1) + "\n");
}

namespace {

template <class T>
at::Tensor vec_tensor(const std::vector<T>& v, at::ScalarType type) {
  std::vector<double> d(v.begin(), v.end());
  return at::tensor(d, at::TensorOptions().dtype(at::kDouble)).to(type);
}

void add_view(std::vector<std::pair<std::string, at::Tensor>>& out, const std::string& prefix, const ViewStats& v) {
  auto f = [&](const std::string& name, const auto& vec) {
    out.emplace_back(prefix + name, vec_tensor(vec, at::kFloat));
  };
  f("channel_max_abs", v.channels.max_abs);
  f("channel_rms", v.channels.rms);
  f("channel_mean", v.channels.mean);
  f("channel_kurtosis", v.channels.kurtosis);
  f("block_energy", v.blocks.energy);
  f("block_energy_share", v.blocks.energy_share);
  f("block_max_abs", v.blocks.max_abs);
  f("block_max_over_rms", v.blocks.max_over_rms);
  f("block_mean_crest", v.blocks.mean_crest);
  f("block_mse", v.quant.block_mse);
  f("block_sqnr_db", v.quant.block_sqnr_db);
  f("block_clip_rate", v.quant.block_clip_rate);
  out.emplace_back(prefix + "scale_histogram", vec_tensor(v.quant.scale_histogram, at::kLong));
}

}  // namespace

void write_stats_safetensors(const std::string& path, const ActivationStats& stats) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const LayerStats& l : stats.layers) {
    const std::string prefix = capture_point_name(l.point) + "." + std::to_string(l.layer) + ".";
    add_view(tensors, prefix + "original.", l.original);
    if (l.transformed) add_view(tensors, prefix + "transformed.", *l.transformed);
  }
  std::stable_sort(tensors.begin(), tensors.end(),
                   [](const auto& a, const auto& b) { return a.second.element_size() > b.second.element_size(); });
  write_safetensors(path, tensors,
                    {{"kind", "latmix.activation_stats"},
                     {"format", stats.format},
                     {"block", std::to_string(stats.block)},
                     {"transform", stats.transform},
                     {"sequences", std::to_string(stats.sequences)},
                     {"seqlen", std::to_string(stats.seqlen)},
                     {"tokens", std::to_string(stats.tokens)}});
}

}  // namespace latmix
