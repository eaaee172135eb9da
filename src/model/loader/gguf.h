// GGUF files (llama.cpp's single-file model format, versions 2 and 3, little-endian): the
// metadata key/values, the tensor table and the tensor data, read by mmap (tensors are views into
// the mapping). Split sets (`name-00001-of-00003.gguf`, with `split.count` / `split.no` keys) open
// as one file: metadata from the first, tensors from all. A writer makes files for tests and tools.
//
// Published description followed: ggml's docs/gguf.md (the GGUF specification).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/ggml_types.h"
#include "core/mmap_file.h"

namespace inferd {

// GGUF metadata value types (gguf_type; the numbers are the file format).
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// One metadata value. Scalars keep their stored type; arrays keep the element type and the values
// (arrays of arrays are rejected by the reader: no model key uses them).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint32;
  GgufValueType elem_type = GgufValueType::kUint32;  // kArray only
  // Scalars: one of these by `type` (all integers widen to int64/uint64, floats to double).
  std::variant<int64_t, uint64_t, double, bool, std::string> scalar;
  // Arrays: exactly one of these is filled, by elem_type.
  std::vector<std::string> strings;
  std::vector<int64_t> ints;   // every integer element type (uint64 values above INT64_MAX: error)
  std::vector<double> floats;  // float32 / float64 elements
  std::vector<uint8_t> bools;

  bool is_array() const { return type == GgufValueType::kArray; }
  size_t array_size() const;
  // Typed reads; each throws Error naming `key` (for the message) when the value has another
  // shape (any integer type reads as an integer; integers also read as floats).
  int64_t as_int(const std::string& key) const;
  double as_float(const std::string& key) const;
  bool as_bool(const std::string& key) const;
  const std::string& as_string(const std::string& key) const;
};

using GgufMetadata = std::map<std::string, GgufValue>;

// True for the eight integer value types.
bool gguf_is_integer_type(GgufValueType t);

// "uint32", "string", ... (the names gguf.md gives the value types).
std::string_view gguf_value_type_name(GgufValueType t);

struct GgufTensorInfo {
  std::string name;
  ggml::Type type = ggml::Type::kF32;
  std::vector<int64_t> shape;  // row-major (GGUF stores ne[] fastest-first: this is reversed)
  // Inside the mapping of its file, at a multiple of general.alignment from the (page-aligned)
  // start of the mapping: so aligned in memory to at least 32 bytes by default.
  const char* data = nullptr;
  int64_t nbytes = 0;
  int file_index = 0;  // which file of a split set
};

class GgufFile {
 public:
  // `path`: a .gguf file, or the first file of a split set (the others are found by name).
  // Throws Error naming the file and the problem (bad magic, version 1 or unknown, truncated
  // header or data, misaligned or overlapping tensor data, duplicate keys or tensor names, an
  // unknown tensor type id, a missing split part).
  static GgufFile open(const std::string& path);
  // True when the file starts with the GGUF magic (any version).
  static bool is_gguf(const std::string& path);

  uint32_t version() const { return version_; }
  const GgufMetadata& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  const GgufValue& get(const std::string& key) const;  // throws Error naming the key and file
  // general.architecture ("llama", "qwen2", ...).
  std::string architecture() const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const GgufTensorInfo& tensor(const std::string& name) const;  // throws Error naming it
  // The mapping holding a tensor's data (shared: views keep it alive).
  const std::shared_ptr<MappedFile>& file_of(const GgufTensorInfo& t) const;
  const std::string& path() const { return path_; }
  std::vector<std::string> paths() const;  // every file of the set

 private:
  uint32_t version_ = 0;
  std::string path_;
  GgufMetadata kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::vector<std::shared_ptr<MappedFile>> files_;
};

// Writes a GGUF v3 file (alignment from `general.alignment` when set, else 32). Tensors are
// given row-major with their ggml type and raw bytes (rows * row_bytes(type, cols) bytes).
struct GgufWriteTensor {
  std::string name;
  ggml::Type type = ggml::Type::kF32;
  std::vector<int64_t> shape;  // row-major
  std::vector<uint8_t> bytes;
};
void write_gguf(const std::string& path, const GgufMetadata& kv,
                const std::vector<GgufWriteTensor>& tensors);

// Convenience constructors for metadata values.
GgufValue gguf_string(std::string s);
GgufValue gguf_u32(uint32_t v);
GgufValue gguf_i32(int32_t v);
GgufValue gguf_u64(uint64_t v);
GgufValue gguf_f32(float v);
GgufValue gguf_bool(bool v);
GgufValue gguf_strings(std::vector<std::string> v);
GgufValue gguf_ints(GgufValueType elem, std::vector<int64_t> v);
GgufValue gguf_floats(std::vector<double> v);       // float32 elements
GgufValue gguf_int(GgufValueType type, int64_t v);  // a scalar of any integer type
GgufValue gguf_f64(double v);
GgufValue gguf_bools(std::vector<bool> v);

}  // namespace inferd
