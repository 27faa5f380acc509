// Activation statistics on synthetic streams: exact figures against direct computation on the
// concatenated data, top-k tokens, quantization figures against mx.h, memory bounds, cancel.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "latmix/calib.h"
#include "latmix/calib_collector.h"
#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/model.h"
#include "latmix/mx.h"
#include "test_paths.h"

using latmix::CapturePoint;

namespace {

constexpr CapturePoint kResidual = CapturePoint::Residual;

// Three batches of different sizes with a strong channel 5 and a shifted channel 9.
std::vector<at::Tensor> synthetic_batches(int64_t features, uint64_t seed) {
  at::manual_seed(seed);
  std::vector<at::Tensor> out;
  for (int64_t b : {2, 3, 1}) {
    at::Tensor x = at::randn({b, 7, features});
    x.select(2, 5).mul_(12.0);
    x.select(2, 9).add_(3.0);
    x.select(2, 11).copy_(at::rand({b, 7}).pow(4) * 5);  // skewed, heavy-tailed channel
    out.push_back(x);
  }
  return out;
}

at::Tensor concat_rows(const std::vector<at::Tensor>& batches) {
  std::vector<at::Tensor> rows;
  for (const auto& b : batches) rows.push_back(b.reshape({-1, b.size(-1)}));
  return at::cat(rows, 0).to(at::kDouble);
}

latmix::ActivationStats run(const std::vector<at::Tensor>& batches, latmix::StatsOptions o = {},
                            latmix::ActivationTransform t = {}) {
  latmix::StatsCollector c(o, std::move(t));
  for (const auto& b : batches) c.observe(kResidual, 0, b);
  return c.result();
}

}  // namespace

TEST(CalibStats, ChannelFiguresMatchDirectComputation) {
  const auto batches = synthetic_batches(80, 1);
  const at::Tensor all = concat_rows(batches);
  const latmix::ActivationStats s = run(batches);
  ASSERT_EQ(s.layers.size(), 1u);
  const latmix::ViewStats& v = s.layers[0].original;
  EXPECT_EQ(s.layers[0].tokens, all.size(0));
  const at::Tensor mean = all.mean(0), rms = all.square().mean(0).sqrt(), mx = all.abs().amax(0);
  const at::Tensor d = all - mean;
  const at::Tensor kurt = d.pow(4).mean(0) / d.square().mean(0).square();
  for (int64_t c = 0; c < 80; ++c) {
    const auto i = static_cast<size_t>(c);
    EXPECT_NEAR(v.channels.mean[i], mean[c].item<double>(), 1e-5) << c;
    EXPECT_NEAR(v.channels.rms[i], rms[c].item<double>(), 1e-5 * rms[c].item<double>()) << c;
    EXPECT_FLOAT_EQ(v.channels.max_abs[i], static_cast<float>(mx[c].item<double>())) << c;
    EXPECT_NEAR(v.channels.kurtosis[i], kurt[c].item<double>(), 1e-4 * kurt[c].item<double>()) << c;
  }
  const at::Tensor flat = all.flatten();
  const at::Tensor fd = flat - flat.mean();
  EXPECT_NEAR(v.mean, flat.mean().item<double>(), 1e-9);
  EXPECT_NEAR(v.kurtosis, (fd.pow(4).mean() / fd.square().mean().square()).item<double>(), 1e-9 * v.kurtosis);
  EXPECT_NEAR(v.energy, flat.square().sum().item<double>(), 1e-6 * v.energy);  // fp32 block sums
  EXPECT_DOUBLE_EQ(v.max_abs, flat.abs().max().item<double>());
}

