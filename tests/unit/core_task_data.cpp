// Zero-shot data loaders: every shared data file loads with the expected item counts and lm-eval
// prompts; malformed lines are Errors naming the file, the line and the field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "latmix/error.h"
#include "latmix/eval_data.h"
#include "latmix/line_reader.h"
#include "test_paths.h"

namespace {

std::string write_file(const std::string& name, const std::string& content) {
  const std::string path = latmix::test::temp_dir("task-data") + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

bool have_data() {
  return std::filesystem::exists(latmix::test::data_path("eval/arc_easy"));
}

/// Runs fn, expects an Error whose message holds every one of `parts`.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const latmix::Error& e) {
    for (const std::string& p : parts) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "'" << p << "' not in: " << e.what();
    }
  }
}

}  // namespace

TEST(TaskData, EveryTaskLoadsWithItsItemCount) {
  if (!have_data()) GTEST_SKIP() << "no shared data";
  const std::map<std::string, size_t> counts = {{"arc_easy", 2376},   {"arc_challenge", 1172}, {"boolq", 3270},
                                                {"hellaswag", 10042}, {"openbookqa", 500},     {"piqa", 1838},
                                                {"winogrande", 1267}, {"lambada", 5153},       {"copa", 100}};
  ASSERT_EQ(latmix::zero_shot_task_names().size(), counts.size());
  for (const std::string& name : latmix::zero_shot_task_names()) {
    const latmix::TaskData t = latmix::load_zero_shot_task(name, latmix::test::data_dir());
    EXPECT_EQ(t.items.size(), counts.at(name)) << name;
    for (const latmix::ChoiceItem& item : t.items) {
      ASSERT_EQ(item.contexts.size(), item.continuations.size()) << name;
      ASSERT_LT(static_cast<size_t>(item.gold), item.contexts.size()) << name;
      ASSERT_EQ(item.continuations[0].substr(0, 1), " ") << name;
    }
  }
}

TEST(TaskData, PromptsFollowLmEval) {
  if (!have_data()) GTEST_SKIP() << "no shared data";
  const std::string dir = latmix::test::data_dir();
  const auto arc = latmix::load_zero_shot_task("arc_easy", dir);
  EXPECT_EQ(arc.items[0].contexts[0],
            "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:");
  EXPECT_EQ(arc.items[0].continuations[0], " Sunlight is the source of energy for nearly all ecosystems.");
  EXPECT_TRUE(arc.report_acc_norm);
  const auto boolq = latmix::load_zero_shot_task("boolq", dir);
  EXPECT_EQ(boolq.items[0].continuations, (std::vector<std::string>{" no", " yes"}));
  EXPECT_FALSE(boolq.report_acc_norm);
  const auto hs = latmix::load_zero_shot_task("hellaswag", dir);
  EXPECT_EQ(hs.items[0].contexts[0], "Roof shingle removal: A man is sitting on a roof. he");
  EXPECT_EQ(hs.items[0].continuations[3], " starts pulling up roofing on a roof.");
  EXPECT_EQ(hs.items[0].gold, 3);
  const auto piqa = latmix::load_zero_shot_task("piqa", dir);
  EXPECT_EQ(piqa.items[0].contexts[0], "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  EXPECT_EQ(piqa.items[0].gold, 0);
  EXPECT_EQ(piqa.items[1].gold, 1);
  const auto wg = latmix::load_zero_shot_task("winogrande", dir);
  EXPECT_EQ(wg.kind, latmix::TaskKind::PartialScoring);
  EXPECT_EQ(wg.items[0].contexts[1], "Sarah was a much better surgeon than Maria so Maria");
  EXPECT_EQ(wg.items[0].continuations[0], " always got the easier cases.");
  EXPECT_EQ(wg.items[0].continuations[1], wg.items[0].continuations[0]);
  const auto lambada = latmix::load_zero_shot_task("lambada", dir);
  EXPECT_EQ(lambada.kind, latmix::TaskKind::LastWord);
  EXPECT_EQ(lambada.items[0].continuations, (std::vector<std::string>{" signs"}));
  const auto copa = latmix::load_zero_shot_task("copa", dir);
  EXPECT_EQ(copa.items[0].contexts[0], "The man turned on the faucet, therefore");
  EXPECT_EQ(copa.items[0].continuations[1], " water flowed from the spout.");
}

TEST(TaskData, UnknownTaskListsTheValidOnes) {
  EXPECT_THROW(latmix::load_zero_shot_task("mmlu", "."), latmix::UsageError);
  expect_error([] { latmix::load_zero_shot_task("mmlu", "."); }, {"mmlu", "arc_easy", "copa"});
  EXPECT_TRUE(latmix::is_zero_shot_task("piqa"));
  EXPECT_FALSE(latmix::is_zero_shot_task("wikitext2"));
}

TEST(TaskData, MissingFileNamesIt) {
  expect_error([] { latmix::load_zero_shot_task("copa", "/nonexistent-data"); },
               {"/nonexistent-data/eval/copa/copa.mosaic.jsonl"});
}

TEST(TaskData, MosaicChoiceErrorsNameLineAndField) {
  const std::string ok = R"({"query": "Q", "choices": ["a", "b"], "gold": 1})"
                         "\n";
  auto load = [](const std::string& path) { latmix::read_mosaic_choices(path, ""); };
  const std::string bad_json = write_file("a.jsonl", ok + "{\"query\": \n");
  expect_error([&] { load(bad_json); }, {"a.jsonl:2", "not valid JSON"});
  const std::string no_gold = write_file("b.jsonl", ok + ok +
                                                        R"({"query": "Q", "choices": ["a", "b"]})"
                                                        "\n");
  expect_error([&] { load(no_gold); }, {"b.jsonl:3", "field 'gold'", "missing"});
  const std::string gold_range = write_file("c.jsonl", R"({"query": "Q", "choices": ["a", "b"], "gold": 2})");
  expect_error([&] { load(gold_range); }, {"c.jsonl:1", "field 'gold'", "[0, 2)", "found 2"});
  const std::string bad_choices = write_file("d.jsonl", R"({"query": "Q", "choices": "ab", "gold": 0})");
  expect_error([&] { load(bad_choices); }, {"d.jsonl:1", "field 'choices'", "list"});
  const std::string bad_query = write_file("e.jsonl", R"({"query": 3, "choices": ["a", "b"], "gold": 0})");
  expect_error([&] { load(bad_query); }, {"e.jsonl:1", "field 'query'", "a string"});
  const std::string not_object = write_file("f.jsonl", "[1, 2]\n");
  expect_error([&] { load(not_object); }, {"f.jsonl:1", "not a JSON object"});
  const std::string empty = write_file("g.jsonl", "\n\n");
  expect_error([&] { load(empty); }, {"g.jsonl", "no items"});
}

TEST(TaskData, BlankLinesAreSkippedAndContextSuffixApplied) {
  const std::string path = write_file("ok.jsonl",
                                      "\n"
                                      R"({"query": "Q", "choices": ["a", "b"], "gold": 1})"
                                      "\n\n");
  const auto items = latmix::read_mosaic_choices(path, "\nAnswer:");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].contexts[0], "Q\nAnswer:");
  EXPECT_EQ(items[0].continuations[1], " b");
}

