// Added tokens: found in the text before normalization / pre-tokenization and emitted as one id.
#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/tokenizer_internal.h"

namespace latmix::tok {

namespace {

bool is_word_char(uint32_t cp) {
  if (cp == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

struct CharBefore {
  uint32_t cp;
  size_t start;
};

// The valid UTF-8 character ending just before `end`, not reaching before `floor`.
std::optional<CharBefore> char_before(std::string_view s, size_t end, size_t floor = 0) {
  if (end <= floor) return std::nullopt;
  size_t start = end - 1;
  while (start > floor && end - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
    --start;
  }
  const size_t len = utf8_valid_len(s, start);
  if (len != end - start) return std::nullopt;
  return CharBefore{utf8_decode(s, start, len), start};
}

std::optional<uint32_t> char_at(std::string_view s, size_t begin) {
  if (begin >= s.size()) return std::nullopt;
  const size_t len = utf8_valid_len(s, begin);
  if (len == 0) return std::nullopt;
  return utf8_decode(s, begin, len);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) {
  for (AddedToken& t : tokens) {
    if (!t.content.empty()) tokens_.push_back(std::move(t));
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& list : by_first_byte_) {
    std::stable_sort(list.begin(), list.end(),
                     [this](size_t a, size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
  }
}

bool AddedTokenMatcher::accept(std::string_view text, size_t begin, size_t end, const AddedToken& t) const {
  if (!t.single_word) return true;
  const auto before = char_before(text, begin);
  const auto after = char_at(text, end);
  return !(before && is_word_char(before->cp)) && !(after && is_word_char(*after));
}

std::optional<AddedTokenMatcher::Match> AddedTokenMatcher::find(std::string_view text, size_t from) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    for (const size_t index : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const AddedToken& t = tokens_[index];
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      size_t end = pos + t.content.size();
      if (!accept(text, pos, end, t)) continue;
      size_t begin = pos;
      while (t.lstrip) {
        const auto c = char_before(text, begin, from);
        if (!c || !is_unicode_space(c->cp)) break;
        begin = c->start;
      }
      while (t.rstrip && end < text.size()) {
        const auto c = char_at(text, end);
        if (!c || !is_unicode_space(*c)) break;
        end += utf8_valid_len(text, end);
      }
      return Match{begin, end, t.id};
    }
  }
  return std::nullopt;
}

std::vector<Segment> AddedTokenMatcher::split(const Segment& input) const {
  std::vector<Segment> out;
  const std::string_view text = input.text;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto match = find(text, pos);
    const size_t text_end = match ? match->begin : text.size();
    if (text_end > pos) {
      out.push_back({std::string(text.substr(pos, text_end - pos)), input.at_start && pos == 0, -1});
    }
    if (!match) break;
    out.push_back({std::string(text.substr(match->begin, match->end - match->begin)), false, match->id});
    pos = match->end;
  }
  return out;
}

}  // namespace latmix::tok
