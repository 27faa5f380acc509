// tokenizer.json pre-tokenizers: Split, ByteLevel, Metaspace, Digits, Whitespace(Split), Sequence.
#include <algorithm>
#include <functional>
#include <iterator>

#include "tokenizer/tokenizer_internal.h"
#include "latmix/error.h"

namespace latmix::tok {

namespace {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Span {
  size_t begin;
  size_t end;
  bool delimiter;
};

using MatchFinder = std::function<std::vector<std::pair<size_t, size_t>>(std::string_view)>;

// The pieces of a text between and at the matches, in order, none empty.
std::vector<Span> spans_of(size_t size, const std::vector<std::pair<size_t, size_t>>& matches, bool invert) {
  std::vector<Span> spans;
  size_t pos = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > pos) spans.push_back({pos, begin, invert});
    spans.push_back({begin, end, !invert});
    pos = end;
  }
  if (pos < size) spans.push_back({pos, size, invert});
  return spans;
}

// Walks the spans (backwards for MergedWithNext) and glues a span onto the previous output span
// when `joins(span, previous_was_delimiter)` says so.
template <class Joins>
std::vector<Span> glue(std::vector<Span> spans, bool backwards, Joins joins) {
  if (backwards) std::reverse(spans.begin(), spans.end());
  std::vector<Span> out;
  bool previous_delimiter = false;
  for (const Span& s : spans) {
    if (!out.empty() && joins(s, previous_delimiter)) {
      out.back().begin = std::min(out.back().begin, s.begin);
      out.back().end = std::max(out.back().end, s.end);
    } else {
      out.push_back(s);
    }
    previous_delimiter = s.delimiter;
  }
  if (backwards) std::reverse(out.begin(), out.end());
  return out;
}

// Hugging Face's SplitDelimiterBehavior. A delimiter merges into its neighbour only when that
// neighbour is not itself a delimiter; Contiguous merges adjacent spans of the same kind.
std::vector<Span> apply_behavior(const std::vector<Span>& spans, SplitBehavior behavior) {
  const auto into_neighbour = [](const Span& s, bool previous_delimiter) { return s.delimiter && !previous_delimiter; };
  switch (behavior) {
    case SplitBehavior::Isolated:
      return spans;
    case SplitBehavior::Removed: {
      std::vector<Span> out;
      std::copy_if(spans.begin(), spans.end(), std::back_inserter(out), [](const Span& s) { return !s.delimiter; });
      return out;
    }
    case SplitBehavior::Contiguous:  // runs of the same kind (with invert, runs of gaps too)
      return glue(spans, false,
                  [](const Span& s, bool previous_delimiter) { return s.delimiter == previous_delimiter; });
    case SplitBehavior::MergedWithPrevious:
      return glue(spans, false, into_neighbour);
    case SplitBehavior::MergedWithNext:
      return glue(spans, true, into_neighbour);
  }
  return spans;
}

void split_pieces(Pieces& pieces, const MatchFinder& find, SplitBehavior behavior, bool invert) {
  Pieces out;
  out.reserve(pieces.size());
  for (Piece& piece : pieces) {
    const auto spans = apply_behavior(spans_of(piece.text.size(), find(piece.text), invert), behavior);
    for (const Span& s : spans) {
      out.push_back({piece.text.substr(s.begin, s.end - s.begin), piece.at_start && s.begin == 0});
    }
  }
  pieces = std::move(out);
}

std::vector<std::pair<size_t, size_t>> find_literal(std::string_view text, std::string_view what) {
  std::vector<std::pair<size_t, size_t>> matches;
  if (what.empty()) return matches;
  for (size_t pos = text.find(what); pos != std::string_view::npos; pos = text.find(what, pos)) {
    matches.emplace_back(pos, pos + what.size());
    pos += what.size();
  }
  return matches;
}