TEST(CalibStats, BlockFiguresMatchAndSharesSumToOne) {
  const auto batches = synthetic_batches(80, 2);  // 80 = 2 blocks of 32 + a tail of 16
  const at::Tensor all = concat_rows(batches);
  const latmix::ViewStats v = run(batches).layers[0].original;
  ASSERT_EQ(v.blocks.energy.size(), 3u);
  double share = 0;
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t w = b < 2 ? 32 : 16;
    const at::Tensor xb = all.narrow(1, b * 32, w);
    const double energy = xb.square().sum().item<double>();
    const double amax = xb.abs().max().item<double>();
    const auto i = static_cast<size_t>(b);
    EXPECT_NEAR(v.blocks.energy[i], energy, 1e-6 * energy);
    EXPECT_FLOAT_EQ(v.blocks.max_abs[i], static_cast<float>(amax));
    EXPECT_NEAR(v.blocks.max_over_rms[i], amax / std::sqrt(energy / static_cast<double>(xb.numel())), 1e-4);
    const at::Tensor crest = xb.abs().amax(1) / xb.square().mean(1).sqrt();
    EXPECT_NEAR(v.blocks.mean_crest[i], crest.mean().item<double>(), 1e-4);
    share += v.blocks.energy_share[i];
  }
  EXPECT_NEAR(share, 1.0, 1e-6);
  EXPECT_EQ(v.blocks.top_block(), 0);  // channel 5 dominates
}

TEST(CalibStats, TopChannelsNameTheirTokens) {
  at::Tensor x = at::randn({3, 10, 64}) * 0.1;
  x[1][4][40] = -50.0f;  // channel 40: largest at sequence 1, position 4
  x[2][7][40] = 30.0f;
  x[0][2][17] = 20.0f;
  x.select(2, 3).mul_(200.0);  // channel 3: the largest RMS (20, channel 40: 10.6)
  const at::Tensor ids = at::arange(30, at::kLong).reshape({3, 10}) + 100;
  latmix::StatsOptions o;
  o.top_channels = 3;
  o.tokens_per_channel = 2;
  latmix::StatsCollector c(o);
  c.observe(kResidual, 2, x.narrow(0, 0, 1), ids.narrow(0, 0, 1));
  c.begin_batch(ids.narrow(0, 1, 2), 1);
  c.observe(kResidual, 2, x.narrow(0, 1, 2));
  const latmix::ViewStats v = c.result().layers[0].original;
  ASSERT_EQ(v.outliers.size(), 3u);
  EXPECT_EQ(v.outliers[0].channel, 3);
  EXPECT_EQ(v.outliers[1].channel, 40);
  EXPECT_EQ(v.outliers[2].channel, 17);
  const latmix::OutlierChannel& o40 = v.outliers[1];
  EXPECT_EQ(o40.block, 1);
  ASSERT_EQ(o40.tokens.size(), 2u);
  EXPECT_FLOAT_EQ(o40.tokens[0].value, -50.0f);
  EXPECT_EQ(o40.tokens[0].sequence, 1);
  EXPECT_EQ(o40.tokens[0].position, 4);
  EXPECT_EQ(o40.tokens[0].token_id, 114);
  EXPECT_FLOAT_EQ(o40.tokens[1].value, 30.0f);
  EXPECT_EQ(o40.tokens[1].sequence, 2);
  EXPECT_EQ(o40.tokens[1].token_id, 127);
  EXPECT_EQ(v.outliers[2].tokens[0].sequence, 0);
  EXPECT_EQ(v.outliers[2].tokens[0].token_id, 102);
  EXPECT_GT(v.outliers[0].rms_ratio, 100.0f);
}

class CalibQuantFormats : public ::testing::TestWithParam<std::string> {};

