#pragma once
/// \file text_stream.h
/// Room: engine/tokenizer/ (latmix_core, no LibTorch).
/// Text files tokenized in pieces (issue 20, item 10): memory independent of the file's size, and
/// reading stops once a caller has the tokens it needs. Torch-free (part of latmix_core).
///
/// The ids are those Tokenizer::encode() gives for the whole file. The file is cut only where
/// encoding cannot join across the cut: after a line break that follows a non-space and comes
/// before an ASCII letter ("...word.\nThe"), or, in a line longer than a piece, before a space
/// between two ASCII letters ("word word"). A piece after the first is encoded as the text
/// "\n" + piece, less the ids of "\n" alone, so tokenizers that add a prefix space at the start of
/// a text (SentencePiece, llama2.c) still see the piece as the continuation it is. When a loaded
/// tokenizer does not split that way (a self-test on sample texts when the stream opens), the
/// file is encoded whole, as before.

#include <cstdint>
#include <string>
#include <vector>

#include "latmix/tokenizer.h"

namespace latmix {

class TextTokenStream {
 public:
  /// Opens a regular file (a FIFO or device is refused, see files.h). `piece_bytes` is the size
  /// the file is encoded in (tests use small ones).
  TextTokenStream(const Tokenizer& tokenizer, std::string path, size_t piece_bytes = 1 << 20);
  ~TextTokenStream();
  TextTokenStream(const TextTokenStream&) = delete;
  TextTokenStream& operator=(const TextTokenStream&) = delete;

  /// Encodes the next piece and appends its ids to `out`; false at the end of the file (nothing
  /// appended). \throws latmix::Error naming the file on a read error, or when no cut is found in
  /// 64 MiB of text (not a text file: no line break and no word break).
  bool next(std::vector<int32_t>& out);
  /// Whether the whole file has been encoded (reads ahead to know).
  bool at_end();
  /// Bytes of the file encoded so far: they encode to exactly the ids returned so far.
  uint64_t bytes_done() const { return done_; }
  /// Whether the file is cut into pieces (false: the tokenizer failed the self-test, or the file
  /// fits one piece).
  bool streaming() const { return splits_; }
  const std::string& path() const { return path_; }

 private:
  bool fill();         // reads more of the file into buf_; false at its end
  size_t find_cut();   // where the next piece ends (reads as far as it needs)
  const Tokenizer& tok_;
  std::string path_;
  size_t piece_;
  int fd_ = -1;
  bool eof_ = false, first_ = true, splits_ = false;
  std::string buf_;  // read, not yet encoded
  uint64_t done_ = 0;
  std::vector<int32_t> newline_ids_;
};

/// What encode_text_file() read.
struct EncodedText {
  std::vector<int32_t> ids;
  bool whole = true;  ///< the whole file was read (false: it stopped at max_tokens)
  std::string text;   ///< with keep_text: the bytes that gave `ids` (a prefix of the file)
};

/// The ids of a text file, read in pieces. With max_tokens > 0 reading stops at the first piece
/// boundary where at least that many ids are there (ids may hold more: the rest of that piece).
EncodedText encode_text_file(const Tokenizer& tokenizer, const std::string& path, int64_t max_tokens = 0,
                             bool keep_text = false);

/// Number of ids of the whole file, counted piece by piece (no ids kept).
int64_t count_text_file_tokens(const Tokenizer& tokenizer, const std::string& path);

/// The largest text read whole when a tokenizer cannot be streamed (see the file comment), and
/// the longest run without a cut that the stream accepts.
constexpr uint64_t kMaxUnsplitTextBytes = 64ull << 20;

}  // namespace latmix
