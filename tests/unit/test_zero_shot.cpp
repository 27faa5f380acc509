// Zero-shot scoring on the tiny random-weight Llama 3 fixture: every batching strategy gives the
// log-likelihoods of a plain one-row forward pass; metrics, tokenization and task lists.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "latmix/error.h"
#include "latmix/eval_zero_shot.h"
#include "latmix/model_files.h"
#include "latmix/tasks.h"
#include "test_paths.h"

namespace {

using latmix::Loglikelihood;
using latmix::LoglikelihoodRequest;

const latmix::Model& tiny() {
  static const latmix::Model m = latmix::load_model(latmix::test::fixtures_path("models/tiny-llama3"));
  return m;
}

/// One id per byte (id = byte + 1; 0 is BOS): enough text for the tiny model's 320-id vocabulary.
class ByteTokenizer : public latmix::Tokenizer {
 public:
  explicit ByteTokenizer(bool add_bos) : Tokenizer("bytes", {0, std::nullopt, add_bos}) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (char c : text) ids.push_back(static_cast<unsigned char>(c) + 1);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids) s += static_cast<char>(id - 1);
    return s;
  }
  std::string token_text(int32_t id) const override { return std::string(1, static_cast<char>(id - 1)); }
  std::optional<int32_t> token_id(std::string_view) const override { return std::nullopt; }
  int32_t vocab_size() const override { return 257; }
  std::string kind() const override { return "bytes"; }
};

std::vector<int32_t> random_ids(std::mt19937& rng, int n) {
  std::uniform_int_distribution<int32_t> d(0, 319);
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(d(rng));
  return v;
}

/// Multiple-choice style: groups of 3 continuations sharing a context, mixed lengths, some of one token.
std::vector<LoglikelihoodRequest> make_requests() {
  std::mt19937 rng(7);
  std::vector<LoglikelihoodRequest> out;
  for (int item = 0; item < 7; ++item) {
    const std::vector<int32_t> ctx = random_ids(rng, 3 + 5 * item);
    for (int c = 0; c < 3; ++c) out.push_back({ctx, random_ids(rng, item % 3 == 0 ? 1 : 1 + (item + c) % 6)});
  }
  out.push_back(out[0]);  // an exact duplicate
  return out;
}

/// The reference: one unpadded forward pass per request, log-softmax at the continuation positions.
Loglikelihood direct(const LoglikelihoodRequest& r, size_t max_length = 1000) {
  std::vector<int64_t> full(r.context.begin(), r.context.end());
  full.insert(full.end(), r.continuation.begin(), r.continuation.end());
  std::vector<int64_t> input(full.begin(), full.end() - 1);
  if (input.size() > max_length) input.erase(input.begin(), input.end() - static_cast<std::ptrdiff_t>(max_length));
  at::Tensor logp = at::log_softmax(tiny().forward(at::tensor(input, at::kLong)), -1);
  Loglikelihood out{0, true};
  const int64_t n = static_cast<int64_t>(input.size()), L = static_cast<int64_t>(r.continuation.size());
  for (int64_t k = 0; k < L; ++k) {
    const int64_t tok = r.continuation[static_cast<size_t>(k)];
    out.logprob += logp[n - L + k][tok].item<double>();
    out.greedy = out.greedy && logp[n - L + k].argmax().item<int64_t>() == tok;
  }
  return out;
}

void expect_close(const std::vector<Loglikelihood>& a, const std::vector<Loglikelihood>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i].logprob, b[i].logprob, 1e-4) << what << " request " << i;
    EXPECT_EQ(a[i].greedy, b[i].greedy) << what << " request " << i;
  }
}

}  // namespace

TEST(ZeroShotScoring, EveryBatchingGivesTheUnbatchedLogLikelihoods) {
  const auto requests = make_requests();
  std::vector<Loglikelihood> reference;
  for (const auto& r : requests) reference.push_back(direct(r));
  for (int64_t batch : {1, 3, 16}) {
    latmix::ScoringOptions o;
    o.batch_size = batch;
    expect_close(latmix::score_loglikelihoods(tiny(), requests, o), reference, "batch " + std::to_string(batch));
  }
  latmix::ScoringOptions cached;
  cached.prefix_cache = true;
  expect_close(latmix::score_loglikelihoods(tiny(), requests, cached), reference, "prefix cache");
}

