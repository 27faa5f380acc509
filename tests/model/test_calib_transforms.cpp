// Saved transforms (save_transforms) reload into the statistics views exactly as the built-in
// transform they came from: the `latmix stats --transforms PREFIX` path.
#include <gtest/gtest.h>

#include "latmix/calib.h"
#include "latmix/calib_collector.h"
#include "latmix/calib_data.h"
#include "latmix/calib_transforms.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/transform_fold.h"
#include "latmix/transforms.h"
#include "test_paths.h"

TEST(CalibTransforms, SavedPlanGivesTheSameStatisticsAsTheBuiltInTransform) {
  const std::string dir = latmix::test::source_path("resources/models/gutenberg-llama-6M");
  latmix::Model model = latmix::load_model(dir);
  auto tok = latmix::load_model_tokenizer(dir, "", static_cast<int32_t>(model.config().vocab_size));
  latmix::CalibrationOptions copt;
  copt.samples = 4;
  copt.seqlen = 64;
  const auto data = latmix::load_calibration_text(
      latmix::test::source_path("resources/calibration/pride_and_prejudice_ch1-6.txt"), *tok, copt);
  latmix::StatsOptions opt;  // residual stream, MXFP4
  const uint64_t seed = 7;

  latmix::TransformPlan plan;
  plan.residual = std::make_shared<latmix::HadamardTransform>(model.config().hidden_size, seed);
  const std::string prefix = latmix::test::temp_dir("plan") + "/hadamard";
  latmix::save_transforms(prefix, plan);

  const auto builtin = latmix::collect_activation_stats(
      model, data, opt, latmix::make_builtin_activation_transform("hadamard", model, opt.format, seed));
  const auto saved =
      latmix::collect_activation_stats(model, data, opt, latmix::make_plan_activation_transform(prefix, model));
  ASSERT_EQ(builtin.layers.size(), saved.layers.size());
  for (size_t i = 0; i < builtin.layers.size(); ++i) {
    const auto& a = builtin.layers[i].view(latmix::StatsView::Transformed);
    const auto& b = saved.layers[i].view(latmix::StatsView::Transformed);
    EXPECT_DOUBLE_EQ(a.quant.sqnr_db, b.quant.sqnr_db) << "layer " << i;
    EXPECT_EQ(a.blocks.energy_share, b.blocks.energy_share) << "layer " << i;
  }
  EXPECT_THROW(latmix::make_plan_activation_transform(prefix + "-missing", model), latmix::Error);
}
