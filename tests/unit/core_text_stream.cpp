// Text files tokenized in pieces (latmix/text_stream.h, issue 20 item 10): the same ids as
// encoding the whole file, for every tokenizer the unit tests have, with pieces small enough that
// every kind of cut is taken; reading stops at what is asked for; text without breaks is refused.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/text_stream.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

// Lines of words, punctuation, digits, blank lines, indented lines, runs of spaces, non-ASCII
// letters and a few lines longer than a piece: made here from a seed.
std::string sample_text(size_t bytes, uint64_t seed) {
  static const char* words[] = {"the", "The", "quiet", "zebra's", "café", "naïve", "1,234", "and", "–",
                                "Chapter", "I.", "\"Yes\"", "said", "Elizabeth;", "x", "word", "ÆON", "日本"};
  std::mt19937_64 rng(seed);
  std::string s;
  while (s.size() < bytes) {
    const uint64_t r = rng() % 40;
    s += words[rng() % (sizeof words / sizeof *words)];
    if (r < 4) s += "\n";
    else if (r == 4) s += "\n\n";
    else if (r == 5) s += "  ";
    else if (r == 6) s += " \n";
    else if (r == 7) s += ".\n    ";
    else if (r == 8) s += "\t";
    else s += " ";
  }
  return s;
}

std::string write_temp(const std::string& tag, const std::string& text) {
  const std::string path = latmix::test::temp_dir(tag) + "/text.txt";
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::vector<int32_t> stream_all(const latmix::Tokenizer& tok, const std::string& path, size_t piece) {
  latmix::TextTokenStream s(tok, path, piece);
  std::vector<int32_t> ids;
  while (s.next(ids)) {
  }
  EXPECT_TRUE(s.streaming()) << tok.kind();
  return ids;
}

std::vector<std::string> tokenizers() {
  return {latmix::test::fixtures_path("tokenizer/byte_level_bpe/tokenizer.json"),
          latmix::test::fixtures_path("tokenizer/metaspace_bpe/tokenizer.json"),
          latmix::test::fixtures_path("tokenizer/sentencepiece_style_bpe/tokenizer.json"),
          latmix::test::source_path("resources/models/gutenberg-llama-6M/tokenizer.json")};
}

}  // namespace

TEST(TextStream, PiecesEncodeLikeTheWholeText) {
  const std::string text = sample_text(200000, 7) + std::string(3000, 'a') + " tail";
  const std::string path = write_temp("stream", text);
  for (const std::string& file : tokenizers()) {
    const auto tok = latmix::load_tokenizer(file);
    const std::vector<int32_t> whole = tok->encode(text);
    for (size_t piece : {64, 257, 4096, 1 << 20}) {
      EXPECT_EQ(stream_all(*tok, path, piece), whole) << file << ", pieces of " << piece << " bytes";
    }
    EXPECT_EQ(latmix::count_text_file_tokens(*tok, path), static_cast<int64_t>(whole.size())) << file;
  }
}

TEST(TextStream, StopsAtWhatIsAskedAndKeepsTheTextThatGaveIt) {
  const auto tok = latmix::load_tokenizer(tokenizers().back());
  const std::string text = sample_text(3 << 20, 11);
  const std::string path = write_temp("stream-prefix", text);
  const latmix::EncodedText e = latmix::encode_text_file(*tok, path, 1000, true);
  EXPECT_FALSE(e.whole);
  EXPECT_GE(e.ids.size(), 1000u);
  EXPECT_LT(e.text.size(), text.size());  // one piece (1 MiB) of 3 MiB at most
  EXPECT_EQ(e.text, text.substr(0, e.text.size()));
  EXPECT_EQ(tok->encode(e.text), e.ids);  // the kept text alone gives the same ids
  const std::vector<int32_t> whole = tok->encode(text);
  EXPECT_TRUE(std::equal(e.ids.begin(), e.ids.end(), whole.begin()));
  const latmix::EncodedText all = latmix::encode_text_file(*tok, path);
  EXPECT_TRUE(all.whole);
  EXPECT_EQ(all.ids, whole);
}

TEST(TextStream, TextWithoutBreaksIsRefusedWithinItsBound) {
  const auto tok = latmix::load_tokenizer(tokenizers().back());
  const std::string path = write_temp("stream-zeros", std::string(latmix::kMaxUnsplitTextBytes + (1 << 20), '\0'));
  try {
    latmix::count_text_file_tokens(*tok, path);
    FAIL() << "no error";
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("text.txt: not a text file: no line break and no break between words"),
              std::string::npos)
        << e.what();
  }
}