// The collector's error, clip rate and scale histogram equal mx_error_stats / mx_encode on the
// concatenated data, for every scale rule, integers, NVFP4 and a block tail.
TEST_P(CalibQuantFormats, MatchesMxReference) {
  const std::string spec = GetParam();
  latmix::MxFormat f = latmix::MxFormat::parse(spec.substr(0, spec.find(':')));
  if (spec.find(':') != std::string::npos) f.scale = latmix::parse_scale_rule(spec.substr(spec.find(':') + 1));
  const auto batches = synthetic_batches(80, 3);
  latmix::StatsOptions o;
  o.format = f;
  latmix::StatsCollector c(o);
  for (const auto& b : batches) c.observe(kResidual, 0, b);
  const latmix::QuantStats q = c.result().layers[0].original.quant;
  const at::Tensor all = concat_rows(batches).to(at::kFloat);
  if (f.scale_type == latmix::ScaleType::E8M0) {
    const latmix::MxErrorStats ref = latmix::mx_error_stats(all, f);
    EXPECT_EQ(q.clipped, ref.clipped);
    EXPECT_NEAR(q.sqnr_db, ref.sqnr_db, 1e-5);
    EXPECT_NEAR(q.mse, ref.mse, 1e-6 * ref.mse);  // fp32 per-block error sums
    const at::Tensor codes = latmix::mx_encode(all, f, -1, false).scales.to(at::kLong).flatten();
    const at::Tensor hist = at::bincount(codes, {}, 256);
    for (int64_t i = 0; i < 256; ++i)
      EXPECT_EQ(q.scale_histogram[static_cast<size_t>(i)], hist[i].item<int64_t>()) << i;
  } else {  // NVFP4 with a per-batch tensor scale: compare with fake_quantize batch by batch
    double noise = 0, signal = 0;
    for (const auto& b : batches) {
      const at::Tensor x = b.to(at::kDouble);
      noise += (latmix::fake_quantize(b, f).to(at::kDouble) - x).square().sum().item<double>();
      signal += x.square().sum().item<double>();
    }
    EXPECT_NEAR(q.sqnr_db, 10 * std::log10(signal / noise), 1e-6);
  }
  int64_t blocks = 0;
  for (int64_t n : q.scale_histogram) blocks += n;
  EXPECT_EQ(blocks, all.size(0) * ((80 + f.block - 1) / f.block));
}

INSTANTIATE_TEST_SUITE_P(Formats, CalibQuantFormats,
                         ::testing::Values("mxfp4", "mxfp4:ceil", "mxfp4:rceil", "mxfp4:even", "mxfp6_e3m2",
                                           "mxfp8_e4m3", "mxint8", "mxint8:even", "mxint4", "nvfp4"));

TEST(CalibStats, ExactQuantizerGivesInfiniteSqnr) {
  const latmix::MxFormat f = latmix::MxFormat::parse("mxfp4");
  const at::Tensor x = latmix::fake_quantize(at::randn({2, 5, 64}), f);  // already on the grid
  const latmix::ActivationStats s = run({x});
  const latmix::QuantStats& q = s.layers[0].original.quant;
  EXPECT_TRUE(std::isinf(q.sqnr_db) && q.sqnr_db > 0);
  EXPECT_EQ(q.mse, 0.0);
  EXPECT_TRUE(std::isinf(q.block_sqnr_db[0]));
  const std::string text = latmix::stats_to_json(s);
  EXPECT_NE(text.find("\"sqnr_db\":null"), std::string::npos);
  const latmix::ActivationStats back = latmix::stats_from_json(text);
  EXPECT_TRUE(std::isinf(back.layers[0].original.quant.sqnr_db));
  EXPECT_TRUE(std::isinf(back.layers[0].original.quant.block_sqnr_db[1]));
}

TEST(CalibStats, TransformedViewSeesTheTransform) {
  const auto batches = synthetic_batches(64, 4);
  latmix::StatsOptions o;
  o.transform_name = "double";
  const latmix::ActivationStats s = run(batches, o, [](CapturePoint, int64_t, const at::Tensor& x) { return x * 2.0; });
  EXPECT_EQ(s.transform, "double");
  const latmix::LayerStats& l = s.layers[0];
  ASSERT_TRUE(l.transformed.has_value());
  EXPECT_NEAR(l.transformed->energy, 4 * l.original.energy, 1e-6 * l.original.energy);
  // A power-of-two scaling commutes with MX quantization: the same SQNR.
  EXPECT_NEAR(l.transformed->quant.sqnr_db, l.original.quant.sqnr_db, 1e-9);
  EXPECT_EQ(l.transformed->outliers[0].channel, l.original.outliers[0].channel);
  const latmix::Heatmap h =
      latmix::heatmap(s, latmix::HeatmapMetric::EnergyShare, kResidual, latmix::StatsView::Transformed);
  EXPECT_EQ(h.rows, 1);
  EXPECT_EQ(h.cols, 2);
}

