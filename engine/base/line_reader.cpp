// A text file read line by line (line_reader.h).
#include "latmix/line_reader.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix {

namespace {
constexpr size_t kChunk = 1 << 16;
}

LineReader::LineReader(std::string path, size_t max_line_bytes)
    : path_(std::move(path)), max_line_(max_line_bytes), fd_(open_regular_file(path_)) {}

LineReader::~LineReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {  // drop what was returned before growing the buffer
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  const size_t n = read_append(fd_, path_, buf_, kChunk);
  read_ += n;
  if (n == 0) eof_ = true;
  return n > 0;
}

bool LineReader::next(std::string& line) {
  size_t from = pos_;  // where the search for '\n' goes on
  for (;;) {
    const size_t nl = buf_.find('\n', from);
    const size_t end = nl == std::string::npos ? buf_.size() : nl;
    if (end - pos_ > max_line_) {
      ++line_;
      fail(where(), "line longer than " + std::to_string(max_line_ >> 20) + " MiB",
           "a line break within " + std::to_string(max_line_) + " bytes", "none");
    }
    if (nl != std::string::npos) {
      line.assign(buf_, pos_, nl - pos_);
      pos_ = nl + 1;
      break;
    }
    const size_t have = buf_.size() - pos_;
    if (!fill()) {
      if (have == 0) return false;
      line.assign(buf_, pos_, std::string::npos);
      pos_ = buf_.size();
      break;
    }
    from = pos_ + have;  // fill() may have moved the unreturned part to the front
  }
  ++line_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

bool LineReader::only_blanks_left() {
  for (;;) {
    for (; pos_ < buf_.size(); ++pos_) {  // blanks are consumed, their line breaks counted
      const char c = buf_[pos_];
      if (c == '\n') {
        ++line_;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        return false;
      }
    }
    if (!fill()) return true;
  }
}

}  // namespace latmix
