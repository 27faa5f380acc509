// Text files tokenized in pieces (text_stream.h).
#include "latmix/text_stream.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix {

namespace {

bool ascii_letter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
bool space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The last cut in text[0, limit] (see text_stream.h), or 0 when there is none. Line cuts are
// preferred; a word cut only when the window holds no line cut.
// Only cuts at `from` or later are looked for (the part before was searched already).
size_t last_cut(std::string_view text, size_t limit, size_t from = 2) {
  if (text.size() < 3) return 0;
  limit = std::min(limit, text.size() - 1);  // a cut needs the character after it
  from = std::max<size_t>(from, 2);
  for (size_t p = limit; p >= from; --p) {
    if (text[p - 1] == '\n' && !space(text[p - 2]) && ascii_letter(text[p])) return p;
  }
  for (size_t p = limit; p >= from; --p) {
    if (text[p] == ' ' && ascii_letter(text[p - 1]) && p + 1 < text.size() && ascii_letter(text[p + 1])) return p;
  }
  return 0;
}

std::vector<int32_t> continuation(const Tokenizer& tok, std::string_view piece, const std::vector<int32_t>& nl,
                                  bool& ok) {
  std::string text;
  text.reserve(piece.size() + 1);
  text += '\n';
  text.append(piece);
  std::vector<int32_t> ids = tok.encode(text);
  ok = ids.size() >= nl.size() && std::equal(nl.begin(), nl.end(), ids.begin());
  if (ok) ids.erase(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(nl.size()));
  return ids;
}

bool is_cut(std::string_view text, size_t p) {
  return last_cut(text.substr(0, std::min(text.size(), p + 2)), p, p) == p;
}

// Whether encode(a + b) == encode(a) + continuation(b) at every cut of sample texts: prose, and
// a line start and a word start with every ASCII letter.
bool splits_exactly(const Tokenizer& tok, const std::vector<int32_t>& nl) {
  std::string letters;
  for (char c = 'A'; c <= 'z'; ++c) {
    if (!ascii_letter(c)) continue;
    letters += std::string("end.\n") + c + "ow " + "one " + c + "y, x\n";
  }
  const std::string samples[] = {
      "It was the best of times.\nThe worst of times, 1,234 said: \"no\"!\nAnd then",
      "Chapter 1\n\nIt is a truth universally acknowledged, that a single man\nin possession",
      "tab\tand  two spaces;\nzebra's caf\xc3\xa9 na\xc3\xafve \xe2\x80\x93 dash\nQuiet",
      letters,
  };
  for (const std::string& text : samples) {
    const std::vector<int32_t> whole = tok.encode(text);
    for (size_t p = 2; p + 1 < text.size(); ++p) {
      if (!is_cut(text, p)) continue;
      std::vector<int32_t> parts = tok.encode(std::string_view(text).substr(0, p));
      bool ok = false;
      const std::vector<int32_t> rest = continuation(tok, std::string_view(text).substr(p), nl, ok);
      if (!ok) return false;
      parts.insert(parts.end(), rest.begin(), rest.end());
      if (parts != whole) return false;
    }
  }
  return true;
}

}  // namespace

TextTokenStream::TextTokenStream(const Tokenizer& tokenizer, std::string path, size_t piece_bytes)
    : tok_(tokenizer), path_(std::move(path)), piece_(std::max<size_t>(piece_bytes, 64)) {
  fd_ = open_regular_file(path_);
  newline_ids_ = tok_.encode("\n");
  splits_ = !newline_ids_.empty() && splits_exactly(tok_, newline_ids_);
}

TextTokenStream::~TextTokenStream() {
  if (fd_ >= 0) ::close(fd_);
}

bool TextTokenStream::fill() {
  if (eof_) return false;
  const size_t n = read_append(fd_, path_, buf_, piece_);
  if (n == 0) eof_ = true;
  return n > 0;
}

bool TextTokenStream::at_end() {
  while (!eof_ && buf_.empty()) fill();
  return buf_.empty();
}

size_t TextTokenStream::find_cut() {
  // A piece and the character after it (a cut needs to see it), or the rest of the file.
  while (!eof_ && buf_.size() <= piece_) fill();
  if (eof_ && buf_.size() <= piece_) return buf_.size();
  if (!splits_) {
    // The whole file, as encode() always had it, within a bound.
    while (!eof_) {
      if (buf_.size() > kMaxUnsplitTextBytes) {
        fail(path_, "text too large for this tokenizer (" + tok_.kind() + "), which cannot be read in pieces",
             "at most " + std::to_string(kMaxUnsplitTextBytes >> 20) + " MiB", "more");
      }
      fill();
    }
    return buf_.size();
  }
  size_t cut = last_cut(buf_, piece_);
  while (cut == 0 && !eof_) {  // a long line without a break between words: read on, within a bound
    if (buf_.size() >= kMaxUnsplitTextBytes) {
      fail(path_, "not a text file: no line break and no break between words after byte " + std::to_string(done_),
           "text with line breaks", "more than " + std::to_string(kMaxUnsplitTextBytes >> 20) + " MiB without one");
    }
    const size_t searched = buf_.size() - 1;
    fill();
    cut = last_cut(buf_, buf_.size(), searched);
  }
  return cut == 0 ? buf_.size() : cut;
}

bool TextTokenStream::next(std::vector<int32_t>& out) {
  if (at_end()) return false;
  const size_t cut = find_cut();
  const std::string_view piece(buf_.data(), cut);
  if (first_) {
    const std::vector<int32_t> ids = tok_.encode(piece);
    out.insert(out.end(), ids.begin(), ids.end());
  } else {
    bool ok = false;
    const std::vector<int32_t> ids = continuation(tok_, piece, newline_ids_, ok);
    if (!ok) fail(path_, "cannot encode the text in pieces with " + tok_.kind() + " at byte " + std::to_string(done_));
    out.insert(out.end(), ids.begin(), ids.end());
  }
  first_ = false;
  done_ += cut;
  buf_.erase(0, cut);
  return true;
}

EncodedText encode_text_file(const Tokenizer& tokenizer, const std::string& path, int64_t max_tokens, bool keep_text) {
  TextTokenStream stream(tokenizer, path);
  EncodedText out;
  uint64_t kept = 0;
  while (stream.next(out.ids)) {
    if (keep_text) kept = stream.bytes_done();
    if (max_tokens > 0 && static_cast<int64_t>(out.ids.size()) >= max_tokens) {
      out.whole = stream.at_end();
      break;
    }
  }
  if (keep_text) {
    const int fd = open_regular_file(path);
    out.text.resize(kept);
    size_t got = 0;
    while (got < kept) {
      const ssize_t n = ::read(fd, out.text.data() + got, kept - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    if (got != kept) fail(path, "the file changed while it was read");
  }
  return out;
}

int64_t count_text_file_tokens(const Tokenizer& tokenizer, const std::string& path) {
  TextTokenStream stream(tokenizer, path);
  std::vector<int32_t> ids;
  int64_t n = 0;
  while (stream.next(ids)) {
    n += static_cast<int64_t>(ids.size());
    ids.clear();
  }
  return n;
}

}  // namespace latmix
