// /params of `inferd chat`: sampling settings by their OpenAI names, checked as they are set.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "cli/chat.h"
#include "core/error.h"

namespace inferd::cli {

namespace {

enum class Kind { kFloat, kInt, kBool };

struct Field {
  const char* name;
  Kind kind;
  double lo, hi;
  bool lo_open;  // lo itself is not allowed
  const char* range;
};

constexpr double kInf = std::numeric_limits<double>::infinity();

const Field kFields[] = {
    {"temperature", Kind::kFloat, 0, kInf, false, ">= 0 (0: greedy)"},
    {"top_p", Kind::kFloat, 0, 1, true, "in (0, 1]"},
    {"top_k", Kind::kInt, -1, kInf, false, ">= -1 (0 or -1: off)"},
    {"min_p", Kind::kFloat, 0, 1, false, "in [0, 1]"},
    {"max_tokens", Kind::kInt, 1, kInf, false, ">= 1"},
    {"seed", Kind::kInt, 0, kInf, false, ">= 0"},
    {"presence_penalty", Kind::kFloat, -2, 2, false, "in [-2, 2]"},
    {"frequency_penalty", Kind::kFloat, -2, 2, false, "in [-2, 2]"},
    {"repetition_penalty", Kind::kFloat, 0, kInf, true, "> 0"},
    {"ignore_eos", Kind::kBool, 0, 0, false, "true or false"},
};

}  // namespace

std::string ChatParams::known() {
  std::string s;
  for (const Field& f : kFields) {
    if (!s.empty()) s += ", ";
    s += f.name;
  }
  return s;
}

void ChatParams::set(std::string_view assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0)
    fail("/params: '{}' is not name=value (for example temperature=0.7)", assignment);
  const std::string name(assignment.substr(0, eq));
  const std::string value(assignment.substr(eq + 1));
  const Field* f = nullptr;
  for (const Field& k : kFields)
    if (name == k.name) f = &k;
  if (!f) fail("/params: unknown setting '{}': expected one of {}", name, known());
  if (value == "default" || value == "unset") {
    fields.erase(name);
    return;
  }
  if (f->kind == Kind::kBool) {
    if (value != "true" && value != "false")
      fail("/params: {} must be {}, got '{}'", name, f->range, value);
    fields[name] = value == "true";
    return;
  }
  double v = 0;
  size_t used = 0;
  try {
    v = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const bool in_range = std::isfinite(v) && (f->lo_open ? v > f->lo : v >= f->lo) && v <= f->hi;
  if (used == 0 || used != value.size() || !in_range ||
      (f->kind == Kind::kInt && v != std::floor(v)))
    fail("/params: {} must be {}{}, got '{}'", name, f->kind == Kind::kInt ? "an integer " : "",
         f->range, value);
  if (f->kind == Kind::kInt)
    fields[name] = int64_t(v);
  else
    fields[name] = v;
}

std::string ChatParams::describe() const {
  if (fields.empty()) return "(defaults)";
  std::string s;
  for (const auto& [k, v] : fields.items()) {
    if (!s.empty()) s += ' ';
    s += k + "=" + v.dump();
  }
  return s;
}

}  // namespace inferd::cli
