// The engine against tests/fixtures/mx/mx_reference.json, written by the independent Python
// reference tests/golden/mx_reference.py: codes, scales and dequantized values, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "latmix/mx.h"
#include "test_paths.h"

namespace {

using latmix::MxFormat;
using json = nlohmann::json;

const json& fixture() {
  static const json doc = [] {
    std::ifstream in(latmix::test::fixtures_path("mx/mx_reference.json"));
    if (!in) throw std::runtime_error("cannot open tests/fixtures/mx/mx_reference.json");
    return json::parse(in);
  }();
  return doc;
}

std::vector<uint32_t> hex_words(const std::string& s, size_t width) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i + width <= s.size(); i += width) {
    out.push_back(static_cast<uint32_t>(std::stoul(s.substr(i, width), nullptr, 16)));
  }
  return out;
}

at::Tensor input_tensor() {
  const json& d = fixture();
  const auto words = hex_words(d["input"].get<std::string>(), 8);
  at::Tensor t = at::empty({d["rows"].get<int64_t>(), d["cols"].get<int64_t>()}, at::kFloat);
  EXPECT_EQ(static_cast<int64_t>(words.size()), t.numel());
  std::memcpy(t.data_ptr<float>(), words.data(), words.size() * sizeof(float));
  return t;
}

MxFormat case_format(const json& c) {
  MxFormat f = MxFormat::parse(c["format"].get<std::string>());
  if (c["format"] != "nvfp4") f.scale = latmix::parse_scale_rule(c["scale"].get<std::string>());
  f.rounding = latmix::parse_rounding(c["rounding"].get<std::string>());
  f.tensor_scale = c["tensor_scale"].get<bool>();
  EXPECT_EQ(f.block, c["block"].get<int64_t>());
  return f;
}

uint32_t bits_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

// Counts value mismatches (NaN matches NaN; otherwise the bits must be equal).
int64_t count_value_mismatches(const at::Tensor& got, const std::vector<uint32_t>& want, const std::string& what) {
  const at::Tensor g = got.contiguous().to(at::kFloat);
  const float* p = g.data_ptr<float>();
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const bool want_nan = (want[i] & 0x7F800000u) == 0x7F800000u && (want[i] & 0x7FFFFFu);
    const bool ok = want_nan ? std::isnan(p[i]) : bits_of(p[i]) == want[i];
    if (!ok && ++bad <= 3) {
      ADD_FAILURE() << what << ": value " << i << " got bits " << std::hex << bits_of(p[i]) << " want " << want[i];
    }
  }
  return bad;
}

TEST(MxGolden, ElementTablesMatchTheReference) {
  const json& tables = fixture()["element_tables"];
  const std::pair<const char*, latmix::ElementFormat> formats[] = {
      {"E2M1", latmix::ElementFormat::E2M1}, {"E3M2", latmix::ElementFormat::E3M2},
      {"E2M3", latmix::ElementFormat::E2M3}, {"E4M3", latmix::ElementFormat::E4M3},
      {"E5M2", latmix::ElementFormat::E5M2}, {"INT8", latmix::ElementFormat::INT8},
      {"INT4", latmix::ElementFormat::INT4}};
  for (const auto& [name, f] : formats) {
    const auto& t = tables[name];
    ASSERT_EQ(t.size(), size_t{1} << latmix::element_info(f).bits) << name;
    for (size_t c = 0; c < t.size(); ++c) {
      const double want = std::strtod(t[c].get<std::string>().c_str(), nullptr);
      const double got = latmix::element_decode(f, static_cast<uint8_t>(c));
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got)) << name << " code " << c;
      } else {
        EXPECT_EQ(got, want) << name << " code " << c;
        EXPECT_EQ(std::signbit(got), std::signbit(want)) << name << " code " << c;
      }
    }
  }
}

TEST(MxGolden, EveryCaseMatchesBitForBit) {
  const at::Tensor x = input_tensor();
  int cases = 0;
  for (const auto& c : fixture()["cases"]) {
    const MxFormat f = case_format(c);
    const std::string label = f.describe();
    SCOPED_TRACE(label);
    const auto want_codes = hex_words(c["codes"].get<std::string>(), 2);
    const auto want_scales = hex_words(c["scales"].get<std::string>(), 2);
    const auto want_values = hex_words(c["dequant"].get<std::string>(), 8);

    const latmix::MxPacked p = latmix::mx_encode(x, f, -1, false);
    const at::Tensor codes = p.codes.reshape({-1});
    const at::Tensor scales = p.scales.reshape({-1});
    ASSERT_EQ(codes.numel(), static_cast<int64_t>(want_codes.size()));
    ASSERT_EQ(scales.numel(), static_cast<int64_t>(want_scales.size()));
    int64_t bad_codes = 0, bad_scales = 0;
    for (int64_t i = 0; i < codes.numel(); ++i) bad_codes += codes.data_ptr<uint8_t>()[i] != want_codes[i];
    for (int64_t i = 0; i < scales.numel(); ++i) bad_scales += scales.data_ptr<uint8_t>()[i] != want_scales[i];
    EXPECT_EQ(bad_codes, 0) << "element codes differ";
    EXPECT_EQ(bad_scales, 0) << "scale codes differ";
    EXPECT_EQ(bits_of(p.tensor_scale), std::stoul(c["tensor_scale_bits"].get<std::string>(), nullptr, 16));

    EXPECT_EQ(count_value_mismatches(latmix::mx_decode(p).reshape({-1}), want_values, "decode"), 0);
    EXPECT_EQ(count_value_mismatches(latmix::fake_quantize(x, f, -1, latmix::MxKernel::CpuLoop).reshape({-1}),
                                     want_values, "cpu loop"),
              0);
    EXPECT_EQ(count_value_mismatches(latmix::fake_quantize(x, f, -1, latmix::MxKernel::Aten).reshape({-1}),
                                     want_values, "aten"),
              0);
    ++cases;
  }
  EXPECT_EQ(cases, 60);
}

}  // namespace
