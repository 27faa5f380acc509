// Element codecs against the spec's tables (OCP MX v1.0 section 5.3, OFP8), exhaustively.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "latmix/error.h"
#include "latmix/mx.h"

namespace {

using latmix::ElementFormat;
using latmix::element_decode;
using latmix::element_encode;
using latmix::Rounding;

const ElementFormat kAll[] = {ElementFormat::E2M1, ElementFormat::E3M2, ElementFormat::E2M3, ElementFormat::E4M3,
                              ElementFormat::E5M2, ElementFormat::INT8, ElementFormat::INT4};

TEST(MxCodec, E2M1MatchesTheSpecTable) {
  const double pos[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(element_decode(ElementFormat::E2M1, static_cast<uint8_t>(c)), pos[c]);
    EXPECT_EQ(element_decode(ElementFormat::E2M1, static_cast<uint8_t>(c | 8)), -pos[c]);
  }
  EXPECT_TRUE(std::signbit(element_decode(ElementFormat::E2M1, 0x8)));
}

TEST(MxCodec, SpecialCodesAndExtremes) {
  // E4M3: only S.1111.111 is NaN; max S.1111.110 = 448; min subnormal 2^-9; min normal 2^-6.
  int e4m3_nans = 0;
  for (int c = 0; c < 256; ++c) e4m3_nans += std::isnan(element_decode(ElementFormat::E4M3, static_cast<uint8_t>(c)));
  EXPECT_EQ(e4m3_nans, 2);
  EXPECT_TRUE(std::isnan(element_decode(ElementFormat::E4M3, 0x7F)));
  EXPECT_TRUE(std::isnan(element_decode(ElementFormat::E4M3, 0xFF)));
  EXPECT_EQ(element_decode(ElementFormat::E4M3, 0x7E), 448.0);
  EXPECT_EQ(element_decode(ElementFormat::E4M3, 0x01), std::ldexp(1.0, -9));
  EXPECT_EQ(element_decode(ElementFormat::E4M3, 0x08), std::ldexp(1.0, -6));
  EXPECT_EQ(element_decode(ElementFormat::E4M3, 0x07), 0.875 * std::ldexp(1.0, -6));
  // E5M2: S.11111.00 is Inf, S.11111.{01,10,11} NaN; max 57344; min subnormal 2^-16.
  EXPECT_EQ(element_decode(ElementFormat::E5M2, 0x7C), std::numeric_limits<double>::infinity());
  EXPECT_EQ(element_decode(ElementFormat::E5M2, 0xFC), -std::numeric_limits<double>::infinity());
  for (int c : {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF}) {
    EXPECT_TRUE(std::isnan(element_decode(ElementFormat::E5M2, static_cast<uint8_t>(c))));
  }
  EXPECT_EQ(element_decode(ElementFormat::E5M2, 0x7B), 57344.0);
  EXPECT_EQ(element_decode(ElementFormat::E5M2, 0x01), std::ldexp(1.0, -16));
  EXPECT_EQ(element_decode(ElementFormat::E5M2, 0x04), std::ldexp(1.0, -14));
  // FP6: E3M2 max 28, min subnormal 2^-4; E2M3 max 7.5, min subnormal 0.125.
  EXPECT_EQ(element_decode(ElementFormat::E3M2, 0x1F), 28.0);
  EXPECT_EQ(element_decode(ElementFormat::E3M2, 0x01), 0.0625);
  EXPECT_EQ(element_decode(ElementFormat::E3M2, 0x04), 0.25);
  EXPECT_EQ(element_decode(ElementFormat::E2M3, 0x1F), 7.5);
  EXPECT_EQ(element_decode(ElementFormat::E2M3, 0x01), 0.125);
  EXPECT_EQ(element_decode(ElementFormat::E2M3, 0x08), 1.0);
  EXPECT_EQ(element_decode(ElementFormat::E2M3, 0x3F), -7.5);
  // INT8: two's complement in units of 2^-6; INT4: sign-magnitude quarters.
  EXPECT_EQ(element_decode(ElementFormat::INT8, 0x7F), 127.0 / 64);
  EXPECT_EQ(element_decode(ElementFormat::INT8, 0x80), -2.0);
  EXPECT_EQ(element_decode(ElementFormat::INT8, 0x81), -127.0 / 64);
  EXPECT_EQ(element_decode(ElementFormat::INT8, 0xFF), -1.0 / 64);
  EXPECT_EQ(element_decode(ElementFormat::INT4, 0x7), 1.75);
  EXPECT_EQ(element_decode(ElementFormat::INT4, 0xF), -1.75);
  EXPECT_TRUE(std::signbit(element_decode(ElementFormat::INT4, 0x8)));
}

TEST(MxCodec, MaximaAndEmaxMatchTheDesignTable) {
  const std::pair<ElementFormat, std::pair<double, int>> want[] = {
      {ElementFormat::E2M1, {6, 2}},    {ElementFormat::E3M2, {28, 4}},         {ElementFormat::E2M3, {7.5, 2}},
      {ElementFormat::E4M3, {448, 8}},  {ElementFormat::E5M2, {57344, 15}},     {ElementFormat::INT8, {127.0 / 64, 0}},
      {ElementFormat::INT4, {1.75, 0}}};
  for (const auto& [f, m] : want) {
    EXPECT_EQ(latmix::element_info(f).max, m.first) << latmix::element_info(f).name;
    EXPECT_EQ(latmix::element_info(f).emax, m.second) << latmix::element_info(f).name;
  }
}

TEST(MxCodec, EncodeOfDecodeIsTheIdentityForEveryNonNanCode) {
  for (ElementFormat f : kAll) {
    const int count = 1 << latmix::element_info(f).bits;
    for (int c = 0; c < count; ++c) {
      const double v = element_decode(f, static_cast<uint8_t>(c));
      if (std::isnan(v)) continue;
      for (Rounding r : {Rounding::NearestEven, Rounding::NearestAway}) {
        EXPECT_EQ(element_encode(f, v, r), c) << latmix::element_info(f).name << " code " << c;
      }
    }
  }
}

TEST(MxCodec, EncodeRoundsTiesAndSaturates) {
  const auto e2m1 = [](double v, Rounding r = Rounding::NearestEven) {
    return element_decode(ElementFormat::E2M1, element_encode(ElementFormat::E2M1, v, r));
  };
  EXPECT_EQ(e2m1(2.5), 2.0);
  EXPECT_EQ(e2m1(2.5, Rounding::NearestAway), 3.0);
  EXPECT_EQ(e2m1(5.0), 4.0);
  EXPECT_EQ(e2m1(5.0, Rounding::NearestAway), 6.0);
  EXPECT_EQ(e2m1(0.25), 0.0);
  EXPECT_EQ(e2m1(0.25, Rounding::NearestAway), 0.5);
  EXPECT_EQ(e2m1(-1.75), -2.0);
  EXPECT_EQ(e2m1(100.0), 6.0);
  EXPECT_EQ(e2m1(-std::numeric_limits<double>::infinity()), -6.0);
  EXPECT_EQ(element_encode(ElementFormat::E4M3, 464.0), 0x7E);  // the tie above 448 saturates
  EXPECT_EQ(element_encode(ElementFormat::E4M3, 1e9), 0x7E);
  EXPECT_EQ(element_encode(ElementFormat::E4M3, std::nan("")), 0x7F);
  EXPECT_EQ(element_encode(ElementFormat::E5M2, 1e9), 0x7B);
  EXPECT_EQ(element_encode(ElementFormat::E5M2, -std::numeric_limits<double>::infinity()), 0xFC);
  EXPECT_EQ(element_encode(ElementFormat::INT8, -5.0), 0x80);
  EXPECT_EQ(element_encode(ElementFormat::INT8, -0.0), 0x00);
  EXPECT_EQ(element_encode(ElementFormat::INT4, -0.0), 0x08);
  EXPECT_EQ(element_encode(ElementFormat::INT4, 0.375), 0x2);  // tie 1.5 quarters -> 2
  EXPECT_EQ(element_encode(ElementFormat::INT4, 0.375, Rounding::NearestAway), 0x2);
  EXPECT_EQ(element_encode(ElementFormat::INT4, 0.125), 0x0);
  EXPECT_EQ(element_encode(ElementFormat::INT4, 0.125, Rounding::NearestAway), 0x1);
}

TEST(MxCodec, E8M0Scale) {
  EXPECT_EQ(latmix::e8m0_decode(127), 1.0);
  EXPECT_EQ(latmix::e8m0_decode(0), std::ldexp(1.0, -127));
  EXPECT_EQ(latmix::e8m0_decode(254), std::ldexp(1.0, 127));
  EXPECT_TRUE(std::isnan(latmix::e8m0_decode(255)));
}

TEST(MxCodec, FormatNamesParseAndPrint) {
  for (const auto& name : latmix::mx_format_names()) EXPECT_EQ(latmix::MxFormat::parse(name).name(), name);
  const auto nv = latmix::MxFormat::parse("nvfp4");
  EXPECT_EQ(nv.block, 16);
  EXPECT_EQ(nv.scale_type, latmix::ScaleType::E4M3);
  EXPECT_EQ(latmix::MxFormat::parse("mxfp4").describe(), "mxfp4 (E2M1, block 32, scale floor, round even)");
  EXPECT_THROW(latmix::MxFormat::parse("fp4"), latmix::UsageError);
  EXPECT_THROW(latmix::parse_scale_rule("round"), latmix::UsageError);
  EXPECT_THROW(latmix::parse_rounding("up"), latmix::UsageError);
  latmix::MxFormat bad;
  bad.block = 0;
  EXPECT_THROW(bad.validate(), latmix::UsageError);
}

}  // namespace
