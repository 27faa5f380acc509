#pragma once
// The strict readers of the use-case results' JSON (engine/api, private): the inverse of each
// to_json(result), for a client that gets a result from `latmix serve` (issue 19). As the requests'
// readers (request_json.h): an unknown key or a value of the wrong type is a UsageError naming the
// result and the key's path ("learn result: key 'curve[3].loss': expected a number, found ..."); a
// key left out keeps the default. The shared pieces: task results, learning settings and events.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "latmix/learn.h"
#include "latmix/tasks.h"
#include "request_json.h"

namespace latmix::api::detail {

/// One JSON object of a result, its keys checked against the ones it may have.
class ResultReader {
 public:
  /// \throws UsageError when `j` is no object or has a key outside `keys`. `path`: where the object
  /// lies in the result ("" for the result itself, "layers[2]").
  ResultReader(std::string what, std::string path, const nlohmann::json& j, std::initializer_list<const char*> keys);

  bool has(const char* key) const { return j_->contains(key); }
  /// "key" or "path.key": how messages name it.
  std::string name(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& what() const { return what_; }

  /// `out` = conv(value) when the key is there; conv throws WrongType for a value it cannot take.
  template <typename T, typename Conv>
  void get(const char* key, T& out, Conv conv) const {
    const auto it = j_->find(key);
    if (it == j_->end()) return;
    try {
      out = conv(*it);
    } catch (const WrongType& e) {
      wrong_type(what_, name(key), e.expected, *it);
    }
  }
  /// The object under `key` (an empty one when the key is left out).
  ResultReader object(const char* key, std::initializer_list<const char*> keys) const;
  /// Each element of the array under `key` read by read_one(path, element) (nothing when left out).
  template <typename T, typename Read>
  void list(const char* key, std::vector<T>& out, Read read_one) const {
    const auto it = j_->find(key);
    if (it == j_->end()) return;
    if (!it->is_array()) wrong_type(what_, name(key), "an array", *it);
    out.clear();
    for (size_t i = 0; i < it->size(); ++i) {
      out.push_back(read_one(name(key) + "[" + std::to_string(i) + "]", (*it)[i]));
    }
  }
  /// A key whose value to_json() derives from others (a recovery from the results, the conditions
  /// by name): not read, only checked to be an object when it is there.
  void derived_object(const char* key) const;
  /// The value under `key` as it is (null when left out), for keys a reader takes apart itself.
  const nlohmann::json& raw(const char* key) const;

 private:
  std::string what_, path_;
  const nlohmann::json* j_;
};

/// A number where null stands for a value that is not finite (the writers' json(NaN), or an
/// explicit null): null reads back as `null_value`.
inline std::function<double(const nlohmann::json&)> number_or(double null_value) {
  return [null_value](const nlohmann::json& v) { return v.is_null() ? null_value : as_number(v); };
}
inline const double kNaN = std::numeric_limits<double>::quiet_NaN();
inline const double kInf = std::numeric_limits<double>::infinity();

/// A number that may not be finite, without loss: the string "inf", "-inf" or "nan" (JSON has none
/// of them), as `latmix mx block --json` writes them; as_real() reads a number or one of them.
nlohmann::json real_json(double v);
double as_real(const nlohmann::json& v);

/// Arrays of plain values.
std::vector<std::string> as_strings(const nlohmann::json& v);
std::vector<int64_t> as_integers(const nlohmann::json& v);
/// Numbers, null read back as `null_value`.
std::vector<double> as_numbers_or(const nlohmann::json& v, double null_value);

/// A TaskResult as to_json(TaskResult) writes it (item_scores are not written: none come back).
TaskResult read_task_result(const std::string& what, const std::string& path, const nlohmann::json& j);
std::vector<TaskResult> read_task_results(const ResultReader& r, const char* key);
/// LearnSettings::to_json()'s keys (a fixed preset's: method, quant, seed; the rest keep the
/// struct's defaults). The memory and checkpoint fields are not written and keep their defaults.
LearnSettings read_learn_settings(const std::string& what, const std::string& path, const nlohmann::json& j);
/// LearnEvent::to_json()'s keys; the loss terms in the JSON object's (sorted) order.
LearnEvent read_learn_event(const std::string& what, const std::string& path, const nlohmann::json& j);
/// Condition numbers in their order: [{"name", "value"}, ...] (to_json writes them so beside the
/// "condition_numbers" object, whose keys JSON sorts).
nlohmann::json conditions_json(const std::vector<std::pair<std::string, double>>& conditions);
std::vector<std::pair<std::string, double>> read_conditions(const ResultReader& r, const char* key);
/// The validation curve [{"step", "loss"}, ...].
std::vector<std::pair<int64_t, double>> read_validation_curve(const ResultReader& r, const char* key);

}  // namespace latmix::api::detail
