#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "latmix/error.h"
#include "latmix/safetensors.h"

namespace latmix {

namespace {

using nlohmann::json;

struct DTypeRow {
  DType dtype;
  std::string_view name;
  int bits;
};

constexpr std::array<DTypeRow, kDTypeCount> kDTypes = {{
    {DType::BOOL, "BOOL", 8},
    {DType::U8, "U8", 8},
    {DType::I8, "I8", 8},
    {DType::I16, "I16", 16},
    {DType::U16, "U16", 16},
    {DType::I32, "I32", 32},
    {DType::U32, "U32", 32},
    {DType::I64, "I64", 64},
    {DType::U64, "U64", 64},
    {DType::F16, "F16", 16},
    {DType::BF16, "BF16", 16},
    {DType::F32, "F32", 32},
    {DType::F64, "F64", 64},
    {DType::C64, "C64", 64},
    {DType::F8_E5M2, "F8_E5M2", 8},
    {DType::F8_E4M3, "F8_E4M3", 8},
    {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8},
    {DType::F8_E8M0, "F8_E8M0", 8},
    {DType::F6_E2M3, "F6_E2M3", 6},
    {DType::F6_E3M2, "F6_E3M2", 6},
    {DType::F4, "F4", 4},
}};

const DTypeRow& row(DType dtype) {
  return kDTypes.at(static_cast<size_t>(dtype));
}

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr size_t kMaxQuotedChars = 120;

// A name or value for a message: quoted, control bytes escaped, long text shortened.
std::string quote(std::string_view text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == kMaxQuotedChars) {
      out += "...(" + std::to_string(text.size()) + " bytes)";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

std::string tensor_label(std::string_view name) {
  return "tensor " + quote(name);
}

std::string offsets_to_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// Element count of a shape; nullopt on a negative dimension or when the product of the non-zero
// dimensions exceeds int64 (LibTorch computes that product too).
std::optional<uint64_t> checked_numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  bool has_zero = false;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) {
      has_zero = true;
      continue;
    }
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) || n > kInt64Max) {
      return std::nullopt;
    }
  }
  return has_zero ? 0 : n;
}

// Builds the tensor list and metadata from SAX events. Anything that is not exactly the
// safetensors structure throws at once, so deep nesting or huge arrays in the wrong place cost
// nothing; duplicate keys are caught here because a DOM parser would drop them silently.
class HeaderSax final : public nlohmann::json_sax<json> {
 public:
  explicit HeaderSax(const std::string& path) : path_(path) {}

  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  bool complete() const { return where_ == Where::Done; }

  bool null() override { unexpected("null"); }
  bool boolean(bool value) override { unexpected(value ? "true" : "false"); }
  bool binary(binary_t& /*value*/) override { unexpected("binary data"); }

  bool number_integer(number_integer_t value) override {
    if (value >= 0) return number_unsigned(static_cast<number_unsigned_t>(value));
    unexpected("negative number " + std::to_string(value));
  }

  bool number_unsigned(number_unsigned_t value) override {
    if (where_ == Where::Shape) {
      if (value > kInt64Max) {
        fail(path_, entry_label() + ": shape dimension", "at most 2^63-1", std::to_string(value));
      }
      entry_.shape.push_back(static_cast<int64_t>(value));
      return true;
    }
    if (where_ == Where::Offsets) {
      if (offsets_.size() == 2) {
        fail(path_, entry_label() + ": data_offsets", "exactly 2 numbers [begin, end]",
             "a third number " + std::to_string(value));
      }
      offsets_.push_back(value);
      return true;
    }
    unexpected("number " + std::to_string(value));
  }

  bool number_float(number_float_t value, const string_t& text) override { unexpected("non-integer number " + text); }

  bool string(string_t& value) override {
    if (where_ == Where::Metadata) {
      metadata[field_] = value;
      return true;
    }
    if (where_ == Where::Entry && field_ == "dtype") {
      const auto dtype = parse_dtype(value);
      if (!dtype) {
        fail(path_, entry_label() + ": unknown dtype", "one of the safetensors dtypes (F32, BF16, ...)", quote(value));
      }
      entry_.dtype = *dtype;
      return true;
    }
    unexpected("string " + quote(value));
  }

