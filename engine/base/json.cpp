#include "latmix/json.h"

#include <cmath>
#include <limits>
#include <vector>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix {

namespace {

using nlohmann::json;

// Where the parser is, as a key path: a number that fails to parse (1e400) is reported with the
// key it belongs to, which nlohmann's message leaves out.
class ParsePosition {
 public:
  void on_event(json::parse_event_t event, const std::string* key) {
    using E = json::parse_event_t;
    if (event == E::value || event == E::object_start || event == E::array_start) next_element();
    if (event == E::object_start || event == E::array_start) frames_.push_back({event == E::array_start, -1, {}});
    if (event == E::object_end || event == E::array_end) frames_.pop_back();
    if (event == E::key && key != nullptr && !frames_.empty()) frames_.back().key = *key;
  }

  std::string path() const {
    std::string out;
    for (size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      if (f.array) {
        // A primitive is counted once parsed: the innermost array's failing element is the next.
        out += "[" + std::to_string(i + 1 == frames_.size() ? f.index + 1 : f.index) + "]";
      } else if (!f.key.empty()) {
        out += (out.empty() ? "" : ".") + f.key;
      }
    }
    return out;
  }

 private:
  struct Frame {
    bool array = false;
    long index = -1;
    std::string key;
  };
  void next_element() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }
  std::vector<Frame> frames_;
};

// nlohmann's messages start with "[json.exception.parse_error.101] "; the file name says more.
std::string without_prefix(const std::string& what) {
  const size_t end = what.rfind("] ", 40);
  return what.rfind("[json.exception.", 0) == 0 && end != std::string::npos ? what.substr(end + 2) : what;
}

std::string at_key(const std::string& path) {
  constexpr size_t kMax = 80;  // a path 256 levels deep would fill the screen
  if (path.empty()) return {};
  return "key '" + (path.size() <= kMax ? path : path.substr(0, kMax) + "...") + "': ";
}

template <typename BasicJson>
BasicJson parse_limited(const std::string& file, std::string_view text, int max_depth) {
  // nlohmann's lexer takes a NUL for the end of the input and would accept "{}\0<anything>".
  if (text.find('\0') != std::string_view::npos) fail(file, "not valid JSON", "JSON text", "a NUL byte");
  ParsePosition position;
  auto callback = [&](int depth, typename BasicJson::parse_event_t event, BasicJson& parsed) {
    using E = typename BasicJson::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth >= max_depth) {
      fail(file, at_key(position.path()) + "JSON nesting too deep", "at most " + std::to_string(max_depth) + " levels",
           "more");
    }
    const std::string* key = event == E::key ? parsed.template get_ptr<const std::string*>() : nullptr;
    position.on_event(event, key);
    return true;
  };
  try {
    return BasicJson::parse(text.begin(), text.end(), callback);
  } catch (const typename BasicJson::parse_error& e) {
    fail(file, "not valid JSON: " + without_prefix(e.what()));
  } catch (const typename BasicJson::exception& e) {
    fail(file, at_key(position.path()) + without_prefix(e.what()));  // e.g. number overflow parsing '1e400'
  }
}

std::string joined(const std::string& where, std::string_view key) {
  return where.empty() ? std::string(key) : where + "." + std::string(key);
}

}  // namespace

json parse_json_file(const std::string& file, std::string_view text, int max_depth) {
  return parse_limited<json>(file, text, max_depth);
}

nlohmann::ordered_json parse_ordered_json_file(const std::string& file, std::string_view text, int max_depth) {
  return parse_limited<nlohmann::ordered_json>(file, text, max_depth);
}

json read_json_file(const std::string& file, int max_depth) {
  return parse_json_file(file, read_text_file(file), max_depth);
}

std::string json_excerpt(const json& value) {
  constexpr size_t kMax = 60;
  // Strings may be huge (a 50 MB config value): cut before dumping, not after.
  if (value.is_string() && value.get_ref<const std::string&>().size() > kMax) {
    return json(value.get_ref<const std::string&>().substr(0, kMax)).dump() + "...";
  }
  if (value.is_structured() && value.size() > 8)
    return std::string(value.type_name()) + " of " + std::to_string(value.size()) + " items";
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() <= kMax ? text : text.substr(0, kMax) + "...";
}

// ---- JsonObject --------------------------------------------------------------------------------

JsonObject::JsonObject(const json& value, std::string file, std::string where)
    : value_(value), file_(std::move(file)), where_(std::move(where)) {
  if (!value_.is_object()) {
    fail(file_, where_.empty() ? "top level" : "key '" + where_ + "'", "a JSON object", json_excerpt(value_));
  }
}

std::string JsonObject::path_of(std::string_view key) const {
  return joined(where_, key);
}

void JsonObject::fail_key(std::string_view key, const std::string& expected, const json& found) const {
  fail(file_, "key '" + path_of(key) + "'", expected, json_excerpt(found));
}

bool JsonObject::has(std::string_view key) const {
  const auto it = value_.find(key);
  return it != value_.end() && !it->is_null();
}

const json& JsonObject::at(std::string_view key) const {
  const auto it = value_.find(key);
  if (it == value_.end() || it->is_null()) fail(file_, "missing key '" + path_of(key) + "'");
  return *it;
}

int64_t JsonObject::integer(std::string_view key) const {
  const json& v = at(key);
  const bool fits =
      v.is_number_integer() &&
      (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  if (!fits) fail_key(key, "an integer", v);
  return v.get<int64_t>();
}

int64_t JsonObject::integer_or(std::string_view key, int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

int64_t JsonObject::integer_in(std::string_view key, int64_t min, int64_t max) const {
  const int64_t v = integer(key);
  if (v < min || v > max) {
    fail_key(key, "an integer in " + std::to_string(min) + ".." + std::to_string(max), at(key));
  }
  return v;
}

double JsonObject::number(std::string_view key) const {
  const json& v = at(key);
  if (!v.is_number()) fail_key(key, "a number", v);
  return v.get<double>();
}

double JsonObject::number_or(std::string_view key, double fallback) const {
  return has(key) ? number(key) : fallback;
}

bool JsonObject::boolean_or(std::string_view key, bool fallback) const {
  if (!has(key)) return fallback;
  const json& v = at(key);
  if (!v.is_boolean()) fail_key(key, "true or false", v);
  return v.get<bool>();
}

std::string JsonObject::string(std::string_view key) const {
  const json& v = at(key);
  if (!v.is_string()) fail_key(key, "a string", v);
  return v.get<std::string>();
}

std::string JsonObject::string_or(std::string_view key, const std::string& fallback) const {
  return has(key) ? string(key) : fallback;
}

JsonObject JsonObject::object(std::string_view key) const {
  return JsonObject(at(key), file_, path_of(key));
}

JsonObject JsonObject::object_or_empty(std::string_view key) const {
  static const json empty = json::object();
  return has(key) ? object(key) : JsonObject(empty, file_, path_of(key));
}

const json& JsonObject::array(std::string_view key) const {
  const json& v = at(key);
  if (!v.is_array()) fail_key(key, "an array", v);
  return v;
}

JsonObject JsonObject::element(std::string_view key, size_t index) const {
  const json& list = array(key);
  if (index >= list.size())
    fail(file_, "key '" + path_of(key) + "'", "more than " + std::to_string(index) + " items",
         std::to_string(list.size()));
  return JsonObject(list[index], file_, path_of(key) + "[" + std::to_string(index) + "]");
}

}  // namespace latmix
