// Reading the fields of a JSON request body with OpenAI's error messages: every field of the wrong
// type or out of range is an ApiError 400 naming it ("Invalid type for 'n': expected an integer,
// but got a string instead."). Absent and null both mean "not given". Also the body as the
// client ordered its keys (schemas and tools are generated in the client's key order).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace inferd::server {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Parses a request body; throws ApiError 400 on invalid JSON or a body that is not an object.
json parse_json_body(const std::string& body);

// Field helpers (exposed for /tokenize and tests). Absent and null both mean "not given".
const json* find_field(const json& obj, const char* name);
std::optional<bool> get_bool(const json& obj, const char* name);
std::optional<int64_t> get_int(const json& obj, const char* name, int64_t lo, int64_t hi);
std::optional<double> get_number(const json& obj, const char* name, double lo, double hi);
std::optional<std::string> get_string(const json& obj, const char* name);
// "a string", "an integer", ... as OpenAI's messages say.
std::string json_type_name(const json& v);

// A 400 for `param` holding `got` where `expected` ("an integer") was due.
[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& got);
// 2.0 -> "2", 0.5 -> "0.5".
std::string fmt_num(double v);
// An integer, or a decimal with an integral value that fits int64.
bool is_integral(const json& v);
int64_t as_int(const json& v);
// `v` as an integer in [lo, hi]; a 400 naming `param` otherwise.
int64_t int_value(const json& v, const std::string& param, int64_t lo, int64_t hi);
// An array of 32-bit integers (token ids; elements named param[i]).
std::vector<int32_t> int32_list(const json& v, const std::string& param);
std::string nonempty_string(const json& v, const std::string& param);
// OpenAI's rule for function and schema names: 1 to 64 letters, digits, underscores or dashes.
bool valid_name(const std::string& n);

// The value at `path` in the body as the client ordered it, or null.
const ojson* ordered_at(const ojson* root, std::initializer_list<std::string_view> path);
// JSON text of `v` (found at `path`), in the client's key order when the ordered body has it.
std::string ordered_dump(const json& v, const ojson* root,
                         std::initializer_list<std::string_view> path);

}  // namespace inferd::server
