// Zero-shot benchmark loaders (eval_data.h). The prompt strings follow lm-eval's task configs.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

#include "latmix/error.h"
#include "latmix/eval_data.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/line_reader.h"

namespace latmix {

namespace {

using Json = nlohmann::json;

std::string where(const std::string& path, size_t line_index) {
  return path + ":" + std::to_string(line_index + 1);
}

std::string shorten(const std::string& s) {
  return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t") == std::string::npos; }

/// Calls fn(json, line_index) for the non-blank lines of a jsonl file, one at a time, until
/// fn has been called `max_items` times (0: to the end). Sets `whole` to whether nothing but
/// blanks is left after the last one.
template <typename Fn>
void for_each_json_line(const std::string& path, int64_t max_items, bool& whole, Fn fn) {
  LineReader lines(path);
  std::string line;
  int64_t n = 0;
  while ((max_items <= 0 || n < max_items) && lines.next(line)) {
    if (blank(line)) continue;
    const size_t i = lines.line_number() - 1;
    const Json j = parse_json_file(where(path, i), line);
    if (!j.is_object()) fail(where(path, i), "not a JSON object", "an object", shorten(line));
    fn(j, i);
    ++n;
  }
  whole = lines.only_blanks_left();
}

const Json& field(const Json& j, const char* name, const std::string& at) {
  auto it = j.find(name);
  if (it == j.end()) fail(at, std::string("field '") + name + "'", "present", "missing");
  return *it;
}

std::string string_field(const Json& j, const char* name, const std::string& at) {
  const Json& v = field(j, name, at);
  if (!v.is_string()) fail(at, std::string("field '") + name + "'", "a string", v.dump());
  return v.get<std::string>();
}

std::vector<std::string> string_list_field(const Json& j, const char* name, const std::string& at) {
  const Json& v = field(j, name, at);
  if (!v.is_array() || v.size() < 2)
    fail(at, std::string("field '") + name + "'", "a list of 2 or more strings", shorten(v.dump()));
  std::vector<std::string> out;
  for (const Json& s : v) {
    if (!s.is_string()) fail(at, std::string("field '") + name + "'", "a list of strings", shorten(v.dump()));
    out.push_back(s.get<std::string>());
  }
  return out;
}

int32_t gold_field(const Json& j, size_t choices, const std::string& at) {
  const Json& v = field(j, "gold", at);
  const std::string range = "an integer in [0, " + std::to_string(choices) + ")";
  if (!v.is_number_integer()) fail(at, "field 'gold'", range, v.dump());
  const int64_t g = v.get<int64_t>();
  if (g < 0 || g >= static_cast<int64_t>(choices)) fail(at, "field 'gold'", range, std::to_string(g));
  return static_cast<int32_t>(g);
}

void require_items(const std::vector<ChoiceItem>& items, const std::string& path) {
  if (items.empty()) fail(path, "no items", "at least one", "an empty file");
}

}  // namespace

std::vector<ChoiceItem> read_mosaic_choices(const std::string& path, const std::string& context_suffix,
                                            int64_t max_items, bool* whole) {
  std::vector<ChoiceItem> items;
  bool all = true;
  for_each_json_line(path, max_items, all, [&](const Json& j, size_t i) {
    const std::string at = where(path, i);
    ChoiceItem item;
    const std::string context = string_field(j, "query", at) + context_suffix;
    for (const std::string& c : string_list_field(j, "choices", at)) {
      item.contexts.push_back(context);
      item.continuations.push_back(" " + c);
    }
    item.gold = gold_field(j, item.continuations.size(), at);
    items.push_back(std::move(item));
  });
  require_items(items, path);
  if (whole) *whole = all;
  return items;
}

std::vector<ChoiceItem> read_mosaic_partial(const std::string& path, int64_t max_items, bool* whole) {
  std::vector<ChoiceItem> items;
  bool all = true;
  for_each_json_line(path, max_items, all, [&](const Json& j, size_t i) {
    const std::string at = where(path, i);
    ChoiceItem item;
    item.contexts = string_list_field(j, "context_options", at);
    const std::string continuation = string_field(j, "continuation", at);
    item.continuations.assign(item.contexts.size(), " " + continuation);
    item.gold = gold_field(j, item.contexts.size(), at);
    items.push_back(std::move(item));
  });
  require_items(items, path);
  if (whole) *whole = all;
  return items;
}

std::vector<ChoiceItem> read_mosaic_lambada(const std::string& path, int64_t max_items, bool* whole) {
  std::vector<ChoiceItem> items;
  bool all = true;
  for_each_json_line(path, max_items, all, [&](const Json& j, size_t i) {
    const std::string at = where(path, i);
    ChoiceItem item;
    item.contexts = {string_field(j, "context", at)};
    const std::string word = string_field(j, "continuation", at);
    if (word.empty()) fail(at, "field 'continuation'", "a non-empty word", "\"\"");
    item.continuations = {" " + word};
    items.push_back(std::move(item));
  });
  require_items(items, path);
  if (whole) *whole = all;
  return items;
}

std::vector<ChoiceItem> read_hellaswag_llamacpp(const std::string& path, int64_t max_items, bool* whole) {
  LineReader reader(path);
  std::vector<ChoiceItem> items;
  std::string lines[6];
  while (max_items <= 0 || static_cast<int64_t>(items.size()) < max_items) {
    size_t got = 0;
    while (got < 6 && reader.next(lines[got])) ++got;
    if (got == 0) break;
    if (got < 6) {
      fail(path, "line count", "a multiple of 6 (context, label, 4 endings per item)",
           std::to_string(reader.line_number()));
    }
    const size_t first = reader.line_number() - 6;  // 0-based index of the context line
    const std::string& label = lines[1];
    if (label.size() != 1 || label[0] < '0' || label[0] > '3') {
      fail(where(path, first + 1), "gold label", "a digit 0-3", "\"" + shorten(label) + "\"");
    }
    if (lines[0].empty()) fail(where(path, first), "context", "a non-empty line", "an empty line");
    ChoiceItem item;
    item.gold = label[0] - '0';
    for (size_t e = 0; e < 4; ++e) {
      item.contexts.push_back(lines[0]);
      item.continuations.push_back(" " + lines[2 + e]);
    }
    items.push_back(std::move(item));
  }
  require_items(items, path);
  if (whole) *whole = reader.only_blanks_left();
  return items;
}

std::vector<ChoiceItem> read_piqa_original(const std::string& jsonl_path, const std::string& labels_path,
                                           int64_t max_items, bool* whole) {
  LineReader labels(labels_path);
  std::string label;
  std::vector<ChoiceItem> items;
  bool all = true;
  for_each_json_line(jsonl_path, max_items, all, [&](const Json& j, size_t i) {
    const std::string at = where(jsonl_path, i);
    while (labels.line_number() <= i) {  // the label of jsonl line i is line i of the labels file
      if (!labels.next(label)) {
        fail(labels_path, "line count", "a label for every line of " + jsonl_path,
             std::to_string(labels.line_number()));
      }
    }
    if (label != "0" && label != "1") fail(where(labels_path, i), "label", "0 or 1", "\"" + shorten(label) + "\"");
    ChoiceItem item;
    const std::string context = "Question: " + string_field(j, "goal", at) + "\nAnswer:";
    for (const char* sol : {"sol1", "sol2"}) {
      item.contexts.push_back(context);
      item.continuations.push_back(" " + string_field(j, sol, at));
    }
    item.gold = label[0] - '0';
    items.push_back(std::move(item));
  });
  if (all) {  // the whole jsonl was read: the labels file must end with it
    uint64_t count = labels.line_number();
    while (labels.next(label)) ++count;
    if (count != items.size()) {
      fail(labels_path, "line count", std::to_string(items.size()) + " (one per item of " + jsonl_path + ")",
           std::to_string(count));
    }
  }
  require_items(items, jsonl_path);
  if (whole) *whole = all;
  return items;
}

}  // namespace latmix
