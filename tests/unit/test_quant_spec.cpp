// The QuantSpec grammar: parsing, defaults, errors naming the bad key/value, canonical round trip.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/quant.h"

namespace {

using latmix::ElementFormat;
using latmix::parse_quant_spec;
using latmix::QuantSpec;

std::string usage_error(const std::string& text) {
  try {
    parse_quant_spec(text);
  } catch (const latmix::UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(QuantSpec, FullSpec) {
  const QuantSpec s = parse_quant_spec("w=mxfp4,a=mxfp6_e2m3,block=16,scale=even,round=away,weights=gptq");
  ASSERT_TRUE(s.weights && s.activations);
  EXPECT_EQ(s.weights->element, ElementFormat::E2M1);
  EXPECT_EQ(s.activations->element, ElementFormat::E2M3);
  for (const auto& f : {*s.weights, *s.activations}) {
    EXPECT_EQ(f.block, 16);
    EXPECT_EQ(f.scale, latmix::ScaleRule::Even);
    EXPECT_EQ(f.rounding, latmix::Rounding::NearestAway);
  }
  EXPECT_EQ(s.method, latmix::WeightMethod::Gptq);
  EXPECT_FALSE(s.lm_head);
  EXPECT_EQ(s.first_layer, 0);
  EXPECT_EQ(s.last_layer, -1);
}

TEST(QuantSpec, ShorthandAndDefaults) {
  const QuantSpec s = parse_quant_spec("mxfp4");
  ASSERT_TRUE(s.weights && s.activations);
  EXPECT_EQ(s.weights->element, ElementFormat::E2M1);
  EXPECT_EQ(s.activations->element, ElementFormat::E2M1);
  EXPECT_EQ(s.weights->block, 32);
  EXPECT_EQ(s.weights->scale, latmix::ScaleRule::Floor);
  EXPECT_EQ(s.weights->rounding, latmix::Rounding::NearestEven);
  EXPECT_EQ(s.method, latmix::WeightMethod::Rtn);
  EXPECT_EQ(parse_quant_spec("w=mxfp4,a=mxfp4"), s);
  EXPECT_EQ(to_string(s), "w=mxfp4,a=mxfp4,block=32,scale=floor,round=even,weights=rtn");
  EXPECT_EQ(parse_quant_spec("mxint8,weights=gptq").method, latmix::WeightMethod::Gptq);
}

TEST(QuantSpec, HighPrecisionSides) {
  const QuantSpec w4a16 = parse_quant_spec("w=mxfp4,a=none");
  EXPECT_TRUE(w4a16.weights);
  EXPECT_FALSE(w4a16.activations);
  const QuantSpec a_only = parse_quant_spec("w=none,a=mxfp8");
  EXPECT_FALSE(a_only.weights);
  ASSERT_TRUE(a_only.activations);
  EXPECT_EQ(a_only.activations->element, ElementFormat::E4M3);
  EXPECT_FALSE(parse_quant_spec("a=mxfp4").weights);  // unspecified side: kept
  EXPECT_EQ(to_string(w4a16), "w=mxfp4,a=none,block=32,scale=floor,round=even,weights=rtn");
  EXPECT_EQ(parse_quant_spec("mxfp6").weights->element, ElementFormat::E2M3);
}

TEST(QuantSpec, LmHeadLayersAndGptqOptions) {
  const QuantSpec s =
      parse_quant_spec("mxfp4,lm_head=mxfp4,layers=1-3,weights=gptq,damp=0.1,act_order=on,gptq_block=64");
  ASSERT_TRUE(s.lm_head);
  EXPECT_EQ(s.lm_head->element, ElementFormat::E2M1);
  EXPECT_EQ(s.first_layer, 1);
  EXPECT_EQ(s.last_layer, 3);
  EXPECT_DOUBLE_EQ(s.gptq.percdamp, 0.1);
  EXPECT_TRUE(s.gptq.act_order);
  EXPECT_EQ(s.gptq.block_columns, 64);
  EXPECT_FALSE(s.gptq.static_scales);
  EXPECT_TRUE(parse_quant_spec("mxfp4,gptq_scales=static").gptq.static_scales);
  EXPECT_TRUE(s.covers_layer(1, 6));
  EXPECT_TRUE(s.covers_layer(3, 6));
  EXPECT_FALSE(s.covers_layer(0, 6));
  EXPECT_FALSE(s.covers_layer(4, 6));
  const QuantSpec one = parse_quant_spec("mxfp4,layers=2");
  EXPECT_EQ(one.first_layer, 2);
  EXPECT_EQ(one.last_layer, 2);
  const QuantSpec open = parse_quant_spec("mxfp4,layers=2-");
  EXPECT_EQ(open.last_layer, -1);
  EXPECT_TRUE(open.covers_layer(5, 6));
  EXPECT_FALSE(open.covers_layer(6, 6));
}

TEST(QuantSpec, ErrorsNameTheKeyAndValue) {
  EXPECT_NE(usage_error("w=mxfp3").find("w=mxfp3"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,colour=red").find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,block=0").find("block=0"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,block=3x").find("block=3x"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,scale=up").find("scale=up"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,round=down").find("round=down"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,weights=awq").find("weights=awq"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,layers=3-1").find("layers=3-1"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,layers=a-b").find("layers=a-b"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,act_order=maybe").find("act_order=maybe"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,damp=-1").find("damp=-1"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,gptq_scales=late").find("gptq_scales=late"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,w=mxint8").find("'w' given twice"), std::string::npos);
  EXPECT_NE(usage_error("mxfp4,,a=none").find("empty item"), std::string::npos);
  EXPECT_NE(usage_error("").find("empty"), std::string::npos);
  EXPECT_NE(usage_error("w=nvfp4,block=0").find("block=0"), std::string::npos);
}

TEST(QuantSpec, CanonicalFormRoundTrips) {
  const std::vector<std::string> specs = {
      "mxfp4",
      "w=mxfp4,a=none",
      "w=none,a=mxfp8_e5m2",
      "w=none,a=none",
      "w=mxint4,a=mxint8,block=16,scale=rceil,round=away",
      "w=mxfp4,a=mxfp6_e3m2,weights=gptq,act_order=on,damp=0.05,gptq_block=32",
      "w=mxfp4,a=mxfp4,weights=gptq,damp=0.1234567891",
      "mxfp4,weights=gptq,gptq_scales=static,act_order=on",
      "mxfp8,lm_head=mxfp4,layers=0-5",
      "mxfp4,layers=3-",
      "mxfp4,layers=4",
      "w=nvfp4,a=mxfp4",
      "w=nvfp4,a=mxfp4,block=16",
      "w=mxfp4,a=mxfp4,scale=ceil,lm_head=mxint8",
  };
  for (const auto& text : specs) {
    const QuantSpec s = parse_quant_spec(text);
    const std::string canonical = to_string(s);
    EXPECT_EQ(parse_quant_spec(canonical), s) << text << " -> " << canonical;
    EXPECT_EQ(to_string(parse_quant_spec(canonical)), canonical) << text;
  }
  EXPECT_EQ(to_string(parse_quant_spec("weights=gptq,a=mxfp8,w=mxfp4,layers=1-2,act_order=on")),
            "w=mxfp4,a=mxfp8_e4m3,block=32,scale=floor,round=even,weights=gptq,layers=1-2,act_order=on");
  EXPECT_NE(parse_quant_spec("mxfp4"), parse_quant_spec("mxfp4,block=16"));
}

}  // namespace
