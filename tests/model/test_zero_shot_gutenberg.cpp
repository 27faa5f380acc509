// Zero-shot evaluation on the gutenberg models: per-item log-likelihoods against transformers
// (tests/golden/make_zero_shot_goldens.py), and short --limit runs of every task.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "latmix/eval_zero_shot.h"
#include "latmix/model_files.h"
#include "latmix/tasks.h"
#include "test_paths.h"

namespace {

using nlohmann::json;

struct Loaded {
  latmix::Model model;
  std::unique_ptr<latmix::Tokenizer> tokenizer;
};

Loaded load(const std::string& name) {
  const std::string dir = latmix::test::data_path("models/" + name);
  latmix::Model model = latmix::load_model(dir);
  auto tok = latmix::load_model_tokenizer(dir, "", static_cast<int32_t>(model.config().vocab_size));
  return {std::move(model), std::move(tok)};
}

json goldens() {
  std::ifstream in(latmix::test::fixtures_path("zero_shot/goldens.json"));
  return json::parse(in);
}

}  // namespace

// transformers (fp32, eager) vs our fp32 model on the first 10 items of four tasks: the same prompt
// strings, the same token ids, log-likelihood sums within 1e-3, the same greedy verdicts.
TEST(ZeroShotGoldens, MatchTransformersOnGutenberg22M) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-22M");
  LATMIX_REQUIRE_DATA("eval/arc_easy");
  if (!std::filesystem::exists(latmix::test::fixtures_path("zero_shot/goldens.json"))) GTEST_SKIP() << "no goldens";
  const json g = goldens();
  ASSERT_FALSE(g.at("bos").get<bool>());
  const Loaded m = load("gutenberg-llama-22M");
  ASSERT_FALSE(m.tokenizer->add_bos_by_default());
  latmix::EvalOptions o;
  o.data_dir = latmix::test::data_dir();
  o.limit = 10;
  o.keep_item_scores = true;
  double max_diff = 0;
  for (const auto& [task, items] : g.at("tasks").items()) {
    const latmix::TaskData data = latmix::load_zero_shot_task(task, o.data_dir);
    const std::vector<latmix::TaskResult> r = latmix::run_tasks(m.model, *m.tokenizer, {task}, o);
    ASSERT_EQ(r[0].item_scores.size(), items.size()) << task;
    for (size_t i = 0; i < items.size(); ++i) {
      const json& item = items[i];
      ASSERT_EQ(item.at("contexts").get<std::vector<std::string>>(), data.items[i].contexts) << task << " " << i;
      ASSERT_EQ(item.at("continuations").get<std::vector<std::string>>(), data.items[i].continuations)
          << task << " " << i;
      EXPECT_EQ(item.at("gold").get<int32_t>(), data.items[i].gold);
      const latmix::ItemScores& s = r[0].item_scores[i];
      for (size_t c = 0; c < s.logprobs.size(); ++c) {
        const auto req =
            latmix::tokenize_request(*m.tokenizer, data.items[i].contexts[c], data.items[i].continuations[c], false);
        EXPECT_EQ(req.context, item.at("context_ids")[c].get<std::vector<int32_t>>()) << task << " " << i << "/" << c;
        EXPECT_EQ(req.continuation, item.at("continuation_ids")[c].get<std::vector<int32_t>>()) << task << " " << i;
        EXPECT_NEAR(s.logprobs[c], item.at("logprobs")[c].get<double>(), 1e-3) << task << " " << i << "/" << c;
        max_diff = std::max(max_diff, std::abs(s.logprobs[c] - item.at("logprobs")[c].get<double>()));
        EXPECT_EQ(s.greedy[c], item.at("greedy")[c].get<bool>()) << task << " " << i << "/" << c;
      }
    }
  }
  std::printf("largest |log-likelihood difference| to transformers: %.2e\n", max_diff);
}

// Every task runs with --limit on the 6M model; prefix caching and batching agree.
TEST(ZeroShotGutenberg, EveryTaskRunsWithALimit) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-6M");
  LATMIX_REQUIRE_DATA("eval/arc_easy");
  const Loaded m = load("gutenberg-llama-6M");
  latmix::EvalOptions o;
  o.data_dir = latmix::test::data_dir();
  o.limit = 8;  // every task, each cut at the limit (was 20: the same checks at 2.5x the cost)
  o.seqlen = 128;
  const std::vector<std::string> tasks = latmix::all_task_names();
  const std::vector<latmix::TaskResult> results = latmix::run_tasks(m.model, *m.tokenizer, tasks, o);
  ASSERT_EQ(results.size(), tasks.size());
  for (const latmix::TaskResult& r : results) {
    EXPECT_EQ(r.items, 8) << r.task;
    EXPECT_FALSE(r.convention.empty());
    for (const auto& [metric, v] : r.metrics) {
      if (metric.rfind("acc", 0) == 0) {
        EXPECT_GE(v, 0.0) << r.task;
        EXPECT_LE(v, 1.0) << r.task;
        EXPECT_EQ(r.standard_errors.count(metric), 1u) << r.task << " " << metric;
      } else {
        EXPECT_GT(v, 0.0) << r.task << " " << metric;
      }
    }
  }
  EXPECT_EQ(results[0].task, "wikitext2");
  EXPECT_NE(results[0].convention.find("seqlen 128, 8 windows, 1016 tokens scored, no BOS"), std::string::npos)
      << results[0].convention;
  o.limit = 12;
  o.keep_item_scores = true;
  const auto rows = latmix::run_tasks(m.model, *m.tokenizer, {"hellaswag", "boolq"}, o);
  o.prefix_cache = true;
  o.batch_size = 1;
  const auto cached = latmix::run_tasks(m.model, *m.tokenizer, {"hellaswag", "boolq"}, o);
  for (size_t t = 0; t < rows.size(); ++t) {
    EXPECT_EQ(rows[t].metrics, cached[t].metrics);
    for (size_t i = 0; i < rows[t].item_scores.size(); ++i) {
      for (size_t c = 0; c < rows[t].item_scores[i].logprobs.size(); ++c) {
        EXPECT_NEAR(rows[t].item_scores[i].logprobs[c], cached[t].item_scores[i].logprobs[c], 1e-3);
      }
    }
  }
}
