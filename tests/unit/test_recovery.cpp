// recovery.h: the one recovery (accuracy quantized / FP, perplexity FP / quantized, a propagated
// standard error) and the one zero-shot mean that `latmix eval`, the comparison report and the
// studio's Compare tab show.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

#include "latmix/compare.h"
#include "latmix/recovery.h"
#include "latmix/tasks.h"

namespace latmix {
namespace {

const double kNaN = std::nan("");

TaskResult result(const std::string& task, const std::string& metric, double value, double se = kNaN) {
  TaskResult r;
  r.task = task;
  r.metrics[metric] = value;
  if (!std::isnan(se)) r.standard_errors[metric] = se;
  return r;
}

TEST(Recovery, AccuracyIsQuantizedOverFp) {
  const Estimate r = recovery("acc", Estimate{0.8, kNaN}, Estimate{0.6, kNaN});
  EXPECT_NEAR(r.value, 75.0, 1e-12);
  EXPECT_TRUE(std::isnan(r.se));  // no standard errors given
  EXPECT_NEAR(recovery("acc_norm", Estimate{0.5, kNaN}, Estimate{0.55, kNaN}).value, 110.0, 1e-12);
}

TEST(Recovery, PerplexityAndNllAreFpOverQuantized) {
  EXPECT_TRUE(lower_is_better("ppl"));
  EXPECT_TRUE(lower_is_better("mean_nll"));
  EXPECT_FALSE(lower_is_better("acc"));
  EXPECT_NEAR(recovery("ppl", Estimate{20.0, kNaN}, Estimate{25.0, kNaN}).value, 80.0, 1e-12);
  EXPECT_NEAR(recovery("mean_nll", Estimate{3.0, kNaN}, Estimate{4.0, kNaN}).value, 75.0, 1e-12);
  // A diverged quantized model (perplexity overflowed to infinity) keeps nothing.
  EXPECT_EQ(recovery("ppl", Estimate{20.0, kNaN}, Estimate{std::numeric_limits<double>::infinity(), kNaN}).value,
            0.0);
}

TEST(Recovery, StandardErrorIsPropagatedToFirstOrder) {
  // 75 % * sqrt((0.04 / 0.8)^2 + (0.05 / 0.6)^2), by hand: 7.288689868556626.
  const Estimate r = recovery("acc", Estimate{0.8, 0.04}, Estimate{0.6, 0.05});
  EXPECT_NEAR(r.value, 75.0, 1e-12);
  EXPECT_NEAR(r.se, 7.288689868556626, 1e-9);
  // From task results: the metric's value and its standard error.
  const Estimate t = recovery("acc", result("arc_easy", "acc", 0.8, 0.04), result("arc_easy", "acc", 0.6, 0.05));
  EXPECT_DOUBLE_EQ(t.value, r.value);
  EXPECT_DOUBLE_EQ(t.se, r.se);
  // One standard error missing: no standard error.
  EXPECT_TRUE(std::isnan(recovery("acc", Estimate{0.8, 0.04}, Estimate{0.6, kNaN}).se));
  // A quantized accuracy of 0: recovery 0, the relative error undefined.
  const Estimate zero = recovery("acc", Estimate{0.8, 0.04}, Estimate{0.0, 0.0});
  EXPECT_EQ(zero.value, 0.0);
  EXPECT_TRUE(std::isnan(zero.se));
}

TEST(Recovery, UndefinedForFpOfZeroAndNaN) {
  EXPECT_TRUE(std::isnan(recovery("acc", Estimate{0.0, 0.01}, Estimate{0.5, 0.01}).value));
  EXPECT_TRUE(std::isnan(recovery("acc", Estimate{0.0, 0.01}, Estimate{0.5, 0.01}).se));
  EXPECT_TRUE(std::isnan(recovery("ppl", Estimate{0.0, kNaN}, Estimate{10.0, kNaN}).value));
  EXPECT_TRUE(std::isnan(recovery("acc", Estimate{kNaN, kNaN}, Estimate{0.5, kNaN}).value));
  EXPECT_TRUE(std::isnan(recovery("acc", Estimate{0.5, kNaN}, Estimate{kNaN, kNaN}).value));
  EXPECT_TRUE(std::isnan(recovery("ppl", Estimate{10.0, kNaN}, Estimate{kNaN, kNaN}).value));
  EXPECT_TRUE(std::isnan(recovery("ppl", Estimate{10.0, kNaN}, Estimate{0.0, kNaN}).value));
  EXPECT_TRUE(std::isnan(
      recovery("ppl", Estimate{std::numeric_limits<double>::infinity(), kNaN}, Estimate{10.0, kNaN}).value));
  // A metric one result lacks.
  EXPECT_TRUE(std::isnan(recovery("acc", result("t", "acc", 0.5), result("t", "ppl", 3.0)).value));
}

TEST(Recovery, ZeroShotMeanAndItsStandardError) {
  const std::vector<TaskResult> results = {result("frankenstein", "ppl", 250.0), result("arc_easy", "acc", 0.5, 0.02),
                                           result("piqa", "acc", 0.7, 0.03)};
  const Estimate m = zero_shot_mean(results);
  EXPECT_NEAR(m.value, 0.6, 1e-12);  // the perplexity task is left out
  EXPECT_NEAR(m.se, std::sqrt(0.02 * 0.02 + 0.03 * 0.03) / 2, 1e-12);
  // A task without a standard error (fewer than 2 items): the mean has none.
  const Estimate partial = zero_shot_mean({result("arc_easy", "acc", 0.5, 0.02), result("piqa", "acc", 0.7)});
  EXPECT_NEAR(partial.value, 0.6, 1e-12);
  EXPECT_TRUE(std::isnan(partial.se));
  const Estimate none = zero_shot_mean({result("frankenstein", "ppl", 250.0)});
  EXPECT_TRUE(std::isnan(none.value));
  EXPECT_TRUE(std::isnan(none.se));
}

TEST(Recovery, HeadlineIsTheZeroShotMeanElseTheFirstText) {
  const std::vector<TaskResult> fp = {result("frankenstein", "ppl", 200.0), result("arc_easy", "acc", 0.5, 0.02),
                                      result("piqa", "acc", 0.7, 0.03)};
  const std::vector<TaskResult> q = {result("frankenstein", "ppl", 250.0), result("arc_easy", "acc", 0.4, 0.02),
                                     result("piqa", "acc", 0.5, 0.03)};
  EXPECT_EQ(headline_recovery_basis(fp), "zero-shot mean accuracy");
  const Estimate h = headline_recovery(fp, q);
  EXPECT_NEAR(h.value, 75.0, 1e-12);  // 0.45 / 0.6
  const Estimate expected = recovery("acc", zero_shot_mean(fp), zero_shot_mean(q));
  EXPECT_DOUBLE_EQ(h.se, expected.se);
  EXPECT_TRUE(std::isfinite(h.se));

  const std::vector<TaskResult> fp_text = {result("frankenstein", "ppl", 200.0), result("alice", "ppl", 300.0)};
  const std::vector<TaskResult> q_text = {result("alice", "ppl", 400.0), result("frankenstein", "ppl", 250.0)};
  EXPECT_EQ(headline_recovery_basis(fp_text), "frankenstein perplexity");
  EXPECT_NEAR(headline_recovery(fp_text, q_text).value, 80.0, 1e-12);
  EXPECT_TRUE(std::isnan(headline_recovery(fp_text, {result("alice", "ppl", 400.0)}).value));
  EXPECT_TRUE(std::isnan(headline_recovery({}, q_text).value));
  EXPECT_EQ(headline_recovery_basis({}), "");
}

// The comparison report shows every method's recovery (compare.h): a hand-made comparison with a
// text and two zero-shot tasks, so the figure is the zero-shot mean's, with its standard error.
TEST(Recovery, ComparisonReportHasEveryMethodsRecovery) {
  Comparison c;
  c.model = "m";
  c.calibration = "c";
  c.fp = {result("frankenstein", "ppl", 200.0), result("arc_easy", "acc", 0.5, 0.02), result("piqa", "acc", 0.7, 0.03)};
  MethodRow rtn;
  rtn.method = "rtn";
  rtn.results = {result("frankenstein", "ppl", 250.0), result("arc_easy", "acc", 0.4, 0.02),
                 result("piqa", "acc", 0.5, 0.03)};
  MethodRow latmix = rtn;
  latmix.method = "latmix";
  latmix.results = {result("frankenstein", "ppl", 220.0), result("arc_easy", "acc", 0.45, 0.02),
                    result("piqa", "acc", 0.63, 0.03)};
  c.rows = {rtn, latmix};
  const std::string md = c.markdown({});
  EXPECT_NE(md.find("recovery % of FP (zero-shot mean accuracy, quantized / FP; ± se)"), std::string::npos) << md;
  // rtn: 0.45 / 0.6 = 75.0 %; latmix: 0.54 / 0.6 = 90.0 %; each ± its propagated standard error.
  const Estimate r_rtn = headline_recovery(c.fp, rtn.results), r_latmix = headline_recovery(c.fp, latmix.results);
  EXPECT_NEAR(r_rtn.value, 75.0, 1e-9);
  EXPECT_NEAR(r_latmix.value, 90.0, 1e-9);
  auto one_decimal = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", v);
    return std::string(buf);
  };
  EXPECT_NE(md.find("| 75.0 ± " + one_decimal(r_rtn.se) + " |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 90.0 ± " + one_decimal(r_latmix.se) + " |"), std::string::npos) << md;
  EXPECT_NE(md.find("| FP | 200.000 | 60.00 ± 1.80 | 100.0 |"), std::string::npos) << md;
  // Per task: frankenstein 200 / 220 = 90.9 %, arc_easy 0.45 / 0.5 = 90.0 %, piqa 0.63 / 0.7 = 90.0 %.
  EXPECT_NE(md.find("## Recovery per task"), std::string::npos) << md;
  const Estimate arc = recovery("acc", c.fp[1], latmix.results[1]);
  EXPECT_NE(md.find("| latmix | 90.9 | 90.0 ± " + one_decimal(arc.se) + " |"), std::string::npos) << md;
  const nlohmann::json j = c.to_json();
  EXPECT_NEAR(j["methods"][1]["recovery"]["percent"].get<double>(), 90.0, 1e-9);
  EXPECT_NEAR(j["methods"][1]["recovery"]["se"].get<double>(), r_latmix.se, 1e-9);
  EXPECT_EQ(j["methods"][1]["recovery"]["basis"], "zero-shot mean accuracy");
}

}  // namespace
}  // namespace latmix
