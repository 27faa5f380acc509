// The QuantSpec grammar (quant.h): parse, canonical form, comparison.
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>

#include "latmix/error.h"
#include "latmix/quant.h"

namespace latmix {

namespace {

const char* kKeys = "w, a, block, scale, round, weights, lm_head, layers, damp, act_order, gptq_block, gptq_scales";

[[noreturn]] void bad(const std::string& key, const std::string& value, const std::string& expected) {
  throw UsageError("quantization spec: " + key + "=" + value + ": expected " + expected);
}

std::optional<MxFormat> parse_format_or_none(const std::string& key, const std::string& value) {
  if (value == "none") return std::nullopt;
  if (value == "mxfp8") return MxFormat::parse("mxfp8_e4m3");
  if (value == "mxfp6") return MxFormat::parse("mxfp6_e2m3");
  try {
    return MxFormat::parse(value);
  } catch (const UsageError&) {
    std::string names;
    for (const auto& n : mx_format_names()) names += n + ", ";
    bad(key, value, "none, " + names + "mxfp8 or mxfp6");
  }
}

int64_t parse_int(const std::string& key, const std::string& value, int64_t min) {
  char* end = nullptr;
  const long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || end == nullptr || *end != '\0' || v < min) {
    bad(key, value, "an integer >= " + std::to_string(min));
  }
  return static_cast<int64_t>(v);
}

bool parse_bool(const std::string& key, const std::string& value) {
  if (value == "on" || value == "true" || value == "1") return true;
  if (value == "off" || value == "false" || value == "0") return false;
  bad(key, value, "on or off");
}

void parse_layers(const std::string& value, QuantSpec& spec) {
  const auto dash = value.find('-');
  if (dash == std::string::npos) {
    spec.first_layer = spec.last_layer = parse_int("layers", value, 0);
    return;
  }
  try {
    spec.first_layer = parse_int("layers", value.substr(0, dash), 0);
    const std::string last = value.substr(dash + 1);
    spec.last_layer = last.empty() ? -1 : parse_int("layers", last, 0);
  } catch (const UsageError&) {
    bad("layers", value, "A-B, A- or A with layer indices >= 0");
  }
  if (spec.last_layer >= 0 && spec.last_layer < spec.first_layer) bad("layers", value, "A-B with A <= B");
}

// The raw items, with the shorthand expanded and duplicates rejected.
std::map<std::string, std::string> split_items(const std::string& text) {
  std::map<std::string, std::string> items;
  std::stringstream in(text);
  std::string item;
  auto put = [&](const std::string& key, const std::string& value) {
    if (!items.emplace(key, value).second) {
      throw UsageError("quantization spec: '" + key + "' given twice in '" + text + "'");
    }
  };
  while (std::getline(in, item, ',')) {
    if (item.empty()) throw UsageError("quantization spec: empty item in '" + text + "'");
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      put("w", item);
      put("a", item);
      continue;
    }
    put(item.substr(0, eq), item.substr(eq + 1));
  }
  if (items.empty()) throw UsageError("quantization spec: empty (expected e.g. w=mxfp4,a=mxfp4 or mxfp4)");
  return items;
}

void apply_format_options(QuantSpec& spec, const std::map<std::string, std::string>& items) {
  for (std::optional<MxFormat>* f : {&spec.weights, &spec.activations, &spec.lm_head}) {
    if (!f->has_value()) continue;
    MxFormat& fmt = **f;
    if (auto it = items.find("block"); it != items.end()) fmt.block = parse_int("block", it->second, 1);
    if (auto it = items.find("scale"); it != items.end()) {
      try {
        fmt.scale = parse_scale_rule(it->second);
      } catch (const UsageError&) {
        bad("scale", it->second, "floor, ceil, rceil or even");
      }
    }
    if (auto it = items.find("round"); it != items.end()) {
      try {
        fmt.rounding = parse_rounding(it->second);
      } catch (const UsageError&) {
        bad("round", it->second, "even or away");
      }
    }
    fmt.validate();
  }
}

void apply_item(QuantSpec& spec, const std::string& key, const std::string& value) {
  if (key == "w") {
    spec.weights = parse_format_or_none(key, value);
  } else if (key == "a") {
    spec.activations = parse_format_or_none(key, value);
  } else if (key == "lm_head") {
    spec.lm_head = parse_format_or_none(key, value);
  } else if (key == "weights") {
    if (value == "rtn") {
      spec.method = WeightMethod::Rtn;
    } else if (value == "gptq") {
      spec.method = WeightMethod::Gptq;
    } else {
      bad(key, value, "rtn or gptq");
    }
  } else if (key == "layers") {
    parse_layers(value, spec);
  } else if (key == "damp") {
    char* end = nullptr;
    const double d = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !(d >= 0) || !std::isfinite(d)) bad(key, value, "a number >= 0");
    spec.gptq.percdamp = d;
  } else if (key == "act_order") {
    spec.gptq.act_order = parse_bool(key, value);
  } else if (key == "gptq_scales") {
    if (value != "dynamic" && value != "static") bad(key, value, "dynamic or static");
    spec.gptq.static_scales = value == "static";
  } else if (key == "gptq_block") {
    spec.gptq.block_columns = parse_int(key, value, 1);
  } else if (key != "block" && key != "scale" && key != "round") {
    throw UsageError("quantization spec: unknown key '" + key + "' (expected " + kKeys + ")");
  }
}