TEST(CalibStats, HeatmapIsLayersByBlocks) {
  latmix::StatsCollector c(latmix::StatsOptions{});
  for (int64_t layer = 0; layer < 3; ++layer) {
    for (const auto& b : synthetic_batches(96, 10 + static_cast<uint64_t>(layer))) c.observe(kResidual, layer, b);
  }
  const latmix::ActivationStats s = c.result();
  const latmix::Heatmap h = latmix::heatmap(s, latmix::HeatmapMetric::SqnrDb, kResidual);
  EXPECT_EQ(h.rows, 3);
  EXPECT_EQ(h.cols, 3);
  ASSERT_EQ(h.values.size(), 9u);
  EXPECT_EQ(h.layers, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_FLOAT_EQ(h.values[2 * 3 + 1], s.layers[2].original.quant.block_sqnr_db[1]);
  EXPECT_EQ(latmix::heatmap(s, latmix::HeatmapMetric::ClipRate, CapturePoint::DownIn).rows, 0);
  EXPECT_EQ(latmix::heatmap(s, latmix::HeatmapMetric::ClipRate, kResidual, latmix::StatsView::Transformed).rows, 0);
  EXPECT_EQ(latmix::parse_heatmap_metric("energy_share"), latmix::HeatmapMetric::EnergyShare);
  EXPECT_THROW(latmix::parse_heatmap_metric("nope"), latmix::UsageError);
}

TEST(CalibStats, JsonAndSafetensorsRoundTrip) {
  latmix::StatsOptions o;
  const latmix::ActivationStats s =
      run(synthetic_batches(64, 5), o, [](CapturePoint, int64_t, const at::Tensor& x) { return x.flip(-1); });
  const latmix::ActivationStats back = latmix::stats_from_json(latmix::stats_to_json(s, 1), "mem");
  ASSERT_EQ(back.layers.size(), 1u);
  EXPECT_EQ(latmix::stats_to_json(back), latmix::stats_to_json(s));
  EXPECT_THROW(latmix::stats_from_json("{\"kind\": 3}", "x.json"), latmix::Error);
  EXPECT_THROW(latmix::stats_from_json("not json", "x.json"), latmix::Error);
  const std::string dir = latmix::test::temp_dir("calib");
  latmix::write_stats_json(dir + "/s.json", s);
  EXPECT_EQ(latmix::stats_from_json(latmix::read_text_file(dir + "/s.json")).layers[0].features, 64);
  latmix::write_stats_safetensors(dir + "/s.safetensors", s);
  EXPECT_GT(latmix::read_text_file(dir + "/s.safetensors").size(), 1000u);
}

TEST(CalibStats, MemoryDoesNotGrowWithTokens) {
  latmix::StatsCollector c(latmix::StatsOptions{}, [](CapturePoint, int64_t, const at::Tensor& x) { return -x; });
  c.observe(kResidual, 0, at::randn({2, 16, 128}));
  const int64_t after_1x = c.accumulator_bytes();
  EXPECT_GT(after_1x, 0);
  for (int i = 0; i < 3; ++i) c.observe(kResidual, 0, at::randn({2, 16, 128}));  // 4x the tokens
  EXPECT_EQ(c.accumulator_bytes(), after_1x);
  c.observe(kResidual, 0, at::randn({8, 64, 128}));  // a much larger batch
  EXPECT_EQ(c.accumulator_bytes(), after_1x);
  // Bounded by the channels, blocks and tokens per channel, not by the 8 * 16 * 2 + 512 tokens.
  const int64_t per_view = 128 * (4 * 8 + 4 + 4 * (4 + 4 + 3 * 8)) + 4 * (4 * 8 + 4) + 256 * 8;
  EXPECT_EQ(after_1x, 2 * per_view);
}

TEST(CalibStats, RejectsBadOptionsAndShapes) {
  latmix::StatsOptions o;
  o.points.clear();
  EXPECT_THROW(latmix::StatsCollector{o}, latmix::UsageError);
  latmix::StatsCollector c(latmix::StatsOptions{});
  EXPECT_THROW(c.observe(kResidual, 0, at::randn({4})), latmix::Error);
  c.observe(kResidual, 0, at::randn({3, 32}));
  EXPECT_THROW(c.observe(kResidual, 0, at::randn({3, 64})), latmix::Error);
  EXPECT_TRUE(c.wants(kResidual, 7));
  EXPECT_FALSE(c.wants(CapturePoint::DownIn, 0));
}

// ---- calibration data -------------------------------------------------------------------------

TEST(CalibData, EvenWindowsAreSpreadAndDisjoint) {
  std::vector<int32_t> ids(1000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  latmix::CalibrationOptions o;
  o.samples = 4;
  o.seqlen = 100;
  const latmix::CalibrationSet s = latmix::sample_calibration(ids, o);
  EXPECT_EQ(s.windows_available, 10);
  EXPECT_EQ(s.offsets, (std::vector<int64_t>{0, 200, 500, 700}));
  EXPECT_EQ(s.sequences[1][0], 200);
  EXPECT_EQ(s.sequences[3][99], 799);
  const at::Tensor b = s.batch(1, 2);
  EXPECT_EQ(b.sizes(), (at::IntArrayRef{2, 100}));
  EXPECT_EQ(b[1][0].item<int64_t>(), 500);
  EXPECT_THROW(s.batch(3, 2), latmix::Error);
}

TEST(CalibData, RandomWindowsAreSeededAndBosIsPrepended) {
  std::vector<int32_t> ids(5000, 7);
  latmix::CalibrationOptions o;
  o.samples = 8;
  o.seqlen = 50;
  o.sampling = latmix::WindowSampling::Random;
  o.seed = 42;
  o.bos_id = 1;
  const latmix::CalibrationSet a = latmix::sample_calibration(ids, o);
  const latmix::CalibrationSet b = latmix::sample_calibration(ids, o);
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_TRUE(std::is_sorted(a.offsets.begin(), a.offsets.end()));
  for (int64_t off : a.offsets) EXPECT_EQ(off % 49, 0);
  o.seed = 43;
  EXPECT_NE(latmix::sample_calibration(ids, o).offsets, a.offsets);
  EXPECT_EQ(a.sequences[0][0], 1);
  EXPECT_EQ(a.sequences[0].size(), 50u);
  EXPECT_NE(a.describe().find("BOS first"), std::string::npos);
}

TEST(CalibData, TooShortTextSaysWhatItHas) {
  std::vector<int32_t> ids(300, 3);
  latmix::CalibrationOptions o;
  o.samples = 4;
  o.seqlen = 100;
  try {
    latmix::sample_calibration(ids, o);
    FAIL() << "expected an error";
  } catch (const latmix::UsageError&) {
    FAIL() << "a short text is not a usage error";
  } catch (const latmix::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("too short"), std::string::npos) << m;
    EXPECT_NE(m.find("300 tokens, 3 windows"), std::string::npos) << m;
  }
  o.seqlen = 1;
  EXPECT_THROW(latmix::sample_calibration(ids, o), latmix::UsageError);
  EXPECT_THROW(latmix::parse_window_sampling("sideways"), latmix::UsageError);
}

// ---- the loop over a (tiny) model --------------------------------------------------------------

namespace {

latmix::Model& tiny_model() {
  static latmix::Model m = latmix::load_model(latmix::test::fixtures_path("models/tiny-llama3"));
  return m;
}

latmix::CalibrationSet tiny_data(int64_t samples) {
  std::vector<int32_t> ids(4096);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 37 + i / 5) % 320);
  latmix::CalibrationOptions o;
  o.samples = samples;
  o.seqlen = 32;
  return latmix::sample_calibration(ids, o);
}

}  // namespace

