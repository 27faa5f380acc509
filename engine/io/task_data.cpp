// Zero-shot benchmark loaders (eval_data.h). The prompt strings follow lm-eval's task configs.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

#include "latmix/error.h"
#include "latmix/eval_data.h"
#include "latmix/files.h"
#include "latmix/json.h"

namespace latmix {

namespace {

using Json = nlohmann::json;

/// The lines of a text file without their '\n' (and '\r'); a final empty line is dropped.
std::vector<std::string> read_lines(const std::string& path) {
  const std::string text = read_text_file(path);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

std::string where(const std::string& path, size_t line_index) {
  return path + ":" + std::to_string(line_index + 1);
}

std::string shorten(const std::string& s) {
  return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}

/// Calls fn(json, line_index) for every non-blank line of a jsonl file.
template <typename Fn>
void for_each_json_line(const std::string& path, Fn fn) {
  const std::vector<std::string> lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    const Json j = parse_json_file(where(path, i), lines[i]);
    if (!j.is_object()) fail(where(path, i), "not a JSON object", "an object", shorten(lines[i]));
    fn(j, i);
  }
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

std::vector<ChoiceItem> read_mosaic_choices(const std::string& path, const std::string& context_suffix) {
  std::vector<ChoiceItem> items;
  for_each_json_line(path, [&](const Json& j, size_t i) {
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
  return items;
}

std::vector<ChoiceItem> read_mosaic_partial(const std::string& path) {
  std::vector<ChoiceItem> items;
  for_each_json_line(path, [&](const Json& j, size_t i) {
    const std::string at = where(path, i);
    ChoiceItem item;
    item.contexts = string_list_field(j, "context_options", at);
    const std::string continuation = string_field(j, "continuation", at);
    item.continuations.assign(item.contexts.size(), " " + continuation);
    item.gold = gold_field(j, item.contexts.size(), at);
    items.push_back(std::move(item));
  });
  require_items(items, path);
  return items;
}

std::vector<ChoiceItem> read_mosaic_lambada(const std::string& path) {
  std::vector<ChoiceItem> items;
  for_each_json_line(path, [&](const Json& j, size_t i) {
    const std::string at = where(path, i);
    ChoiceItem item;
    item.contexts = {string_field(j, "context", at)};
    const std::string word = string_field(j, "continuation", at);
    if (word.empty()) fail(at, "field 'continuation'", "a non-empty word", "\"\"");
    item.continuations = {" " + word};
    items.push_back(std::move(item));
  });
  require_items(items, path);
  return items;
}

std::vector<ChoiceItem> read_hellaswag_llamacpp(const std::string& path) {
  const std::vector<std::string> lines = read_lines(path);
  if (lines.size() % 6 != 0) {
    fail(path, "line count", "a multiple of 6 (context, label, 4 endings per item)", std::to_string(lines.size()));
  }
  std::vector<ChoiceItem> items;
  for (size_t i = 0; i < lines.size(); i += 6) {
    ChoiceItem item;
    const std::string& label = lines[i + 1];
    if (label.size() != 1 || label[0] < '0' || label[0] > '3') {
      fail(where(path, i + 1), "gold label", "a digit 0-3", "\"" + shorten(label) + "\"");
    }
    if (lines[i].empty()) fail(where(path, i), "context", "a non-empty line", "an empty line");
    item.gold = label[0] - '0';
    for (size_t e = 0; e < 4; ++e) {
      item.contexts.push_back(lines[i]);
      item.continuations.push_back(" " + lines[i + 2 + e]);
    }
    items.push_back(std::move(item));
  }
  require_items(items, path);
  return items;
}

std::vector<ChoiceItem> read_piqa_original(const std::string& jsonl_path, const std::string& labels_path) {
  const std::vector<std::string> labels = read_lines(labels_path);
  std::vector<ChoiceItem> items;
  for_each_json_line(jsonl_path, [&](const Json& j, size_t i) {
    const std::string at = where(jsonl_path, i);
    if (i >= labels.size()) {
      fail(labels_path, "line count", "a label for every line of " + jsonl_path, std::to_string(labels.size()));
    }
    const std::string& label = labels[i];
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
  if (items.size() != labels.size()) {
    fail(labels_path, "line count", std::to_string(items.size()) + " (one per item of " + jsonl_path + ")",
         std::to_string(labels.size()));
  }
  require_items(items, jsonl_path);
  return items;
}

}  // namespace latmix
