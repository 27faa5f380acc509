#include "args.h"

#include <sstream>

#include "latmix/error.h"

namespace latmix::cli {

std::vector<OptionSpec> common_options() {
  return {
      {"json", "", "print machine-readable JSON on stdout instead of the table", "", false},
      {"device", "cpu|cuda", "where to compute", "cpu", false},
      {"threads", "N", "CPU threads for LibTorch (0: LibTorch's default; capped at the cores available)", "0", false},
      {"quiet", "", "no progress output on stderr", "", false},
      {"help", "", "show this help and exit", "", false},
  };
}

std::string command_help(const CommandSpec& spec) {
  std::ostringstream out;
  out << "Usage: latmix " << spec.name << " [options]\n\n" << spec.summary << "\n";
  if (!spec.details.empty()) out << "\n" << spec.details << "\n";
  out << "\nOptions:\n";
  auto print = [&](const OptionSpec& o) {
    std::string left = "  --" + o.name + (o.value.empty() ? "" : " " + o.value);
    out << left;
    if (left.size() < 28) out << std::string(28 - left.size(), ' ');
    else out << "\n" << std::string(28, ' ');
    out << o.help;
    if (o.required) out << " (required)";
    else if (!o.fallback.empty() && !o.value.empty()) out << " [default: " << o.fallback << "]";
    out << "\n";
  };
  for (const auto& o : spec.options) print(o);
  out << "\nCommon options:\n";
  for (const auto& o : common_options()) print(o);
  return out.str();
}

Args::Args(const CommandSpec& spec, const std::vector<std::string>& argv) : options_(spec.options) {
  for (auto& o : common_options()) options_.push_back(o);
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0) throw UsageError("latmix " + spec.name + ": unexpected argument '" + a + "'");
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const OptionSpec* o = nullptr;
    for (const auto& cand : options_) {
      if (cand.name == name) o = &cand;
    }
    if (o == nullptr) {
      throw UsageError("latmix " + spec.name + ": unknown option '--" + name + "' (see latmix " + spec.name +
                       " --help)");
    }
    if (o->value.empty()) {
      if (inline_value) throw UsageError("latmix " + spec.name + ": --" + name + " takes no value");
      value = "1";
    } else if (!inline_value) {
      if (i + 1 >= argv.size()) throw UsageError("latmix " + spec.name + ": --" + name + " needs a value " + o->value);
      value = argv[++i];
    }
    values_[name] = value;
  }
  if (help()) return;
  for (const auto& o : options_) {
    if (o.required && !has(o.name)) {
      throw UsageError("latmix " + spec.name + ": --" + o.name + " " + o.value + " is required");
    }
  }
}

const OptionSpec& Args::spec_of(const std::string& name) const {
  for (const auto& o : options_) {
    if (o.name == name) return o;
  }
  throw std::logic_error("option not declared: " + name);
}

bool Args::flag(const std::string& name) const {
  spec_of(name);
  return values_.count(name) > 0;
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::get(const std::string& name) const {
  auto it = values_.find(name);
  return it != values_.end() ? it->second : spec_of(name).fallback;
}

int64_t Args::integer(const std::string& name) const {
  const std::string v = get(name);
  try {
    size_t used = 0;
    int64_t n = std::stoll(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw UsageError("--" + name + ": expected an integer, found '" + v + "'");
}

double Args::number(const std::string& name) const {
  const std::string v = get(name);
  try {
    size_t used = 0;
    double d = std::stod(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  throw UsageError("--" + name + ": expected a number, found '" + v + "'");
}

std::vector<int64_t> Args::integer_list(const std::string& name) const {
  std::vector<int64_t> out;
  std::stringstream ss(get(name));
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw UsageError("--" + name + ": expected comma-separated integers, found '" + item + "'");
    }
  }
  return out;
}

}  // namespace latmix::cli