// The value every set format shares for one option, or empty when they differ or none is set.
template <typename Get>
std::string shared_value(const QuantSpec& spec, Get get) {
  std::string value;
  for (const auto* f : {&spec.weights, &spec.activations, &spec.lm_head}) {
    if (!f->has_value()) continue;
    const std::string v = get(**f);
    if (!value.empty() && v != value) return {};
    value = v;
  }
  return value;
}

std::string format_or_none(const std::optional<MxFormat>& f) {
  return f ? f->name() : "none";
}

// The shortest decimal form that reads back as the same double.
std::string format_number(double v) {
  for (int precision = 1;; ++precision) {
    std::ostringstream s;
    s.precision(precision);
    s << v;
    if (precision >= 17 || std::strtod(s.str().c_str(), nullptr) == v) return s.str();
  }
}

}  // namespace

std::string to_string(WeightMethod method) {
  return method == WeightMethod::Gptq ? "gptq" : "rtn";
}

bool QuantSpec::covers_layer(int64_t layer, int64_t num_layers) const {
  const int64_t last = last_layer < 0 ? num_layers - 1 : last_layer;
  return layer >= first_layer && layer <= last && layer < num_layers;
}

QuantSpec parse_quant_spec(const std::string& text) {
  const auto items = split_items(text);
  QuantSpec spec;
  for (const auto& [key, value] : items) apply_item(spec, key, value);
  apply_format_options(spec, items);
  return spec;
}

std::string to_string(const QuantSpec& spec) {
  std::string s = "w=" + format_or_none(spec.weights) + ",a=" + format_or_none(spec.activations);
  const std::string block = shared_value(spec, [](const MxFormat& f) { return std::to_string(f.block); });
  const std::string scale = shared_value(spec, [](const MxFormat& f) { return to_string(f.scale); });
  const std::string round = shared_value(spec, [](const MxFormat& f) { return to_string(f.rounding); });
  if (!block.empty()) s += ",block=" + block;
  if (!scale.empty()) s += ",scale=" + scale;
  if (!round.empty()) s += ",round=" + round;
  s += ",weights=" + to_string(spec.method);
  if (spec.lm_head) s += ",lm_head=" + spec.lm_head->name();
  if (spec.first_layer != 0 || spec.last_layer >= 0) {
    s += ",layers=" + std::to_string(spec.first_layer);
    if (spec.last_layer != spec.first_layer) {
      s += "-" + (spec.last_layer >= 0 ? std::to_string(spec.last_layer) : std::string());
    }
  }
  if (spec.method == WeightMethod::Gptq) {
    const GptqOptions defaults;
    if (spec.gptq.percdamp != defaults.percdamp) s += ",damp=" + format_number(spec.gptq.percdamp);
    if (spec.gptq.act_order) s += ",act_order=on";
    if (spec.gptq.block_columns != defaults.block_columns) {
      s += ",gptq_block=" + std::to_string(spec.gptq.block_columns);
    }
    if (spec.gptq.static_scales) s += ",gptq_scales=static";
  }
  return s;
}

bool operator==(const QuantSpec& a, const QuantSpec& b) {
  auto same = [](const std::optional<MxFormat>& x, const std::optional<MxFormat>& y) {
    if (x.has_value() != y.has_value()) return false;
    if (!x) return true;
    return x->element == y->element && x->block == y->block && x->scale == y->scale && x->rounding == y->rounding &&
           x->scale_type == y->scale_type && x->tensor_scale == y->tensor_scale;
  };
  return same(a.weights, b.weights) && same(a.activations, b.activations) && same(a.lm_head, b.lm_head) &&
         a.method == b.method && a.first_layer == b.first_layer && a.last_layer == b.last_layer &&
         a.gptq.percdamp == b.gptq.percdamp && a.gptq.act_order == b.gptq.act_order &&
         a.gptq.block_columns == b.gptq.block_columns && a.gptq.batch_size == b.gptq.batch_size &&
         a.gptq.static_scales == b.gptq.static_scales;
}

}  // namespace latmix