SplitBehavior parse_behavior(const std::string& name, const std::string& file) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail(file, "pre_tokenizer Split: unknown behavior",
       "Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous", quote(name));
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(Pieces& pieces) const override {
    for (const auto& step : steps_) step->apply(pieces);
  }
  bool byte_level() const override {
    for (const auto& step : steps_) {
      if (step->byte_level()) return true;
    }
    return false;
  }
  bool metaspace() const override {
    for (const auto& step : steps_) {
      if (step->metaspace()) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Split on a literal or a regex (also used for Digits, Whitespace, WhitespaceSplit).
class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(const std::string& pattern, bool is_regex, SplitBehavior behavior, bool invert,
                    const std::string& file)
      : literal_(pattern), behavior_(behavior), invert_(invert) {
    if (is_regex) regex_ = std::make_unique<Regex>(pattern, file);
  }
  void apply(Pieces& pieces) const override {
    if (regex_) {
      split_pieces(
          pieces, [this](std::string_view t) { return regex_->find_all(t); }, behavior_, invert_);
    } else {
      split_pieces(
          pieces, [this](std::string_view t) { return find_literal(t, literal_); }, behavior_, invert_);
    }
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& file)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2SplitPattern, file);
  }
  void apply(Pieces& pieces) const override {
    if (add_prefix_space_) {
      for (Piece& piece : pieces) {
        if (piece.text.empty() || piece.text[0] != ' ') piece.text.insert(0, 1, ' ');
      }
    }
    if (regex_) {
      split_pieces(
          pieces, [this](std::string_view t) { return regex_->find_all(t); }, SplitBehavior::Isolated, false);
    }
    const ByteUnicodeMap& map = ByteUnicodeMap::get();
    for (Piece& piece : pieces) piece.text = map.encode_all(piece.text);
  }
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void apply(Pieces& pieces) const override {
    for (Piece& piece : pieces) {
      piece.text = replace_all(piece.text, " ", replacement_);
      const bool starts = piece.text.compare(0, replacement_.size(), replacement_) == 0;
      const bool prepend = scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && piece.at_start);
      if (prepend && !starts) piece.text.insert(0, replacement_);
    }
    if (split_) {
      split_pieces(
          pieces, [this](std::string_view t) { return find_literal(t, replacement_); }, SplitBehavior::MergedWithNext,
          false);
    }
  }
  bool metaspace() const override { return true; }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

std::unique_ptr<PreTokenizer> parse_metaspace(const Json& j, const std::string& file) {
  const std::string replacement = json_string(j, "replacement", file, std::string("\xE2\x96\x81"));
  if (replacement.empty()) fail(file, "pre_tokenizer Metaspace: empty replacement");
  PrependScheme scheme = PrependScheme::Always;
  if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
    const std::string name = json_string(j, "prepend_scheme", file);
    if (name == "always") {
      scheme = PrependScheme::Always;
    } else if (name == "first") {
      scheme = PrependScheme::First;
    } else if (name == "never") {
      scheme = PrependScheme::Never;
    } else {
      fail(file, "pre_tokenizer Metaspace: unknown prepend_scheme", "always, first or never", quote(name));
    }
  } else if (!json_bool(j, "add_prefix_space", file, true)) {
    scheme = PrependScheme::Never;  // the older spelling of the same setting
  }
  return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, json_bool(j, "split", file, true));
}

std::unique_ptr<PreTokenizer> parse_split(const Json& j, const std::string& file) {
  const auto [pattern, is_regex] = json_pattern(j, file, "pre_tokenizer Split");
  return std::make_unique<SplitPreTokenizer>(pattern, is_regex, parse_behavior(json_string(j, "behavior", file), file),
                                             json_bool(j, "invert", file, false), file);
}

}  // namespace

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Json& j, const std::string& file) {
  if (j.is_null()) return nullptr;
  if (!j.is_object()) fail(file, "pre_tokenizer is not an object", "object or null", j.type_name());
  const std::string type = json_string(j, "type", file);
  if (type == "Sequence") {
    const Json& list = j.contains("pretokenizers") ? j["pretokenizers"] : Json();
    if (!list.is_array()) fail(file, "pre_tokenizer Sequence: \"pretokenizers\" is not an array");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const Json& item : list) {
      if (item.is_null()) fail(file, "pre_tokenizer Sequence: null entry");
      steps.push_back(parse_pre_tokenizer(item, file));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "Split") return parse_split(j, file);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(json_bool(j, "add_prefix_space", file, true),
                                                   json_bool(j, "use_regex", file, true), file);
  }
  if (type == "Metaspace") return parse_metaspace(j, file);
  if (type == "Digits") {
    const bool individual = json_bool(j, "individual_digits", file, false);
    return std::make_unique<SplitPreTokenizer>(
        "\\p{N}", true, individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false, file);
  }
  if (type == "Whitespace") {
    return std::make_unique<SplitPreTokenizer>("\\w+|[^\\w\\s]+", true, SplitBehavior::Removed, true, file);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<SplitPreTokenizer>("\\s+", true, SplitBehavior::Removed, false, file);
  }
  fail(file, "unsupported pre_tokenizer type " + quote(type),
       "Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace or WhitespaceSplit", quote(type));
}

}  // namespace latmix::tok