TEST(ZeroShotScoring, IsDeterministic) {
  const auto requests = make_requests();
  latmix::ScoringOptions o;
  o.batch_size = 5;
  const auto a = latmix::score_loglikelihoods(tiny(), requests, o);
  const auto b = latmix::score_loglikelihoods(tiny(), requests, o);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].logprob, b[i].logprob);
    EXPECT_EQ(a[i].greedy, b[i].greedy);
  }
  EXPECT_EQ(a.back().logprob, a.front().logprob);  // the duplicate of request 0
}

TEST(ZeroShotScoring, LongRowsAreCutOnTheLeft) {
  const auto requests = make_requests();
  std::vector<Loglikelihood> reference;
  for (const auto& r : requests) reference.push_back(direct(r, 12));
  for (bool cache : {false, true}) {
    latmix::ScoringOptions o;
    o.max_length = 12;
    o.prefix_cache = cache;
    expect_close(latmix::score_loglikelihoods(tiny(), requests, o), reference, cache ? "cached, cut" : "rows, cut");
  }
}

TEST(ZeroShotScoring, RejectsEmptyContinuationsAndCancels) {
  EXPECT_THROW(latmix::score_loglikelihoods(tiny(), {{{1, 2}, {}}}, {}), latmix::Error);
  latmix::JobControl job;
  job.cancel.cancel();
  EXPECT_THROW(latmix::score_loglikelihoods(tiny(), make_requests(), {}, job), latmix::Cancelled);
}

TEST(ZeroShotTokenize, TrailingSpaceMovesToTheContinuationAndBosIsPrepended) {
  const ByteTokenizer tok(false);
  const auto r = latmix::tokenize_request(tok, "Ab ", "c", false);
  EXPECT_EQ(r.context, (std::vector<int32_t>{'A' + 1, 'b' + 1}));
  EXPECT_EQ(r.continuation, (std::vector<int32_t>{' ' + 1, 'c' + 1}));
  const auto b = latmix::tokenize_request(tok, "Ab", " c", true);
  EXPECT_EQ(b.context, (std::vector<int32_t>{0, 'A' + 1, 'b' + 1}));
  EXPECT_EQ(b.continuation, r.continuation);
  const auto empty = latmix::tokenize_request(tok, "", "xy", false);
  EXPECT_EQ(empty.context, (std::vector<int32_t>{0}));  // lm-eval: an empty context is [BOS]
  EXPECT_THROW(latmix::tokenize_request(tok, "ab", "", false), latmix::Error);
}

TEST(ZeroShotTokenize, ContinuationIsTheJointEncodingAfterTheContext) {
  const std::string dir = latmix::test::source_path("resources/models/gutenberg-llama-6M");
  const auto tok = latmix::load_model_tokenizer(dir, "", 8192);
  const auto r = latmix::tokenize_request(*tok, "The old house stood at the end of the", " lane", false);
  std::vector<int32_t> joined = r.context;
  joined.insert(joined.end(), r.continuation.begin(), r.continuation.end());
  EXPECT_EQ(joined, tok->encode("The old house stood at the end of the lane"));
  EXPECT_EQ(r.context, tok->encode("The old house stood at the end of the"));
}