  bool start_object(std::size_t /*elements*/) override {
    if (where_ == Where::Start) {
      where_ = Where::Root;
    } else if (where_ == Where::Root && key_ == "__metadata__") {
      where_ = Where::Metadata;
    } else if (where_ == Where::Root) {
      where_ = Where::Entry;
      entry_ = TensorInfo{};
      entry_.name = key_;
      fields_.clear();
      offsets_.clear();
    } else {
      unexpected("an object");
    }
    return true;
  }

  bool key(string_t& value) override {
    if (where_ == Where::Root) {
      if (!root_keys_.insert(value).second) {
        fail(path_, "header: duplicate key " + quote(value), "each tensor named once", "the name twice");
      }
      key_ = value;
    } else if (where_ == Where::Metadata) {
      if (metadata.count(value) != 0) {
        fail(path_, "__metadata__: duplicate key " + quote(value), "each key once", "it twice");
      }
      field_ = value;
    } else {  // Where::Entry: the only other place an object is accepted
      if (value != "dtype" && value != "shape" && value != "data_offsets") {
        fail(path_, entry_label() + ": unknown field " + quote(value), "only dtype, shape, data_offsets");
      }
      if (!fields_.insert(value).second) {
        fail(path_, entry_label() + ": duplicate field " + quote(value), "each field once", "it twice");
      }
      field_ = value;
    }
    return true;
  }

  bool end_object() override {
    if (where_ == Where::Entry) {
      for (const char* name : {"dtype", "shape", "data_offsets"}) {
        if (fields_.count(name) == 0) {
          fail(path_, entry_label() + ": missing field '" + name + "'", "dtype, shape and data_offsets");
        }
      }
      entry_.begin = offsets_[0];
      entry_.end = offsets_[1];
      tensors.push_back(std::move(entry_));
      where_ = Where::Root;
    } else if (where_ == Where::Metadata) {
      where_ = Where::Root;
    } else {
      where_ = Where::Done;
    }
    return true;
  }

  bool start_array(std::size_t /*elements*/) override {
    if (where_ == Where::Entry && field_ == "shape") {
      where_ = Where::Shape;
      return true;
    }
    if (where_ == Where::Entry && field_ == "data_offsets") {
      where_ = Where::Offsets;
      return true;
    }
    unexpected("an array");
  }

  bool end_array() override {
    if (where_ == Where::Offsets && offsets_.size() != 2) {
      fail(path_, entry_label() + ": data_offsets", "exactly 2 numbers [begin, end]",
           std::to_string(offsets_.size()) + " numbers");
    }
    where_ = Where::Entry;
    return true;
  }

  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    // nlohmann counts from 1 at the first header byte; report the file offset. Its message
    // quotes the last token, which can be as long as the header: keep the start.
    std::string what = ex.what();
    if (what.size() > 300) what = what.substr(0, 300) + "...";
    fail(path_, "header is not valid JSON at file byte " + std::to_string(7 + position), "UTF-8 JSON", what);
  }

 private:
  enum class Where { Start, Root, Metadata, Entry, Shape, Offsets, Done };

  std::string entry_label() const { return tensor_label(entry_.name); }

  [[noreturn]] void unexpected(const std::string& found) const {
    switch (where_) {
      case Where::Start:
      case Where::Done:
        fail(path_, "header", "a JSON object", found);
      case Where::Root:
        if (key_ == "__metadata__") fail(path_, "__metadata__", "an object of strings", found);
        fail(path_, tensor_label(key_), "an object with dtype, shape and data_offsets", found);
      case Where::Metadata:
        fail(path_, "__metadata__ key " + quote(field_), "a string value", found);
      case Where::Entry:
        if (field_ == "dtype") fail(path_, entry_label() + ": dtype", "a string", found);
        if (field_ == "shape") {
          fail(path_, entry_label() + ": shape", "an array of non-negative integers", found);
        }
        fail(path_, entry_label() + ": data_offsets", "an array [begin, end]", found);
      case Where::Shape:
        fail(path_, entry_label() + ": shape dimension", "a non-negative integer", found);
      case Where::Offsets:
        fail(path_, entry_label() + ": data_offsets", "non-negative integers", found);
    }
    fail(path_, "header", "a JSON object", found);
  }

  const std::string& path_;
  Where where_ = Where::Start;
  std::string key_;    // current top-level key
  std::string field_;  // current key inside an entry or __metadata__
  std::set<std::string> root_keys_;
  std::set<std::string> fields_;
  std::vector<uint64_t> offsets_;
  TensorInfo entry_;
};