TEST(CalibCollect, RunsEveryLayerAndPointAndLeavesTheModelAlone) {
  latmix::Model& model = tiny_model();
  const at::Tensor ids = tiny_data(2).batch(0, 2);
  const at::Tensor before = model.forward(ids);
  latmix::StatsOptions o;
  o.points = {CapturePoint::Residual, CapturePoint::DownIn, CapturePoint::FinalNormOut};
  o.batch_size = 3;
  std::vector<int64_t> progress;
  latmix::JobControl job;
  job.progress = [&](std::string_view stage, int64_t done, int64_t total) {
    EXPECT_EQ(stage, "stats");
    EXPECT_EQ(total, 7);
    progress.push_back(done);
  };
  const latmix::ActivationStats s = latmix::collect_activation_stats(model, tiny_data(7), o, {}, job);
  EXPECT_EQ(progress, (std::vector<int64_t>{0, 3, 6, 7}));
  EXPECT_EQ(s.layers.size(), 2u * 2u + 1u);
  EXPECT_EQ(s.tokens, 7 * 32);
  EXPECT_EQ(s.sequences, 7);
  ASSERT_NE(s.find(CapturePoint::DownIn, 1), nullptr);
  EXPECT_EQ(s.find(CapturePoint::DownIn, 1)->features, 96);
  ASSERT_NE(s.find(CapturePoint::FinalNormOut, 2), nullptr);
  const auto& tok = s.find(kResidual, 1)->original.outliers[0].tokens[0];
  EXPECT_GE(tok.token_id, 0);
  EXPECT_LT(tok.sequence, 7);
  EXPECT_TRUE(at::equal(model.forward(ids), before));  // hook removed, nothing replaced
}

