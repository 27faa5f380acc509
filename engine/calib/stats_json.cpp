// ActivationStats to and from JSON, and to safetensors.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "latmix/calib.h"
#include "latmix/error.h"
#include "latmix/files.h"
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

double read_number(const json& j) {
  return j.is_null() ? std::numeric_limits<double>::infinity() : j.get<double>();
}
template <class T>
std::vector<T> read_numbers(const json& j) {
  std::vector<T> out;
  for (const json& x : j) out.push_back(static_cast<T>(read_number(x)));
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

ViewStats view_from_json(const json& j) {
  ViewStats v;
  v.mean = j.at("mean").get<double>();
  v.rms = j.at("rms").get<double>();
  v.max_abs = j.at("max_abs").get<double>();
  v.kurtosis = j.at("kurtosis").get<double>();
  v.energy = j.at("energy").get<double>();
  const json& c = j.at("channels");
  v.channels = {read_numbers<float>(c.at("max_abs")), read_numbers<float>(c.at("rms")),
                read_numbers<float>(c.at("mean")), read_numbers<float>(c.at("kurtosis"))};
  const json& b = j.at("blocks");
  v.blocks = {b.at("block").get<int64_t>(),
              read_numbers<double>(b.at("energy")),
              read_numbers<float>(b.at("energy_share")),
              read_numbers<float>(b.at("max_abs")),
              read_numbers<float>(b.at("max_over_rms")),
              read_numbers<float>(b.at("mean_crest"))};
  const json& q = j.at("quant");
  v.quant = {q.at("format").get<std::string>(),
             q.at("elements").get<int64_t>(),
             q.at("clipped").get<int64_t>(),
             q.at("mse").get<double>(),
             read_number(q.at("sqnr_db")),
             q.at("clip_rate").get<double>(),
             read_numbers<float>(q.at("block_mse")),
             read_numbers<float>(q.at("block_sqnr_db")),
             read_numbers<float>(q.at("block_clip_rate")),
             q.at("scale_histogram").get<std::vector<int64_t>>()};
  for (const json& o : j.at("outliers")) {
    OutlierChannel oc{o.at("channel").get<int64_t>(),
                      o.at("block").get<int64_t>(),
                      o.at("max_abs").get<float>(),
                      o.at("rms").get<float>(),
                      o.at("rms_ratio").get<float>(),
                      o.at("energy_share").get<float>(),
                      {}};
    for (const json& t : o.at("tokens")) {
      oc.tokens.push_back({t.at("token_id").get<int32_t>(), t.at("sequence").get<int64_t>(),
                           t.at("position").get<int64_t>(), t.at("value").get<float>()});
    }
    v.outliers.push_back(std::move(oc));
  }
  return v;
}

}  // namespace

std::string stats_to_json(const ActivationStats& s, int indent) {
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
  return j.dump(indent);
}

ActivationStats stats_from_json(const std::string& text, const std::string& origin) {
  try {
    const json j = json::parse(text);
    if (j.value("kind", "") != "latmix.activation_stats") {
      fail(origin, "not an activation statistics file", "kind \"latmix.activation_stats\"", j.value("kind", "none"));
    }
    ActivationStats s;
    s.format = j.at("format").get<std::string>();
    s.format_description = j.at("format_description").get<std::string>();
    s.block = j.at("block").get<int64_t>();
    s.transform = j.at("transform").get<std::string>();
    s.sequences = j.at("sequences").get<int64_t>();
    s.seqlen = j.at("seqlen").get<int64_t>();
    s.tokens = j.at("tokens").get<int64_t>();
    for (const json& e : j.at("layers")) {
      LayerStats l;
      l.point = parse_capture_point(e.at("point").get<std::string>());
      l.layer = e.at("layer").get<int64_t>();
      l.features = e.at("features").get<int64_t>();
      l.tokens = e.at("tokens").get<int64_t>();
      l.original = view_from_json(e.at("original"));
      if (e.contains("transformed")) l.transformed = view_from_json(e.at("transformed"));
      s.layers.push_back(std::move(l));
    }
    return s;
  } catch (const json::exception& e) {
    fail(origin, "malformed activation statistics", "", e.what());
  }
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
