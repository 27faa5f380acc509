// Element formats, their exact codecs, and the names of the MX formats.
#include <cmath>
#include <limits>
#include <sstream>

#include "latmix/error.h"
#include "latmix/mx.h"
#include "mx/mx_internal.h"

namespace latmix {

namespace {

// name, bits, ebits, mbits, bias, emax, max, min_positive, has_inf, has_nan, is_int
const ElementInfo kInfos[] = {
    {"E2M1", 4, 2, 1, 1, 2, 6.0, 0.5, false, false, false},
    {"E3M2", 6, 3, 2, 3, 4, 28.0, 0.0625, false, false, false},
    {"E2M3", 6, 2, 3, 1, 2, 7.5, 0.125, false, false, false},
    {"E4M3", 8, 4, 3, 7, 8, 448.0, 0x1p-9, false, true, false},
    {"E5M2", 8, 5, 2, 15, 15, 57344.0, 0x1p-16, true, true, false},
    {"INT8", 8, 0, 6, 0, 0, 127.0 / 64.0, 1.0 / 64.0, false, false, true},
    {"INT4", 4, 0, 2, 0, 0, 1.75, 0.25, false, false, true},
};

struct NamedFormat {
  const char* name;
  ElementFormat element;
};
const NamedFormat kNames[] = {
    {"mxfp4", ElementFormat::E2M1},      {"mxfp6_e3m2", ElementFormat::E3M2}, {"mxfp6_e2m3", ElementFormat::E2M3},
    {"mxfp8_e4m3", ElementFormat::E4M3}, {"mxfp8_e5m2", ElementFormat::E5M2}, {"mxint8", ElementFormat::INT8},
    {"mxint4", ElementFormat::INT4},
};

double nan_value() { return std::numeric_limits<double>::quiet_NaN(); }

// Rounds a finite magnitude to the element grid in fp64 (exact for any double input).
double round_fp_magnitude(const ElementInfo& in, double a, Rounding rounding) {
  if (a >= in.max) return in.max;
  const int emin = 1 - in.bias;
  int ex = 0;
  std::frexp(a, &ex);
  const int e = a == 0.0 ? emin : std::max(ex - 1, emin);
  const double step = std::ldexp(1.0, e - in.mbits);
  const double t = a / step;
  double r = std::floor(t);
  const double frac = t - r;
  if (frac > 0.5 || (frac == 0.5 && (rounding == Rounding::NearestAway || std::fmod(r, 2.0) != 0.0))) r += 1.0;
  return std::min(r * step, in.max);
}

// Rounds a finite magnitude to an integer count of 2^-mbits, ties per `rounding`.
double round_int_units(double a, int mbits, Rounding rounding) {
  const double t = std::ldexp(a, mbits);
  double r = std::floor(t);
  const double frac = t - r;
  if (frac > 0.5 || (frac == 0.5 && (rounding == Rounding::NearestAway || std::fmod(r, 2.0) != 0.0))) r += 1.0;
  return r;
}

uint8_t encode_fp(const ElementInfo& in, double value, Rounding rounding) {
  const int sign_shift = in.ebits + in.mbits;
  const uint8_t sign = std::signbit(value) ? static_cast<uint8_t>(1u << sign_shift) : 0;
  if (std::isnan(value)) return in.has_nan ? static_cast<uint8_t>((1u << sign_shift) - 1) : 0;
  if (std::isinf(value) && in.has_inf) return static_cast<uint8_t>(sign | (((1u << in.ebits) - 1) << in.mbits));
  const double q = std::isinf(value) ? in.max : round_fp_magnitude(in, std::fabs(value), rounding);
  if (q == 0.0) return sign;
  const int emin = 1 - in.bias;
  int ex = 0;
  std::frexp(q, &ex);
  const int e = ex - 1;
  if (e < emin) return static_cast<uint8_t>(sign | static_cast<uint8_t>(std::ldexp(q, in.mbits - emin)));
  const int mant = static_cast<int>(std::ldexp(q, in.mbits - e)) - (1 << in.mbits);
  return static_cast<uint8_t>(sign | ((e + in.bias) << in.mbits) | mant);
}

uint8_t encode_int(ElementFormat f, double value, Rounding rounding) {
  if (std::isnan(value)) return 0;
  const bool neg = std::signbit(value);
  const double a = std::isinf(value) ? 1e9 : std::fabs(value);
  if (f == ElementFormat::INT8) {
    const double k = std::min(round_int_units(a, 6, rounding), neg ? 128.0 : 127.0);
    return static_cast<uint8_t>(static_cast<int8_t>(neg ? -k : k));
  }
  const double k = std::min(round_int_units(a, 2, rounding), 7.0);
  return static_cast<uint8_t>((neg ? 0x8 : 0) | static_cast<int>(k));
}

}  // namespace

const ElementInfo& element_info(ElementFormat format) { return kInfos[static_cast<int>(format)]; }

double element_decode(ElementFormat format, uint8_t code) {
  const ElementInfo& in = element_info(format);
  if (format == ElementFormat::INT8) return static_cast<int8_t>(code) / 64.0;
  if (format == ElementFormat::INT4) {
    const double v = (code & 0x7) / 4.0;
    return (code & 0x8) ? -v : v;
  }
  const int field = (code >> in.mbits) & ((1 << in.ebits) - 1);
  const int mant = code & ((1 << in.mbits) - 1);
  const bool neg = (code >> (in.ebits + in.mbits)) & 1;
  const int field_max = (1 << in.ebits) - 1;
  double v = 0;
  if (format == ElementFormat::E4M3 && field == field_max && mant == (1 << in.mbits) - 1) return nan_value();
  if (format == ElementFormat::E5M2 && field == field_max) {
    if (mant != 0) return nan_value();
    v = std::numeric_limits<double>::infinity();
  } else if (field == 0) {
    v = std::ldexp(static_cast<double>(mant), 1 - in.bias - in.mbits);
  } else {
    v = std::ldexp(static_cast<double>((1 << in.mbits) + mant), field - in.bias - in.mbits);
  }
  return neg ? -v : v;
}

uint8_t element_encode(ElementFormat format, double value, Rounding rounding) {
  const ElementInfo& in = element_info(format);
  return in.is_int ? encode_int(format, value, rounding) : encode_fp(in, value, rounding);
}

double e8m0_decode(uint8_t code) { return code == 0xFF ? nan_value() : std::ldexp(1.0, code - 127); }

MxFormat MxFormat::parse(const std::string& name) {
  MxFormat f;
  if (name == "nvfp4") {
    f.element = ElementFormat::E2M1;
    f.block = 16;
    f.scale_type = ScaleType::E4M3;
    return f;
  }
  for (const auto& n : kNames) {
    if (name == n.name) {
      f.element = n.element;
      return f;
    }
  }
  std::string valid;
  for (const auto& n : mx_format_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw UsageError("unknown MX format '" + name + "' (expected one of " + valid + ")");
}

std::string MxFormat::name() const {
  if (scale_type == ScaleType::E4M3) return "nvfp4";
  for (const auto& n : kNames) {
    if (n.element == element) return n.name;
  }
  return "?";
}

std::string MxFormat::describe() const {
  std::ostringstream s;
  s << name() << " (" << info().name << ", block " << block;
  if (scale_type == ScaleType::E8M0) s << ", scale " << to_string(scale);
  else s << ", E4M3 scale" << (tensor_scale ? " + fp32 tensor scale" : "");
  s << ", round " << to_string(rounding) << ")";
  return s.str();
}

void MxFormat::validate() const {
  if (block < 1) throw UsageError("MX block size: expected 1 or more, found " + std::to_string(block));
  if (scale_type == ScaleType::E4M3 && element != ElementFormat::E2M1) {
    throw UsageError("NVFP4 (E4M3 block scale): expected element E2M1, found " + std::string(info().name));
  }
}

std::vector<std::string> mx_format_names() {
  std::vector<std::string> names;
  for (const auto& n : kNames) names.emplace_back(n.name);
  names.emplace_back("nvfp4");
  return names;
}

ScaleRule parse_scale_rule(const std::string& name) {
  if (name == "floor") return ScaleRule::Floor;
  if (name == "ceil") return ScaleRule::Ceil;
  if (name == "rceil") return ScaleRule::RCeil;
  if (name == "even") return ScaleRule::Even;
  throw UsageError("unknown scale rule '" + name + "' (expected floor, ceil, rceil or even)");
}

Rounding parse_rounding(const std::string& name) {
  if (name == "even") return Rounding::NearestEven;
  if (name == "away") return Rounding::NearestAway;
  throw UsageError("unknown rounding '" + name + "' (expected even or away)");
}

std::string to_string(ScaleRule rule) {
  switch (rule) {
    case ScaleRule::Floor: return "floor";
    case ScaleRule::Ceil: return "ceil";
    case ScaleRule::RCeil: return "rceil";
    case ScaleRule::Even: return "even";
  }
  return "?";
}

std::string to_string(Rounding rounding) { return rounding == Rounding::NearestEven ? "even" : "away"; }

namespace mx_detail {

ElementParams element_params(ElementFormat f) {
  const ElementInfo& in = element_info(f);
  ElementParams p;
  p.is_int = in.is_int;
  p.int_has_negative_zero = f == ElementFormat::INT4;
  p.mbits = in.mbits;
  p.emax = in.emax;
  p.max = static_cast<float>(in.max);
  p.min_normal = in.is_int ? 0.0f : static_cast<float>(std::ldexp(1.0, 1 - in.bias));
  p.mant_scale = static_cast<float>(std::ldexp(1.0, -in.mbits));
  p.int_step = in.is_int ? static_cast<float>(std::ldexp(1.0, -in.mbits)) : 0.0f;
  return p;
}

uint8_t code_of_value(ElementFormat f, float q) { return element_encode(f, static_cast<double>(q)); }

int64_t normalize_axis(const at::Tensor& x, int64_t axis) {
  const int64_t d = x.dim();
  const int64_t a = axis < 0 ? axis + d : axis;
  if (a < 0 || a >= d) {
    throw UsageError("MX quantization axis " + std::to_string(axis) + " is out of range for a tensor of " +
                     std::to_string(d) + " dimension(s)");
  }
  return a;
}

void require_floating(const at::Tensor& x, const char* what) {
  if (!x.defined() || !at::isFloatingType(x.scalar_type())) {
    fail("", what, "a floating tensor (fp32, bf16, fp16, fp64)",
         x.defined() ? std::string(c10::toString(x.scalar_type())) : "an undefined tensor");
  }
  if (x.dim() == 0) fail("", what, "a tensor with at least one dimension", "a scalar");
}

}  // namespace mx_detail

}  // namespace latmix