TEST(CalibCollect, TokenIdsPastTheVocabularyNameTheTokenizerNotLibTorch) {
  // A tokenizer that is not the model's (ids up to 30004 for a 320-entry table): the model says so.
  at::Tensor ids = tiny_data(1).batch(0, 1).clone();
  ids[0][3] = 320;
  const std::string m = latmix::test::message_of([&] { tiny_model().forward(ids); });
  EXPECT_NE(m.find("token id 320 is outside the model's vocabulary (0..319): is the tokenizer this model's?"),
            std::string::npos) << m;
  ids[0][3] = -1;
  EXPECT_NE(latmix::test::message_of([&] { tiny_model().forward(ids); }).find("token id -1 is outside"),
            std::string::npos);
  ids[0][3] = 319;
  EXPECT_EQ(latmix::test::message_of([&] { tiny_model().forward(ids); }), "");
}

TEST(CalibCollect, MemoryIsTheSameFor2xAnd4xTokens) {
  latmix::StatsOptions o;
  o.points = {CapturePoint::Residual, CapturePoint::MlpIn};
  int64_t bytes[3] = {0, 0, 0};
  int64_t tokens[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    latmix::StatsCollector c(o, [](CapturePoint, int64_t, const at::Tensor& x) { return x.flip(-1); });
    const latmix::CalibrationSet data = tiny_data(2 << i);  // 2, 4, 8 sequences
    for (int64_t first = 0; first < data.size(); first += 2) {
      const at::Tensor ids = data.batch(first, 2);
      c.begin_batch(ids, first);
      auto hook = std::shared_ptr<latmix::StatsCollector>(&c, [](latmix::StatsCollector*) {});
      tiny_model().add_hook(hook);
      tiny_model().hidden_states(ids);
      tiny_model().remove_hook(hook);
    }
    bytes[i] = c.accumulator_bytes();
    tokens[i] = c.result().tokens;
  }
  EXPECT_EQ(tokens[1], 2 * tokens[0]);
  EXPECT_EQ(tokens[2], 4 * tokens[0]);
  EXPECT_EQ(bytes[1], bytes[0]);
  EXPECT_EQ(bytes[2], bytes[0]);
}