TEST(TaskData, PartialAndLambadaErrors) {
  const std::string wg = write_file("wg.jsonl", R"({"context_options": ["A x", "A y"], "gold": 0})");
  expect_error([&] { latmix::read_mosaic_partial(wg); }, {"wg.jsonl:1", "field 'continuation'", "missing"});
  const std::string lb = write_file("lb.jsonl", R"({"context": "The end of the", "continuation": ""})");
  expect_error([&] { latmix::read_mosaic_lambada(lb); }, {"lb.jsonl:1", "field 'continuation'", "non-empty"});
  const std::string lb2 = write_file("lb2.jsonl", R"({"text": "x"})");
  expect_error([&] { latmix::read_mosaic_lambada(lb2); }, {"lb2.jsonl:1", "field 'context'"});
}

TEST(TaskData, HellaswagErrors) {
  const std::string item = "Label: ctx\n2\ne0\ne1\ne2\ne3\n";
  EXPECT_EQ(latmix::read_hellaswag_llamacpp(write_file("hs.txt", item + item)).size(), 2u);
  expect_error([&] { latmix::read_hellaswag_llamacpp(write_file("hs1.txt", item + "ctx\n1\n")); },
               {"hs1.txt", "multiple of 6", "found 8"});
  expect_error([&] { latmix::read_hellaswag_llamacpp(write_file("hs2.txt", item + "ctx\n7\na\nb\nc\nd\n")); },
               {"hs2.txt:8", "gold label", "0-3", "\"7\""});
}

TEST(TaskData, PiqaErrors) {
  const std::string row = R"({"goal": "g", "sol1": "a", "sol2": "b"})"
                          "\n";
  const std::string jsonl = write_file("p.jsonl", row + row);
  const auto items = latmix::read_piqa_original(jsonl, write_file("p.lst", "0\n1\n"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].gold, 1);
  EXPECT_EQ(items[0].continuations[1], " b");
  expect_error([&] { latmix::read_piqa_original(jsonl, write_file("q.lst", "0\n2\n")); },
               {"q.lst:2", "label", "0 or 1"});
  expect_error([&] { latmix::read_piqa_original(jsonl, write_file("r.lst", "0\n")); }, {"r.lst", "line count"});
  expect_error([&] { latmix::read_piqa_original(jsonl, write_file("s.lst", "0\n1\n1\n")); }, {"s.lst", "line count"});
  const std::string bad = write_file("t.jsonl", row + R"({"goal": "g", "sol1": "a"})"
                                                      "\n");
  expect_error([&] { latmix::read_piqa_original(bad, write_file("u.lst", "0\n1\n")); }, {"t.jsonl:2", "field 'sol2'"});
}