void check_tensor_size(const TensorInfo& t, uint64_t data_size, const std::string& path) {
  const std::string label = tensor_label(t.name);
  const std::string offsets = offsets_to_string(t.begin, t.end);
  if (t.end < t.begin) {
    fail(path, label + ": data_offsets " + offsets, "begin <= end", "end before begin");
  }
  const auto numel = checked_numel(t.shape);
  if (!numel) {
    fail(path, label + ": shape " + shape_to_string(t.shape), "an element count that fits in int64", "an overflow");
  }
  uint64_t bits = 0;
  if (__builtin_mul_overflow(*numel, static_cast<uint64_t>(dtype_bits(t.dtype)), &bits)) {
    fail(path, label + ": size of " + std::string(dtype_name(t.dtype)) + " " + shape_to_string(t.shape),
         "a byte count that fits in 64 bits", "an overflow");
  }
  if (bits % 8 != 0) {
    fail(path, label + ": " + std::string(dtype_name(t.dtype)) + " " + shape_to_string(t.shape),
         "a whole number of bytes", std::to_string(bits) + " bits");
  }
  if (t.end - t.begin != bits / 8) {
    fail(path,
         label + " (" + std::string(dtype_name(t.dtype)) + " " + shape_to_string(t.shape) + "): data_offsets " +
             offsets + " span",
         std::to_string(bits / 8) + " bytes", std::to_string(t.end - t.begin) + " bytes");
  }
  if (t.end > data_size) {
    fail(path, label + ": data_offsets " + offsets + " run past the end of the file",
         "end <= " + std::to_string(data_size) + " (the data area's size)", std::to_string(t.end));
  }
}

// The tensors, sorted by offset, must tile [0, data_size) exactly.
void check_layout(const std::vector<TensorInfo>& sorted, uint64_t data_size, const std::string& path) {
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : sorted) {
    if (t.begin < pos) {
      fail(path,
           tensor_label(t.name) + ": data_offsets " + offsets_to_string(t.begin, t.end) + " overlap " +
               tensor_label(prev->name) + " " + offsets_to_string(prev->begin, prev->end),
           "begin >= " + std::to_string(pos), std::to_string(t.begin));
    }
    if (t.begin > pos) {
      const std::string where = prev == nullptr
                                    ? "before the first " + tensor_label(t.name)
                                    : "between " + tensor_label(prev->name) + " and " + tensor_label(t.name);
      fail(path,
           "hole in the data area: bytes [" + std::to_string(pos) + ", " + std::to_string(t.begin) + ") " + where +
               " belong to no tensor",
           "tensors that cover the data area contiguously", "a gap of " + std::to_string(t.begin - pos) + " bytes");
    }
    pos = t.end;
    prev = &t;
  }
  if (pos != data_size) {
    const std::string where =
        prev == nullptr ? "with no tensor in the header" : "after the last " + tensor_label(prev->name);
    fail(path, "data area has " + std::to_string(data_size - pos) + " trailing bytes " + where,
         "the data area to end at data offset " + std::to_string(pos), std::to_string(data_size) + " bytes of data");
  }
}

}  // namespace

const std::vector<DType>& all_dtypes() {
  static const std::vector<DType> all = [] {
    std::vector<DType> v;
    for (const auto& r : kDTypes) v.push_back(r.dtype);
    return v;
  }();
  return all;
}

