#pragma once
/// \file line_reader.h
/// Room: engine/base/ (latmix_core, no LibTorch).
/// A text file read line by line (issue 20, item 10): memory bounded by the longest line, not the
/// file, and nothing past the last line asked for is read (beyond one 64 KiB chunk).
/// Torch-free (part of latmix_core).

#include <cstdint>
#include <string>

namespace latmix {

/// Longest line LineReader accepts unless told otherwise (a record of a zero-shot task file is a
/// few KiB; a line longer than this is not a record).
constexpr size_t kMaxLineBytes = 4u << 20;

class LineReader {
 public:
  /// Opens a regular file (a FIFO or device is refused, see files.h).
  explicit LineReader(std::string path, size_t max_line_bytes = kMaxLineBytes);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  /// The next line without its '\n' (and a '\r' before it); false at the end of the file. A final
  /// line without '\n' is a line; the empty rest after a final '\n' is not.
  /// \throws latmix::Error "FILE:LINE: line longer than N MiB" when no '\n' comes within the bound,
  /// or naming the file on a read error.
  bool next(std::string& line);
  /// 1-based number of the line next() returned last (0 before the first).
  uint64_t line_number() const { return line_; }
  /// Whether nothing but blanks (spaces, tabs, CR, LF) follows the lines returned so far. Reads on
  /// only while it sees blanks.
  bool only_blanks_left();
  /// Bytes read from the file so far (what was returned plus at most one chunk read ahead).
  uint64_t bytes_read() const { return read_; }
  const std::string& path() const { return path_; }
  /// "PATH:LINE" of the line returned last.
  std::string where() const { return path_ + ":" + std::to_string(line_); }

 private:
  bool fill();  // appends one chunk to buf_; false at the end of the file
  std::string path_;
  size_t max_line_;
  int fd_ = -1;
  bool eof_ = false;
  std::string buf_;  // read, not yet returned, from pos_ on
  size_t pos_ = 0;
  uint64_t line_ = 0, read_ = 0;
};

}  // namespace latmix
