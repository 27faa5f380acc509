// The Block Microscope's engine side: one block explained.
#include <gtest/gtest.h>

#include <cmath>

#include "latmix/error.h"
#include "latmix/mx_block.h"

TEST(MxBlockView, HandWorkedMxfp4BlockUnderFloor) {
  std::vector<float> v = {5.0f, 1.25f, -0.75f, 0.25f, 2.5f, -3.5f};
  v.resize(32, 0.0f);
  auto view = latmix::inspect_mx_block(at::tensor(v), latmix::MxFormat::parse("mxfp4"));
  EXPECT_EQ(view.scale_code, 127);  // floor(log2 5) - emax(2) = 0 -> 2^0
  EXPECT_DOUBLE_EQ(view.scale, 1.0);
  const std::vector<float> expect = {4, 1, -1, 0, 2, -4};
  for (size_t i = 0; i < expect.size(); ++i) EXPECT_FLOAT_EQ(view.quantized[i], expect[i]) << i;
  EXPECT_EQ(view.grid, (std::vector<double>{0, 0.5, 1, 1.5, 2, 3, 4, 6}));
  EXPECT_EQ(view.clipped, 0);
  EXPECT_DOUBLE_EQ(view.amax, 5.0);
  const double noise = 1 + 0.0625 + 0.0625 + 0.0625 + 0.25 + 0.25;
  const double signal = 25 + 1.5625 + 0.5625 + 0.0625 + 6.25 + 12.25;
  EXPECT_NEAR(view.sqnr_db, 10 * std::log10(signal / noise), 1e-9);
}

TEST(MxBlockView, ClippingIsCountedAndTheScaleFollowsTheRule) {
  std::vector<float> v = {7.9f, 1.0f, -2.2f, 0.3f};
  auto floor = latmix::inspect_mx_block(at::tensor(v), latmix::MxFormat::parse("mxfp4"));
  EXPECT_EQ(floor.clipped, 1);
  EXPECT_FLOAT_EQ(floor.quantized[0], 6.0f);
  latmix::MxFormat rceil = latmix::MxFormat::parse("mxfp4");
  rceil.scale = latmix::ScaleRule::RCeil;
  auto up = latmix::inspect_mx_block(at::tensor(v), rceil);
  EXPECT_EQ(up.clipped, 0);
  EXPECT_FLOAT_EQ(up.quantized[0], 8.0f);
  EXPECT_DOUBLE_EQ(up.scale, 2.0);
}

TEST(MxBlockView, ExactBlockHasInfiniteSqnrAndRejectsOversizedInput) {
  auto exact = latmix::inspect_mx_block(at::tensor(std::vector<float>{1, 2, 4, -0.5}),
                                        latmix::MxFormat::parse("mxfp8_e4m3"));
  EXPECT_TRUE(std::isinf(exact.sqnr_db));
  EXPECT_THROW(latmix::inspect_mx_block(at::zeros({33}), latmix::MxFormat::parse("mxfp4")), latmix::Error);
}