// Issue 20, item 10: task files are read a record at a time and only as far as a limit needs.
TEST(TaskData, LimitStopsBeforeAHugeTailThatIsAnErrorWithout) {
  const std::string rec = R"({"query": "Q", "choices": ["a", "b"], "gold": 1})"
                          "\n";
  const std::string path = write_file("tail.jsonl", rec + rec + rec);
  std::filesystem::resize_file(path, 3ull << 30);  // a 3 GiB tail of NUL bytes (sparse)
  bool whole = true;
  const auto items = latmix::read_mosaic_choices(path, "", 2, &whole);
  EXPECT_EQ(items.size(), 2u);
  EXPECT_FALSE(whole);
  EXPECT_EQ(latmix::read_mosaic_choices(path, "", 3, &whole).size(), 3u);
  EXPECT_FALSE(whole);  // the tail is not blank
  expect_error([&] { latmix::read_mosaic_choices(path, ""); }, {"tail.jsonl:4", "line longer than 4 MiB"});
}

TEST(TaskData, WholeIsKnownWhenTheLimitMeetsTheEnd) {
  const std::string rec = R"({"context_options": ["A x", "A y"], "continuation": "z", "gold": 0})"
                          "\n";
  const std::string path = write_file("wg3.jsonl", rec + "\n" + rec + " \n\n");
  bool whole = false;
  EXPECT_EQ(latmix::read_mosaic_partial(path, 2, &whole).size(), 2u);
  EXPECT_TRUE(whole);
  EXPECT_EQ(latmix::read_mosaic_partial(path, 1, &whole).size(), 1u);
  EXPECT_FALSE(whole);
  EXPECT_EQ(latmix::read_mosaic_partial(path, 0, &whole).size(), 2u);
  EXPECT_TRUE(whole);
}

TEST(TaskData, OneRecordLimitReadsOneChunk) {
  const std::string rec = R"({"context": "The end of the", "continuation": "story"})"
                          "\n";
  std::string big;
  for (int i = 0; i < 100000; ++i) big += rec;  // 5.5 MB
  const std::string path = write_file("lb-big.jsonl", big);
  latmix::LineReader lines(path);
  std::string line;
  ASSERT_TRUE(lines.next(line));
  EXPECT_EQ(line + "\n", rec);
  EXPECT_EQ(lines.line_number(), 1u);
  EXPECT_LE(lines.bytes_read(), 64u << 10);
  bool whole = true;
  EXPECT_EQ(latmix::read_mosaic_lambada(path, 1, &whole).size(), 1u);
  EXPECT_FALSE(whole);
}

TEST(TaskData, LineReaderBoundsAndLineEnds) {
  const std::string path = write_file("lines.txt", "a\r\n\nbb\nlast");
  latmix::LineReader lines(path, 4);
  std::string line;
  std::vector<std::string> got;
  while (lines.next(line)) got.push_back(line);
  EXPECT_EQ(got, (std::vector<std::string>{"a", "", "bb", "last"}));
  EXPECT_TRUE(lines.only_blanks_left());
  latmix::LineReader tight(write_file("long.txt", "ok\nfive5\n"), 4);
  ASSERT_TRUE(tight.next(line));
  expect_error([&] { tight.next(line); }, {"long.txt:2", "line longer than"});
}

TEST(TaskData, HellaswagAndPiqaStopAtTheLimit) {
  const std::string item = "Label: ctx\n2\ne0\ne1\ne2\ne3\n";
  bool whole = true;
  // The broken third item is never reached.
  const auto hs = latmix::read_hellaswag_llamacpp(write_file("hs3.txt", item + item + "ctx\n9\n"), 2, &whole);
  EXPECT_EQ(hs.size(), 2u);
  EXPECT_FALSE(whole);
  const std::string row = R"({"goal": "g", "sol1": "a", "sol2": "b"})"
                          "\n";
  const std::string jsonl = write_file("p3.jsonl", row + row + "not json\n");
  // A labels file as long as the limit needs is enough; without a limit the bad line 3 is reported.
  EXPECT_EQ(latmix::read_piqa_original(jsonl, write_file("p3.lst", "1\n0\n"), 2, &whole).size(), 2u);
  EXPECT_FALSE(whole);
  expect_error([&] { latmix::read_piqa_original(jsonl, write_file("p4.lst", "1\n0\n1\n")); }, {"p3.jsonl:3", "not valid JSON"});
}

TEST(TaskData, LoadTaskWithALimit) {
  const std::string dir = latmix::test::temp_dir("task-limit");
  std::filesystem::create_directories(dir + "/eval/copa");
  std::ofstream(dir + "/eval/copa/copa.mosaic.jsonl") << R"({"query": "P, therefore", "choices": ["a", "b"], "gold": 0})"
                                                           "\n"
                                                        << "garbage\n";
  const latmix::TaskData t = latmix::load_zero_shot_task("copa", dir, 1);
  EXPECT_EQ(t.items.size(), 1u);
  EXPECT_FALSE(t.whole);
  expect_error([&] { latmix::load_zero_shot_task("copa", dir); }, {"copa.mosaic.jsonl:2", "not valid JSON"});
}
