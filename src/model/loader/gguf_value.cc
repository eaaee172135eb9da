// GGUF metadata values (gguf.h's GgufValue): the typed reads and the convenience constructors.
// The value types are those of ggml's docs/gguf.md (gguf_type); the reader and writer of whole
// files live in gguf.cc.
#include <cstdint>
#include <limits>
#include <utility>

#include "core/error.h"
#include "model/loader/gguf.h"

namespace inferd {

namespace {

const char* type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
      return "uint8";
    case GgufValueType::kInt8:
      return "int8";
    case GgufValueType::kUint16:
      return "uint16";
    case GgufValueType::kInt16:
      return "int16";
    case GgufValueType::kUint32:
      return "uint32";
    case GgufValueType::kInt32:
      return "int32";
    case GgufValueType::kFloat32:
      return "float32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "uint64";
    case GgufValueType::kInt64:
      return "int64";
    case GgufValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

bool is_integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return true;
    default:
      return false;
  }
}

std::string shape_of(const GgufValue& v) {
  if (v.is_array()) return fmt::format("an array of {}", type_name(v.elem_type));
  return fmt::format("a {}", type_name(v.type));
}

}  // namespace

size_t GgufValue::array_size() const {
  if (!is_array()) return 0;
  switch (elem_type) {
    case GgufValueType::kString:
      return strings.size();
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      return floats.size();
    case GgufValueType::kBool:
      return bools.size();
    default:
      return ints.size();
  }
}

int64_t GgufValue::as_int(const std::string& key) const {
  if (!is_array()) {
    if (const auto* i = std::get_if<int64_t>(&scalar)) return *i;
    if (const auto* u = std::get_if<uint64_t>(&scalar)) {
      if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail("GGUF key '{}': value {} is too large for an int64", key, *u);
      }
      return static_cast<int64_t>(*u);
    }
  }
  fail("GGUF key '{}': expected an integer, got {}", key, shape_of(*this));
}

double GgufValue::as_float(const std::string& key) const {
  if (!is_array()) {
    if (const auto* d = std::get_if<double>(&scalar)) return *d;
    if (const auto* i = std::get_if<int64_t>(&scalar)) return static_cast<double>(*i);
    if (const auto* u = std::get_if<uint64_t>(&scalar)) return static_cast<double>(*u);
  }
  fail("GGUF key '{}': expected a number, got {}", key, shape_of(*this));
}

bool GgufValue::as_bool(const std::string& key) const {
  if (!is_array()) {
    if (const auto* b = std::get_if<bool>(&scalar)) return *b;
  }
  fail("GGUF key '{}': expected a bool, got {}", key, shape_of(*this));
}

const std::string& GgufValue::as_string(const std::string& key) const {
  if (!is_array()) {
    if (const auto* s = std::get_if<std::string>(&scalar)) return *s;
  }
  fail("GGUF key '{}': expected a string, got {}", key, shape_of(*this));
}

GgufValue gguf_string(std::string s) {
  GgufValue v;
  v.type = GgufValueType::kString;
  v.scalar = std::move(s);
  return v;
}

GgufValue gguf_u32(uint32_t x) {
  GgufValue v;
  v.type = GgufValueType::kUint32;
  v.scalar = static_cast<uint64_t>(x);
  return v;
}

GgufValue gguf_i32(int32_t x) {
  GgufValue v;
  v.type = GgufValueType::kInt32;
  v.scalar = static_cast<int64_t>(x);
  return v;
}

GgufValue gguf_u64(uint64_t x) {
  GgufValue v;
  v.type = GgufValueType::kUint64;
  v.scalar = x;
  return v;
}

GgufValue gguf_f32(float x) {
  GgufValue v;
  v.type = GgufValueType::kFloat32;
  v.scalar = static_cast<double>(x);
  return v;
}

GgufValue gguf_bool(bool x) {
  GgufValue v;
  v.type = GgufValueType::kBool;
  v.scalar = x;
  return v;
}

GgufValue gguf_strings(std::vector<std::string> s) {
  GgufValue v;
  v.type = GgufValueType::kArray;
  v.elem_type = GgufValueType::kString;
  v.strings = std::move(s);
  return v;
}

GgufValue gguf_ints(GgufValueType elem, std::vector<int64_t> x) {
  if (!is_integer_type(elem)) {
    fail("gguf_ints: element type {} is not an integer type", type_name(elem));
  }
  GgufValue v;
  v.type = GgufValueType::kArray;
  v.elem_type = elem;
  v.ints = std::move(x);
  return v;
}

GgufValue gguf_floats(std::vector<double> x) {
  GgufValue v;
  v.type = GgufValueType::kArray;
  v.elem_type = GgufValueType::kFloat32;
  v.floats = std::move(x);
  return v;
}

}  // namespace inferd
