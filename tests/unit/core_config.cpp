// config.json parsing: both transformers generations, every family, and clear refusals.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdint>

#include "latmix/config.h"
#include "latmix/error.h"
#include "latmix/llama2c.h"

using nlohmann::json;

namespace {

json base(const std::string& arch) {
  return {{"architectures", {arch}}, {"vocab_size", 1000},  {"hidden_size", 64},
          {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"max_position_embeddings", 512}, {"rms_norm_eps", 1e-5},
          {"hidden_act", "silu"}};
}

latmix::ModelConfig parse(const json& j) { return latmix::parse_model_config(j.dump(), "/m/config.json"); }

std::string error_of(const json& j) {
  try {
    parse(j);
  } catch (const latmix::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ModelConfig, Transformers4Llama3Rope) {
  json j = base("LlamaForCausalLM");
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  j["torch_dtype"] = "bfloat16";
  j["tie_word_embeddings"] = true;
  auto c = parse(j);
  EXPECT_EQ(c.arch, latmix::Architecture::Llama);
  EXPECT_EQ(c.rope.type, latmix::RopeType::Llama3);
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope.factor, 32.0);
  EXPECT_EQ(c.rope.original_max_position, 8192);
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 16);
}

TEST(ModelConfig, Transformers5RopeParameters) {
  json j = base("LlamaForCausalLM");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}};
  j["dtype"] = "float32";
  auto c = parse(j);
  EXPECT_EQ(c.rope.type, latmix::RopeType::Default);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.dtype, "float32");
}

TEST(ModelConfig, OlderRopeScalingTypeKeyAndNullScaling) {
  json j = base("LlamaForCausalLM");
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(parse(j).rope.type, latmix::RopeType::Default);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_NE(error_of(j).find("unsupported rope type"), std::string::npos);
}

TEST(ModelConfig, Qwen2HasQkvBiasNoOBias) {
  auto c = parse(base("Qwen2ForCausalLM"));
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
}

TEST(ModelConfig, Qwen3ExplicitHeadDimAndQkNorm) {
  json j = base("Qwen3ForCausalLM");
  j["head_dim"] = 32;
  auto c = parse(j);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_size(), 128);
  EXPECT_FALSE(c.attention_bias);
}

TEST(ModelConfig, MistralSlidingWindowRefusedUnlessItCoversTheContext) {
  json j = base("MistralForCausalLM");
  j["sliding_window"] = nullptr;
  EXPECT_EQ(parse(j).arch, latmix::Architecture::Mistral);
  j["sliding_window"] = 4096;  // >= max_position 512: attention is the same as without a window
  EXPECT_NO_THROW(parse(j));
  j["sliding_window"] = 128;
  EXPECT_NE(error_of(j).find("sliding-window"), std::string::npos);
}

TEST(ModelConfig, EosListTakesTheFirst) {
  json j = base("LlamaForCausalLM");
  j["eos_token_id"] = {128001, 128009};
  j["bos_token_id"] = 128000;
  auto c = parse(j);
  EXPECT_EQ(c.eos_token_id, 128001);
  EXPECT_EQ(c.bos_token_id, 128000);
}

TEST(ModelConfig, ClearRefusals) {
  EXPECT_NE(error_of(base("GPT2LMHeadModel")).find("unsupported architecture"), std::string::npos);
  EXPECT_NE(error_of(base("GPT2LMHeadModel")).find("found GPT2LMHeadModel"), std::string::npos);
  json j = base("LlamaForCausalLM");
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("missing key 'hidden_size'"), std::string::npos);
  j = base("LlamaForCausalLM");
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("hidden_act"), std::string::npos);
  j = base("LlamaForCausalLM");
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("multiple of num_key_value_heads"), std::string::npos);
  j = base("LlamaForCausalLM");
  j["vocab_size"] = "big";
  EXPECT_NE(error_of(j).find("vocab_size"), std::string::npos);
  EXPECT_NE(error_of(j).find("/m/config.json"), std::string::npos);
  EXPECT_THROW(latmix::parse_model_config("{not json", "x"), latmix::Error);
}

TEST(ModelConfig, ParameterCountOfGutenberg6MShape) {
  json j = base("LlamaForCausalLM");
  j["vocab_size"] = 8192;
  j["hidden_size"] = 256;
  j["intermediate_size"] = 704;
  j["num_hidden_layers"] = 6;
  j["head_dim"] = 64;
  j["tie_word_embeddings"] = true;
  EXPECT_EQ(parse(j).parameter_count(), 6524160);  // training_summary.json's figure
}

TEST(Llama2cHeader, Stories260KShapeAndSizeCheck) {
  int32_t f[7] = {64, 172, 5, 8, 4, 512, 512};
  latmix::Llama2cHeader h = latmix::parse_llama2c_header(reinterpret_cast<const uint8_t*>(f), 28, 1056540, "s.bin");
  EXPECT_EQ(h.parameter_count(), 260032u);
  EXPECT_TRUE(h.shared_classifier);
  auto c = latmix::llama2c_model_config(h);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_THROW(latmix::parse_llama2c_header(reinterpret_cast<const uint8_t*>(f), 28, 1056539, "s.bin"),
               latmix::Error);
  f[3] = 0;
  EXPECT_THROW(latmix::parse_llama2c_header(reinterpret_cast<const uint8_t*>(f), 28, 1056540, "s.bin"),
               latmix::Error);
  EXPECT_THROW(latmix::parse_llama2c_header(reinterpret_cast<const uint8_t*>(f), 10, 10, "s.bin"), latmix::Error);
}

// Issue 20, High 2: vocab_size = INT32_MIN (its negation overflows int32) and the other extremes
// are refused with the field named, before any arithmetic on them.
TEST(Llama2cHeader, ExtremeFieldsAreRefusedNamingTheField) {
  for (int32_t v : {INT32_MIN, INT32_MIN + 1, INT32_MAX, 0, -(1 << 23)}) {
    int32_t f[7] = {64, 172, 5, 8, 4, v, 512};
    try {
      latmix::parse_llama2c_header(reinterpret_cast<const uint8_t*>(f), 28, 28, "s.bin");
      ADD_FAILURE() << "vocab_size " << v << " accepted";
    } catch (const latmix::Error& e) {
      EXPECT_NE(std::string(e.what()).find("vocab_size"), std::string::npos) << e.what();
    }
  }
  for (int field = 0; field < 7; ++field) {
    for (int32_t v : {INT32_MIN, -1, INT32_MAX}) {
      int32_t f[7] = {64, 172, 5, 8, 4, 512, 512};
      f[field] = v;
      if (field == 5 && v == -1) continue;  // -1: a 1-token unshared classifier, size check refuses it
      EXPECT_THROW(latmix::parse_llama2c_header(reinterpret_cast<const uint8_t*>(f), 28, 28, "s.bin"),
                   latmix::Error)
          << "field " << field << " = " << v;
    }
  }
  // A negative vocab_size in range still means an unshared classifier.
  int32_t f[7] = {64, 172, 5, 8, 4, -512, 512};
  try {
    latmix::parse_llama2c_header(reinterpret_cast<const uint8_t*>(f), 28, 28, "s.bin");
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("size does not match"), std::string::npos) << e.what();
  }
}
