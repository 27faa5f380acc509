// Activation statistics on gutenberg-llama-22M: its residual-stream outlier channels, and how a
// full Hadamard spreads their energy over every MX block while a block Hadamard keeps it local.
#include <gtest/gtest.h>

#include <algorithm>

#include "latmix/calib.h"
#include "latmix/calib_collector.h"
#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/transforms.h"
#include "test_paths.h"

namespace {

using latmix::CapturePoint;

struct Runs {
  latmix::ActivationStats none, hadamard, block_hadamard;
};

latmix::ActivationTransform with(const latmix::TransformPtr& t) {
  return [t](CapturePoint, int64_t, const at::Tensor& x) { return t->forward(x); };
}

const Runs& run() {
  static const Runs r = [] {
    const std::string dir = latmix::test::data_path("models/gutenberg-llama-22M");
    latmix::Model model = latmix::load_model(dir);
    auto tok = latmix::load_model_tokenizer(dir, "", static_cast<int32_t>(model.config().vocab_size));
    latmix::CalibrationOptions co;
    co.samples = 8;
    co.seqlen = 256;
    const latmix::CalibrationSet data = latmix::load_calibration_text(
        latmix::test::source_path("resources/calibration/pride_and_prejudice_ch1-6.txt"), *tok, co);
    latmix::StatsOptions o;
    Runs out;
    out.none = latmix::collect_activation_stats(model, data, o);
    out.hadamard =
        latmix::collect_activation_stats(model, data, o, with(std::make_shared<latmix::HadamardTransform>(512, 0)));
    out.block_hadamard = latmix::collect_activation_stats(
        model, data, o, with(std::make_shared<latmix::BlockHadamardTransform>(512, 32, 0)));
    return out;
  }();
  return r;
}

std::vector<int64_t> top_channels(const latmix::ViewStats& v, size_t n) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < std::min(n, v.outliers.size()); ++i) out.push_back(v.outliers[i].channel);
  return out;
}

bool contains(const std::vector<int64_t>& v, int64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

// Layer 0's residual input is the embedding (no outliers); from layer 1 on, channels 347 and 367
// (blocks 10 and 11) lead in every layer, 16x..4x the median channel RMS. Channel 61, which the
// training summary lists too, is in the top 8 of layers 1-3 on this text and fades after that.
TEST(CalibGutenberg, ResidualOutlierChannelsRecurInEveryLayer) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-22M");
  const latmix::ActivationStats& s = run().none;
  ASSERT_EQ(s.layers.size(), 6u);
  for (int64_t layer = 1; layer < 6; ++layer) {
    const latmix::LayerStats* l = s.find(CapturePoint::Residual, layer);
    ASSERT_NE(l, nullptr);
    const std::vector<int64_t> top = top_channels(l->original, 8);
    EXPECT_EQ(top[0], 347) << "layer " << layer;
    EXPECT_TRUE(contains({top[1], top[2]}, 367)) << "layer " << layer;
    if (layer <= 3) {
      EXPECT_TRUE(contains(top, 61)) << "layer " << layer;
    }
    EXPECT_GT(l->original.outliers[0].rms_ratio, 3.5f);
    EXPECT_EQ(l->original.blocks.top_block(), 10);
    EXPECT_GT(l->original.kurtosis, 5.0);
    EXPECT_GE(l->original.outliers[0].tokens.size(), 1u);
  }
  EXPECT_LT(s.find(CapturePoint::Residual, 0)->original.outliers[0].rms_ratio, 3.0f);
}

TEST(CalibGutenberg, HadamardSpreadsTheOutlierBlockAndBlockHadamardKeepsIt) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-22M");
  const Runs& r = run();
  for (int64_t layer = 1; layer < 6; ++layer) {
    const latmix::ViewStats& before = r.none.find(CapturePoint::Residual, layer)->original;
    const latmix::ViewStats& full = *r.hadamard.find(CapturePoint::Residual, layer)->transformed;
    const latmix::ViewStats& block = *r.block_hadamard.find(CapturePoint::Residual, layer)->transformed;
    const float share = before.blocks.energy_share[10];
    EXPECT_GT(share, 0.08f) << "layer " << layer;  // uniform would be 1/16
    // Full Hadamard: every block gets about 1/16 of the energy.
    const auto top_full = static_cast<size_t>(full.blocks.top_block());
    EXPECT_LT(full.blocks.energy_share[top_full], 0.075f) << "layer " << layer;
    EXPECT_LT(full.blocks.energy_share[10], share * 0.7f) << "layer " << layer;
    // Block Hadamard is orthogonal within each block: every block keeps its energy exactly.
    for (size_t b = 0; b < 16; ++b) {
      EXPECT_NEAR(block.blocks.energy_share[b], before.blocks.energy_share[b], 1e-4) << "layer " << layer;
    }
    EXPECT_NEAR(full.energy, before.energy, 1e-4 * before.energy);
    // Both flatten the distribution and improve MXFP4's SQNR here.
    EXPECT_LT(full.kurtosis, before.kurtosis);
    EXPECT_GT(full.quant.sqnr_db, before.quant.sqnr_db);
    EXPECT_GT(block.quant.sqnr_db, before.quant.sqnr_db);
  }
}