std::string_view dtype_name(DType dtype) {
  return row(dtype).name;
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& r : kDTypes) {
    if (r.name == name) return r.dtype;
  }
  return std::nullopt;
}

int dtype_bits(DType dtype) {
  return row(dtype).bits;
}

std::optional<uint64_t> tensor_byte_size(DType dtype, const std::vector<int64_t>& shape) {
  const auto numel = checked_numel(shape);
  if (!numel) return std::nullopt;
  uint64_t bits = 0;
  if (__builtin_mul_overflow(*numel, static_cast<uint64_t>(dtype_bits(dtype)), &bits)) {
    return std::nullopt;
  }
  if (bits % 8 != 0) return std::nullopt;
  return bits / 8;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

int64_t TensorInfo::numel() const {
  uint64_t n = 1;  // unsigned: wraps instead of undefined behaviour on unvalidated shapes
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return static_cast<int64_t>(n);
}

const TensorInfo* SafetensorsHeader::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors[it->second];
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t available, uint64_t file_size,
                                           const std::string& path) {
  if (file_size < 8 || available < 8) {
    fail(path, "file too small for a safetensors header", "at least 8 bytes",
         std::to_string(std::min<uint64_t>(file_size, available)) + " bytes");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n < 2) {
    fail(path, "header length", "at least 2 (the JSON \"{}\")", std::to_string(n));
  }
  if (n > kMaxSafetensorsHeaderBytes) {
    fail(path, "header length", "at most " + std::to_string(kMaxSafetensorsHeaderBytes) + " bytes",
         std::to_string(n) + " bytes");
  }
  if (n > file_size - 8) {
    fail(path, "header length runs past the end of the file",
         "at most " + std::to_string(file_size - 8) + " bytes (file size " + std::to_string(file_size) + " - 8)",
         std::to_string(n) + " bytes");
  }
  if (n > available - 8) {
    fail(path, "header truncated", std::to_string(8 + n) + " bytes", std::to_string(available) + " bytes");
  }

  const auto* text = reinterpret_cast<const char*>(bytes + 8);
  // JSON text never holds a raw NUL, but nlohmann's lexer takes one for the end of the input and
  // would accept "{}\0<anything>": reject it here.
  if (const void* nul = std::memchr(text, 0, n); nul != nullptr) {
    const auto at = static_cast<uint64_t>(static_cast<const char*>(nul) - text) + 8;
    fail(path, "header is not valid JSON: NUL byte at file byte " + std::to_string(at), "UTF-8 JSON padded with spaces",
         "a 0x00 byte");
  }
  HeaderSax sax(path);
  json::sax_parse(text, text + n, &sax, nlohmann::json::input_format_t::json, true);
  if (!sax.complete()) fail(path, "header", "a complete JSON object", "an incomplete one");

  SafetensorsHeader header;
  header.header_len = n;
  header.data_start = 8 + n;
  header.data_size = file_size - header.data_start;
  header.metadata = std::move(sax.metadata);
  header.tensors = std::move(sax.tensors);
  for (const TensorInfo& t : header.tensors) check_tensor_size(t, header.data_size, path);
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  check_layout(header.tensors, header.data_size, path);
  for (size_t i = 0; i < header.tensors.size(); ++i) header.index_[header.tensors[i].name] = i;
  return header;
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::is_regular_file(status)) {
    fail(path, "cannot open safetensors file", "a readable regular file", ec ? ec.message() : "not a regular file");
  }
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) fail(path, "cannot open safetensors file", "a readable file", ec.message());

  std::vector<uint8_t> bytes(static_cast<size_t>(std::min<uint64_t>(file_size, 8)));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (bytes.size() == 8) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
    // Only read what the parser will accept; it reports the other cases from the 8 bytes.
    if (n >= 2 && n <= kMaxSafetensorsHeaderBytes && n <= file_size - 8) {
      bytes.resize(8 + n);
      in.read(reinterpret_cast<char*>(bytes.data() + 8), static_cast<std::streamsize>(n));
    }
  }
  if (!in) fail(path, "read error in the header", "a readable file", "a short read");
  return parse_safetensors_header(bytes.data(), bytes.size(), file_size, path);
}

