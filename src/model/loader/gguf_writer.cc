// The GGUF writer (model/loader/gguf.h): writes version-3 little-endian files, metadata in key
// order, tensors in the order given, each tensor's data aligned to `general.alignment` (default
// 32) and padded with zeros. Used by tests and tools to make files; and the metadata value
// constructors.
//
// Published description followed: ggml's docs/gguf.md (the GGUF specification, version 3).
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <utility>

#include "core/error.h"
#include "model/loader/gguf.h"

namespace inferd {

namespace {

class Out {
 public:
  template <typename T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes_.append(b, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_ += s;
  }
  void pad_to(size_t alignment) {
    bytes_.append((alignment - bytes_.size() % alignment) % alignment, '\0');
  }
  void append(const std::vector<uint8_t>& b) {
    bytes_.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// The range of an integer type: the smallest value and the largest.
std::pair<int64_t, uint64_t> integer_range(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
      return {0, 0xFF};
    case GgufValueType::kInt8:
      return {-128, 127};
    case GgufValueType::kUint16:
      return {0, 0xFFFF};
    case GgufValueType::kInt16:
      return {-32768, 32767};
    case GgufValueType::kUint32:
      return {0, 0xFFFFFFFFu};
    case GgufValueType::kInt32:
      return {std::numeric_limits<int32_t>::min(), uint64_t(std::numeric_limits<int32_t>::max())};
    case GgufValueType::kUint64:
      return {0, std::numeric_limits<uint64_t>::max()};
    default:
      return {std::numeric_limits<int64_t>::min(), uint64_t(std::numeric_limits<int64_t>::max())};
  }
}

// Writes the integer x as the integer type t, checking that it fits.
void put_integer(Out& out, GgufValueType t, std::variant<int64_t, uint64_t> x,
                 const std::string& key) {
  const auto [lo, hi] = integer_range(t);
  const int64_t* i = std::get_if<int64_t>(&x);
  const bool neg = i != nullptr && *i < 0;
  const uint64_t u = neg ? 0 : (i != nullptr ? uint64_t(*i) : std::get<uint64_t>(x));
  if ((neg && *i < lo) || (!neg && u > hi)) {
    fail("write_gguf: metadata key '{}': {} does not fit a {}", key,
         neg ? std::to_string(*i) : std::to_string(u), gguf_value_type_name(t));
  }
  // Two's complement: the low bytes of the value are its encoding in any width.
  const uint64_t bits = neg ? uint64_t(*i) : u;
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
      out.put<uint8_t>(uint8_t(bits));
      break;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      out.put<uint16_t>(uint16_t(bits));
      break;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
      out.put<uint32_t>(uint32_t(bits));
      break;
    default:
      out.put<uint64_t>(bits);
      break;
  }
}

void put_scalar(Out& out, const GgufValue& v, const std::string& key) {
  auto wrong = [&]() {
    fail("write_gguf: metadata key '{}' is declared {} but holds another kind of value", key,
         gguf_value_type_name(v.type));
  };
  if (v.type == GgufValueType::kString) {
    if (!std::holds_alternative<std::string>(v.scalar)) wrong();
    out.put_string(std::get<std::string>(v.scalar));
  } else if (v.type == GgufValueType::kBool) {
    if (!std::holds_alternative<bool>(v.scalar)) wrong();
    out.put<uint8_t>(std::get<bool>(v.scalar) ? 1 : 0);
  } else if (v.type == GgufValueType::kFloat32 || v.type == GgufValueType::kFloat64) {
    if (!std::holds_alternative<double>(v.scalar)) wrong();
    const double d = std::get<double>(v.scalar);
    v.type == GgufValueType::kFloat32 ? out.put<float>(float(d)) : out.put<double>(d);
  } else if (gguf_is_integer_type(v.type)) {
    if (const int64_t* i = std::get_if<int64_t>(&v.scalar)) {
      put_integer(out, v.type, *i, key);
    } else if (const uint64_t* u = std::get_if<uint64_t>(&v.scalar)) {
      put_integer(out, v.type, *u, key);
    } else {
      wrong();
    }
  } else {
    fail("write_gguf: metadata key '{}' has unknown value type {}", key, uint32_t(v.type));
  }
}

void put_array(Out& out, const GgufValue& v, const std::string& key) {
  const GgufValueType e = v.elem_type;
  if (e == GgufValueType::kArray || e > GgufValueType::kFloat64) {
    fail("write_gguf: metadata key '{}': arrays of {} are not written", key,
         gguf_value_type_name(e));
  }
  out.put<uint32_t>(uint32_t(e));
  out.put<uint64_t>(v.array_size());
  if (e == GgufValueType::kString) {
    for (const std::string& s : v.strings) out.put_string(s);
  } else if (e == GgufValueType::kBool) {
    for (uint8_t b : v.bools) out.put<uint8_t>(b ? 1 : 0);
  } else if (e == GgufValueType::kFloat32) {
    for (double d : v.floats) out.put<float>(float(d));
  } else if (e == GgufValueType::kFloat64) {
    for (double d : v.floats) out.put<double>(d);
  } else {
    for (int64_t i : v.ints) put_integer(out, e, i, key);
  }
}

uint32_t write_alignment(const GgufMetadata& kv) {
  const auto it = kv.find("general.alignment");
  if (it == kv.end()) return 32;
  const int64_t a = it->second.as_int("general.alignment");
  if (a <= 0 || a > (int64_t(1) << 30) || !std::has_single_bit(uint64_t(a))) {
    fail("write_gguf: general.alignment is {}, expected a power of two", a);
  }
  return uint32_t(a);
}

void put_tensor_info(Out& out, const GgufWriteTensor& t, uint64_t offset) {
  const ggml::TypeTraits& tr = ggml::traits(t.type);
  if (t.shape.empty() || t.shape.size() > 4) {
    fail("write_gguf: tensor '{}' has {} dimensions (expected 1 to 4)", t.name, t.shape.size());
  }
  int64_t elems = 1;
  for (int64_t d : t.shape) {
    if (d <= 0) fail("write_gguf: tensor '{}' has a dimension of {}", t.name, d);
    elems *= d;
  }
  const int64_t cols = t.shape.back();
  if (cols % tr.block_elems != 0) {
    fail("write_gguf: tensor '{}' ({}) has rows of {} elements, not a multiple of {}", t.name,
         tr.name, cols, tr.block_elems);
  }
  const int64_t nbytes = elems / cols * ggml::row_bytes(t.type, cols);
  if (int64_t(t.bytes.size()) != nbytes) {
    fail("write_gguf: tensor '{}' has {} bytes, its shape and type need {}", t.name, t.bytes.size(),
         nbytes);
  }
  out.put_string(t.name);
  out.put<uint32_t>(uint32_t(t.shape.size()));
  for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) out.put<uint64_t>(uint64_t(*it));
  out.put<uint32_t>(uint32_t(t.type));
  out.put<uint64_t>(offset);
}

}  // namespace