TEST(CalibCollect, CancelStopsBetweenBatchesAndRemovesTheHook) {
  latmix::Model& model = tiny_model();
  const at::Tensor ids = tiny_data(2).batch(0, 2);
  const at::Tensor before = model.forward(ids);
  latmix::StatsOptions o;
  o.batch_size = 1;
  latmix::JobControl job;
  int64_t last = -1;
  job.progress = [&](std::string_view, int64_t done, int64_t) {
    last = done;
    if (done == 2) job.cancel.cancel();
  };
  EXPECT_THROW(latmix::collect_activation_stats(model, tiny_data(6), o, {}, job), latmix::Cancelled);
  EXPECT_EQ(last, 2);
  EXPECT_TRUE(at::equal(model.forward(ids), before));
}

// ---- capture_activation: the layers up to the captured one, with progress and cancel --------

namespace {

class RecordAll : public latmix::CaptureHook {
 public:
  bool wants(latmix::CapturePoint, int64_t) const override { return true; }
  at::Tensor on_capture(latmix::CapturePoint point, int64_t layer, const at::Tensor& x) override {
    seen[{static_cast<int>(point), layer}] = x.clone();
    return {};
  }
  std::map<std::pair<int, int64_t>, at::Tensor> seen;
};

}  // namespace

TEST(CaptureActivation, EqualsTheWholePassAndRunsOnlyTheLayersItNeeds) {
  latmix::Model model = tiny_model();  // a copy: the hook stays on it
  auto all = std::make_shared<RecordAll>();
  model.add_hook(all);
  const at::Tensor ids = at::arange(0, 24, at::kLong).remainder(300);
  model.hidden_states(ids.unsqueeze(0));
  model.clear_hooks();
  const int64_t layers = model.config().num_layers;
  for (const auto point : {latmix::CapturePoint::Residual, latmix::CapturePoint::AttnIn,
                           latmix::CapturePoint::ResidualMid, latmix::CapturePoint::MlpIn}) {
    for (int64_t layer : {int64_t{0}, layers - 1}) {
      std::vector<std::pair<int64_t, int64_t>> reports;
      latmix::JobControl control;
      control.progress = [&](std::string_view stage, int64_t done, int64_t total) {
        EXPECT_EQ(stage, "layers");
        reports.emplace_back(done, total);
      };
      const at::Tensor x = latmix::capture_activation(model, ids, point, layer, control);
      const at::Tensor& whole = all->seen.at({static_cast<int>(point), layer});
      EXPECT_TRUE(at::equal(x, whole.squeeze(0))) << latmix::capture_point_name(point) << " layer " << layer;
      ASSERT_EQ(reports.size(), static_cast<size_t>(layer + 1));  // the layers after it never ran
      EXPECT_EQ(reports.back(), std::make_pair(layer + 1, layer + 1));
    }
  }
  const at::Tensor final_norm = latmix::capture_activation(model, ids, latmix::CapturePoint::FinalNormOut, layers);
  EXPECT_TRUE(at::equal(final_norm, all->seen.at({static_cast<int>(latmix::CapturePoint::FinalNormOut), layers}).squeeze(0)));
  latmix::JobControl cancelled;
  cancelled.cancel.cancel();
  EXPECT_THROW(latmix::capture_activation(model, ids, latmix::CapturePoint::MlpIn, 1, cancelled), latmix::Cancelled);
}
