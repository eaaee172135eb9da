// Reading the fields of tokenizer.json component objects: the "type" string, optional values
// with defaults (integers range-checked), token ids and one-character strings. Each bad field is
// an Error naming it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace inferd::tok {

// The "type" of a component object (`what`: "normalizer", "decoder", ...).
inline std::string type_of(const nlohmann::json& j, const char* what) {
  if (!j.is_object() || !j.contains("type") || !j.at("type").is_string()) {
    fail("tokenizer.json: {} must be an object with a \"type\" string", what);
  }
  return j.at("type").get<std::string>();
}

// True when `v` is an integer that T holds (json's get<T> would cast a float or an integer out of
// range; a float out of range is undefined behaviour).
template <typename T>
bool fits(const nlohmann::json& v) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
  const int64_t x = v.get<int64_t>();
  return std::is_signed_v<T> ? x >= int64_t(std::numeric_limits<T>::min()) &&
                                   x <= int64_t(std::numeric_limits<T>::max())
                             : x >= 0 && uint64_t(x) <= uint64_t(std::numeric_limits<T>::max());
}

// j[key], or `def` when it is absent or null.
template <typename T>
T get_or(const nlohmann::json& j, const char* key, T def) {
  if (!j.contains(key) || j.at(key).is_null()) return def;
  const nlohmann::json& v = j.at(key);
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!fits<T>(v))
      fail("tokenizer.json: \"{}\" is {}, expected an integer in range", key, v.dump());
  }
  return v.get<T>();
}

inline int32_t token_id(const nlohmann::json& v, const char* what) {
  if (!fits<int32_t>(v) || v.get<int64_t>() < 0)
    fail("tokenizer.json: {} token id {} is not a non-negative integer", what, v.dump());
  return v.get<int32_t>();
}

// The code point of a one-character string.
inline uint32_t single_char(const std::string& s, const char* what) {
  size_t i = 0;
  if (s.empty()) fail("tokenizer.json: {} must be one character, got an empty string", what);
  const uint32_t cp = unicode::next_cp(s, i);
  if (i != s.size()) fail("tokenizer.json: {} must be one character, got '{}'", what, s);
  return cp;
}

}  // namespace inferd::tok