TEST(ZeroShotMetrics, AccuracyNormalizationAndStderr) {
  const ByteTokenizer tok(false);
  latmix::TaskData task;
  task.name = "synthetic";
  task.report_acc_norm = true;
  for (int i = 0; i < 6; ++i) {
    latmix::ChoiceItem item;
    const std::string ctx = "Question " + std::to_string(i) + ": which?\nAnswer:";
    item.contexts = {ctx, ctx, ctx};
    item.continuations = {" a", " bb bb bb bb", " c c"};
    item.gold = i % 3;
    task.items.push_back(item);
  }
  latmix::ZeroShotOptions o;
  const auto r = latmix::evaluate_zero_shot(tiny(), tok, task, o);
  ASSERT_EQ(r.items, 6);
  double acc = 0, acc_norm = 0;
  const double len[3] = {1, 11, 3};
  for (const auto& s : r.scores) {
    const auto& lp = s.logprobs;
    acc += (std::max_element(lp.begin(), lp.end()) - lp.begin()) == s.gold;
    std::vector<double> n = {lp[0] / len[0], lp[1] / len[1], lp[2] / len[2]};
    acc_norm += (std::max_element(n.begin(), n.end()) - n.begin()) == s.gold;
  }
  EXPECT_DOUBLE_EQ(r.metrics.at("acc"), acc / 6);
  EXPECT_DOUBLE_EQ(r.metrics.at("acc_norm"), acc_norm / 6);
  const double p = acc / 6;
  EXPECT_DOUBLE_EQ(r.standard_errors.at("acc"), std::sqrt(p * (1 - p) / 5));
  o.limit = 2;
  EXPECT_EQ(latmix::evaluate_zero_shot(tiny(), tok, task, o).items, 2);
}

TEST(ZeroShotMetrics, LastWordAccuracyIsGreedyMatch) {
  const ByteTokenizer tok(false);
  latmix::TaskData task;
  task.name = "words";
  task.kind = latmix::TaskKind::LastWord;
  task.items = {{{"abc"}, {" d"}, 0}, {{"xyz abc"}, {" de"}, 0}};
  const auto r = latmix::evaluate_zero_shot(tiny(), tok, task, {});
  double acc = 0, ll = 0;
  for (const auto& s : r.scores) {
    acc += s.greedy[0];
    ll += s.logprobs[0];
  }
  EXPECT_DOUBLE_EQ(r.metrics.at("acc"), acc / 2);
  EXPECT_NEAR(r.metrics.at("ppl"), std::exp(-ll / 2), 1e-9);
  EXPECT_EQ(r.metrics.count("acc_norm"), 0u);
}

TEST(EvalTasks, TaskListsExpandAndCheckNames) {
  EXPECT_EQ(latmix::parse_task_list("ptb,arc_easy,ptb"), (std::vector<std::string>{"ptb", "arc_easy"}));
  EXPECT_EQ(latmix::parse_task_list("all"), latmix::all_task_names());
  EXPECT_EQ(latmix::all_task_names().size(), 13u);
  EXPECT_EQ(latmix::parse_task_list("text:/tmp/a.txt"), (std::vector<std::string>{"text:/tmp/a.txt"}));
  EXPECT_EQ(latmix::perplexity_task_file("alice"), "corpus/gutenberg/pg11_alice_in_wonderland.txt");
  EXPECT_EQ(latmix::perplexity_task_file("arc_easy"), std::nullopt);
  EXPECT_THROW(latmix::parse_task_list("arc_easy,mmlu"), latmix::UsageError);
  EXPECT_THROW(latmix::parse_task_list("text:"), latmix::UsageError);
  EXPECT_THROW(latmix::parse_task_list("arc_easy,"), latmix::UsageError);
}

TEST(EvalTasks, TextTaskOnTheTinyModel) {
  const std::string dir = latmix::test::temp_dir("eval-text");
  const std::string path = dir + "/t.txt";
  {
    std::string text;
    for (int i = 0; i < 40; ++i) text += "the cat sat on the mat. ";
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  const ByteTokenizer tok(false);
  latmix::EvalOptions o;
  o.seqlen = 64;
  o.limit = 3;
  const auto results = latmix::run_tasks(tiny(), tok, {"text:" + path}, o);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].items, 3);
  EXPECT_GT(results[0].metrics.at("ppl"), 1.0);
  EXPECT_NE(results[0].convention.find("seqlen 64, 3 windows, 189 tokens scored, no BOS"), std::string::npos)
      << results[0].convention;
}
