// Reading the fields of a JSON request body with OpenAI's error messages.
#include "server/json_fields.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

namespace inferd::server {

void wrong_type(const std::string& param, const char* expected, const json& got) {
  throw bad_param(param, fmt::format("Invalid type for '{}': expected {}, but got {} instead.",
                                     param, expected, json_type_name(got)));
}

std::string fmt_num(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) return fmt::format("{}", int64_t(v));
  return fmt::format("{}", v);
}

bool is_integral(const json& v) {
  if (v.is_number_integer()) return true;
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9.2e18;
  }
  return false;
}

int64_t as_int(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                             : int64_t(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return int64_t(v.get<double>());
}

int64_t int_value(const json& v, const std::string& param, int64_t lo, int64_t hi) {
  if (!is_integral(v)) wrong_type(param, "an integer", v);
  const int64_t x = as_int(v);
  if (x < lo)
    throw bad_param(param, fmt::format("Invalid '{}': integer below minimum value. Expected a "
                                       "value >= {}, but got {} instead.",
                                       param, lo, x));
  if (x > hi)
    throw bad_param(param, fmt::format("Invalid '{}': integer above maximum value. Expected a "
                                       "value <= {}, but got {} instead.",
                                       param, hi, x));
  return x;
}

std::vector<int32_t> int32_list(const json& v, const std::string& param) {
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  constexpr int64_t lo = std::numeric_limits<int32_t>::min();
  constexpr int64_t hi = std::numeric_limits<int32_t>::max();
  for (size_t i = 0; i < v.size(); ++i) {
    const json& e = v[i];
    if (e.is_number_integer() && as_int(e) >= lo && as_int(e) <= hi) {
      ids.push_back(int32_t(as_int(e)));
    } else {  // the element's name is formatted only for the odd one
      ids.push_back(int32_t(int_value(e, fmt::format("{}[{}]", param, i), lo, hi)));
    }
  }
  return ids;
}

// The value at `path` in the body as the client ordered it, or null.
const ojson* ordered_at(const ojson* root, std::initializer_list<std::string_view> path) {
  const ojson* v = root;
  for (std::string_view k : path) {
    if (!v || !v->is_object()) return nullptr;
    auto it = v->find(std::string(k));
    if (it == v->end()) return nullptr;
    v = &*it;
  }
  return v;
}

// JSON text of `v` (found at `path`), in the client's key order when the ordered body has it.
std::string ordered_dump(const json& v, const ojson* root,
                         std::initializer_list<std::string_view> path) {
  if (const ojson* o = ordered_at(root, path)) return o->dump();
  return v.dump();
}

std::string nonempty_string(const json& v, const std::string& param) {
  if (!v.is_string()) wrong_type(param, "a string", v);
  if (v.get_ref<const std::string&>().empty())
    throw bad_param(param, fmt::format("Invalid '{}': empty string.", param));
  return v.get<std::string>();
}

// OpenAI's rule for function and schema names.
bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

std::string json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a decimal";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    default:
      return "an unsupported value";
  }
}

json parse_json_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1E999
    throw ApiError(400,
                   fmt::format("We could not parse the JSON body of your request. ({})", e.what()),
                   "invalid_request_error", std::nullopt, "invalid_json");
  }
  if (!j.is_object())
    throw ApiError(
        400, fmt::format("The request body must be a JSON object, but got {}.", json_type_name(j)),
        "invalid_request_error", std::nullopt, "invalid_json");
  return j;
}

const json* find_field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> get_bool(const json& obj, const char* name) {
  const json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

std::optional<int64_t> get_int(const json& obj, const char* name, int64_t lo, int64_t hi) {
  const json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  return int_value(*v, name, lo, hi);
}

std::optional<double> get_number(const json& obj, const char* name, double lo, double hi) {
  const json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x))
    throw bad_param(name, fmt::format("Invalid '{}': not a finite number.", name));
  if (x < lo)
    throw bad_param(name, fmt::format("Invalid '{}': decimal below minimum value. Expected a "
                                      "value >= {}, but got {} instead.",
                                      name, fmt_num(lo), fmt_num(x)));
  if (x > hi)
    throw bad_param(name, fmt::format("Invalid '{}': decimal above maximum value. Expected a "
                                      "value <= {}, but got {} instead.",
                                      name, fmt_num(hi), fmt_num(x)));
  return x;
}

std::optional<std::string> get_string(const json& obj, const char* name) {
  const json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

}  // namespace inferd::server