std::string build_safetensors_header(const std::vector<TensorInfo>& tensors,
                                     const std::map<std::string, std::string>& metadata, const std::string& path) {
  // Built by hand, not as one JSON object, to keep the given order in linear time.
  auto dump = [&](const json& value) {
    try {
      return value.dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const json::exception& e) {
      fail(path, "tensor names and metadata", "valid UTF-8", e.what());
    }
  };
  std::string text = "{";
  if (!metadata.empty()) text += "\"__metadata__\":" + dump(metadata);
  std::set<std::string_view> seen;
  for (const TensorInfo& t : tensors) {
    if (t.name == "__metadata__") {
      fail(path, "tensor name '__metadata__'", "any other name", "the reserved key");
    }
    if (!seen.insert(t.name).second) fail(path, tensor_label(t.name), "each name once", "it twice");
    if (text.size() > 1) text += ',';
    text += dump(t.name) + ":{\"dtype\":\"" + std::string(dtype_name(t.dtype)) + "\",\"shape\":" + dump(t.shape) +
            ",\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
  }
  text += '}';
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxSafetensorsHeaderBytes) {
    fail(path, "header length", "at most " + std::to_string(kMaxSafetensorsHeaderBytes) + " bytes",
         std::to_string(text.size()) + " bytes");
  }
  std::string out(8, '\0');
  const uint64_t n = text.size();
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

std::vector<std::string> SafetensorsIndex::shards() const {
  std::set<std::string> names;
  for (const auto& [tensor, shard] : weight_map) names.insert(shard);
  return {names.begin(), names.end()};
}

SafetensorsIndex parse_safetensors_index(std::string_view json_text, const std::string& path) {
  constexpr int kMaxDepth = 8;
  std::vector<std::set<std::string>> keys;  // keys seen per open object
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxDepth) {
      fail(path, "JSON nesting", "at most " + std::to_string(kMaxDepth) + " levels", "deeper nesting");
    }
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second) fail(path, "duplicate key " + quote(k), "each key once");
    }
    return true;
  };
  if (json_text.find('\0') != std::string_view::npos) {  // see parse_safetensors_header
    fail(path, "not valid JSON", "a shard index (JSON object)", "a NUL byte");
  }
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end(), callback);
  } catch (const json::exception& e) {
    fail(path, "not valid JSON", "a shard index (JSON object)", e.what());
  }
  if (!root.is_object()) fail(path, "index", "a JSON object", root.type_name());
  const auto wm = root.find("weight_map");
  if (wm == root.end() || !wm->is_object()) {
    fail(path, "index key 'weight_map'", "an object of tensor name -> shard file",
         wm == root.end() ? "no such key" : wm->type_name());
  }
  SafetensorsIndex index;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) {
      fail(path, "weight_map entry " + tensor_label(name), "a shard file name (string)", shard.type_name());
    }
    const auto& file = shard.get_ref<const std::string&>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos) {
      fail(path, "weight_map entry " + tensor_label(name) + ": shard file", "a plain file name in the same folder",
           quote(file));
    }
    index.weight_map.emplace(name, file);
  }
  if (const auto meta = root.find("metadata"); meta != root.end()) {
    if (!meta->is_object()) fail(path, "index key 'metadata'", "an object", meta->type_name());
    if (const auto total = meta->find("total_size"); total != meta->end()) {
      if (!total->is_number_unsigned()) {
        fail(path, "metadata.total_size", "a non-negative integer", total->dump());
      }
      index.total_size = total->get<uint64_t>();
    }
  }
  return index;
}

std::string build_safetensors_index(const SafetensorsIndex& index) {
  json root = json::object();
  json meta = json::object();
  if (index.total_size) meta["total_size"] = *index.total_size;
  root["metadata"] = meta;
  root["weight_map"] = index.weight_map;
  return root.dump(2, ' ', false, json::error_handler_t::strict) + "\n";
}

}  // namespace latmix
