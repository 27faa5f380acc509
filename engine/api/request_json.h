#pragma once
// The JSON of the use-case requests (engine/api, private): one table of fields per request, read
// and written by the same entries, so that to_json() and the strict reader cannot drift apart.
// learn.cpp and export.cpp use it; the messages name the request ("learn request: key 'steps': ...").

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "latmix/error.h"

namespace latmix::api::detail {

/// Thrown by the converters below; read_request() turns it into a UsageError naming the request and key.
struct WrongType {
  std::string expected;
};

inline std::string as_string(const nlohmann::json& v) {
  if (!v.is_string()) throw WrongType{"a string"};
  return v.get<std::string>();
}
inline int64_t as_integer(const nlohmann::json& v) {
  if (!v.is_number_integer()) throw WrongType{"an integer"};
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    throw WrongType{"an integer below 2^63"};
  }
  return v.get<int64_t>();
}
inline uint64_t as_unsigned(const nlohmann::json& v) {
  if (!v.is_number_unsigned()) throw WrongType{"an integer of 0 or more"};
  return v.get<uint64_t>();
}
inline double as_number(const nlohmann::json& v) {
  if (!v.is_number()) throw WrongType{"a number"};
  return v.get<double>();
}
inline bool as_bool(const nlohmann::json& v) {
  if (!v.is_boolean()) throw WrongType{"true or false"};
  return v.get<bool>();
}

/// One key of a request R: how it is written, and how it is read (never given null unless nullable).
template <typename R>
struct Field {
  std::function<nlohmann::json(const R&)> write;
  std::function<void(R&, const nlohmann::json&)> read;
  bool nullable = false;
};
template <typename R>
using FieldTable = std::vector<std::pair<std::string, Field<R>>>;

/// A plain member: always written, never null.
template <typename R, typename T, typename Conv>
Field<R> required(T R::*member, Conv conv) {
  return {[member](const R& r) { return nlohmann::json(r.*member); },
          [member, conv](R& r, const nlohmann::json& v) { r.*member = conv(v); }, false};
}
/// An optional member: null when unset, and null reads back as unset.
template <typename R, typename T, typename Conv>
Field<R> optional(std::optional<T> R::*member, Conv conv) {
  return {[member](const R& r) { return r.*member ? nlohmann::json(*(r.*member)) : nlohmann::json(nullptr); },
          [member, conv](R& r, const nlohmann::json& v) {
            if (v.is_null()) {
              r.*member = std::nullopt;
            } else {
              r.*member = conv(v);
            }
          },
          true};
}

[[noreturn]] inline void wrong_type(const std::string& what, const std::string& key, const std::string& expected,
                                    const nlohmann::json& found) {
  throw UsageError(what + ": key '" + key + "': expected " + expected + ", found " + std::string(found.type_name()) +
                   " " + found.dump());
}

/// Every field, in the table's order.
template <typename R>
nlohmann::json write_request(const FieldTable<R>& table, const R& request) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, field] : table) out[key] = field.write(request);
  return out;
}

/// The strict inverse of write_request(): an unknown key or a value of the wrong type is a
/// UsageError naming `what` and the key; a key left out keeps R's default.
template <typename R>
R read_request(const std::string& what, const FieldTable<R>& table, const nlohmann::json& j) {
  if (!j.is_object()) wrong_type(what, "(request)", "an object", j);
  R r;
  for (const auto& [key, value] : j.items()) {
    auto it = std::find_if(table.begin(), table.end(), [&key = key](const auto& f) { return f.first == key; });
    if (it == table.end()) throw UsageError(what + ": unknown key '" + key + "'");
    if (value.is_null() && !it->second.nullable) wrong_type(what, key, "a value (it cannot be null)", value);
    try {
      it->second.read(r, value);
    } catch (const WrongType& e) {
      wrong_type(what, key, e.expected, value);
    }
  }
  return r;
}

/// The shortest text that reads back as the same double (command lines repeating a request).
inline std::string number_text(double v) { return nlohmann::json(v).dump(); }

}  // namespace latmix::api::detail