void write_gguf(const std::string& path, const GgufMetadata& kv,
                const std::vector<GgufWriteTensor>& tensors) {
  const uint32_t alignment = write_alignment(kv);
  Out out;
  out.put<uint32_t>(0x46554747u);  // "GGUF"
  out.put<uint32_t>(3);
  out.put<uint64_t>(tensors.size());
  out.put<uint64_t>(kv.size());
  for (const auto& [key, v] : kv) {
    out.put_string(key);
    out.put<uint32_t>(uint32_t(v.type));
    v.is_array() ? put_array(out, v, key) : put_scalar(out, v, key);
  }
  uint64_t offset = 0;
  for (const GgufWriteTensor& t : tensors) {
    put_tensor_info(out, t, offset);
    offset += (t.bytes.size() + alignment - 1) / alignment * alignment;
  }
  out.pad_to(alignment);
  for (const GgufWriteTensor& t : tensors) {
    out.append(t.bytes);
    out.pad_to(alignment);
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail("write_gguf: cannot create '{}': {}", path, std::strerror(errno));
  f.write(out.bytes().data(), std::streamsize(out.bytes().size()));
  f.close();
  if (!f) fail("write_gguf: cannot write '{}': {}", path, std::strerror(errno));
}

GgufValue gguf_string(std::string s) {
  GgufValue v;
  v.type = GgufValueType::kString;
  v.scalar = std::move(s);
  return v;
}

GgufValue gguf_int(GgufValueType type, int64_t x) {
  INFERD_CHECK(gguf_is_integer_type(type), "gguf_int: {} is not an integer type",
               gguf_value_type_name(type));
  GgufValue v;
  v.type = type;
  // As the reader widens them: unsigned types to uint64, signed ones to int64.
  const bool is_unsigned = type == GgufValueType::kUint8 || type == GgufValueType::kUint16 ||
                           type == GgufValueType::kUint32 || type == GgufValueType::kUint64;
  if (is_unsigned && x >= 0) {
    v.scalar = uint64_t(x);
  } else {
    v.scalar = x;
  }
  return v;
}

GgufValue gguf_u32(uint32_t x) {
  return gguf_int(GgufValueType::kUint32, x);
}
GgufValue gguf_i32(int32_t x) {
  return gguf_int(GgufValueType::kInt32, x);
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
  v.scalar = double(x);
  return v;
}

GgufValue gguf_f64(double x) {
  GgufValue v;
  v.type = GgufValueType::kFloat64;
  v.scalar = x;
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
  INFERD_CHECK(gguf_is_integer_type(elem), "gguf_ints: {} is not an integer type",
               gguf_value_type_name(elem));
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

GgufValue gguf_bools(std::vector<bool> x) {
  GgufValue v;
  v.type = GgufValueType::kArray;
  v.elem_type = GgufValueType::kBool;
  v.bools.assign(x.begin(), x.end());
  return v;
}

}  // namespace inferd
