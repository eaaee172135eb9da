// The GGUF reader (model/loader/gguf.h): parses the header, the metadata key/values and the tensor
// table of a mapped file, checks every count and offset against the file's size before using it,
// and exposes the tensors as views into the mapping. Split sets are opened part by part.
//
// Published description followed: ggml's docs/gguf.md (the GGUF specification, versions 2 and 3),
// and llama.cpp's split naming (`NAME-%05d-of-%05d.gguf`, keys split.no / split.count /
// split.tensors.count).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <string_view>

#include "core/error.h"
#include "model/loader/gguf.h"

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader assumes a little-endian host");

namespace inferd {

namespace {

// The smallest encodings, used to bound counts by the bytes left before allocating anything.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // key length, value type, a 1-byte value
constexpr uint64_t kMinTensorBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint64_t kMaxReserve = 1 << 18;  // elements reserved before any is read

// A key or tensor name as an error message shows it: control bytes escaped, at most 80 bytes (the
// names of a corrupt file can be anything).
std::string shown(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += c < 0x20 || c == 0x7f ? fmt::format("\\x{:02x}", c) : std::string(1, s[i]);
  }
  return s.size() > 80 ? out + "..." : out;
}

// A bounds-checked cursor over the bytes of one file.
class Cursor {
 public:
  Cursor(const char* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > left()) {
      fail("'{}': truncated GGUF file: {} at offset {} needs {} bytes, the file ends at {}", path_,
           what, pos_, n, size_);
    }
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const std::string& what) {
    const uint64_t len = read<uint64_t>(what + " (its length)");
    if (len > left()) {
      fail(
          "'{}': truncated or corrupt GGUF file: {} at offset {} has string length {}, more than "
          "the {} bytes left in the file",
          path_, what, pos_ - 8, len, left());
    }
    std::string s(data_ + pos_, size_t(len));
    pos_ += size_t(len);
    return s;
  }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

// Bytes of one encoded element (strings: their length field only).
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    default:
      return 8;
  }
}

// Reads one integer element of type t, widened (signed types to int64, unsigned to uint64).
std::variant<int64_t, uint64_t> read_integer(Cursor& c, GgufValueType t, const std::string& what) {
  switch (t) {
    case GgufValueType::kUint8:
      return uint64_t(c.read<uint8_t>(what));
    case GgufValueType::kInt8:
      return int64_t(c.read<int8_t>(what));
    case GgufValueType::kUint16:
      return uint64_t(c.read<uint16_t>(what));
    case GgufValueType::kInt16:
      return int64_t(c.read<int16_t>(what));
    case GgufValueType::kUint32:
      return uint64_t(c.read<uint32_t>(what));
    case GgufValueType::kInt32:
      return int64_t(c.read<int32_t>(what));
    case GgufValueType::kUint64:
      return c.read<uint64_t>(what);
    default:
      return c.read<int64_t>(what);
  }
}

bool read_bool(Cursor& c, const std::string& path, const std::string& what) {
  const uint8_t b = c.read<uint8_t>(what);
  if (b > 1) fail("'{}': {} is a bool stored as {} (expected 0 or 1)", path, what, b);
  return b == 1;
}

GgufValueType value_type(uint32_t raw, const std::string& path, const std::string& what) {
  if (raw > uint32_t(GgufValueType::kFloat64)) {
    fail("'{}': {} has unknown value type {} (GGUF defines 0 to 12)", path, what, raw);
  }
  return GgufValueType(raw);
}

void read_array(Cursor& c, GgufValue& v, const std::string& path, const std::string& key) {
  const std::string what = fmt::format("metadata key '{}'", shown(key));
  v.elem_type = value_type(c.read<uint32_t>(what + " (its array type)"), path, what + " array");
  if (v.elem_type == GgufValueType::kArray) {
    fail("'{}': {} is an array of arrays, which inferd does not read (no model key uses them)",
         path, what);
  }
  const uint64_t n = c.read<uint64_t>(what + " (its array count)");
  if (n > c.left() / min_value_bytes(v.elem_type)) {
    fail(
        "'{}': truncated or corrupt GGUF file: {} has an array count of {} {} elements, more "
        "than the {} bytes left in the file could hold",
        path, what, n, gguf_value_type_name(v.elem_type), c.left());
  }
  const std::string elem = what + " (an array element)";
  // The count is bounded by the bytes left, but an element in memory is larger than in the file
  // (a std::string is 32 bytes, a uint8 becomes an int64): reserve a bounded amount up front.
  const size_t reserve = size_t(std::min<uint64_t>(n, kMaxReserve));
  if (v.elem_type == GgufValueType::kString) {
    v.strings.reserve(reserve);
    for (uint64_t i = 0; i < n; ++i) v.strings.push_back(c.string(elem));
  } else if (v.elem_type == GgufValueType::kBool) {
    v.bools.reserve(reserve);
    for (uint64_t i = 0; i < n; ++i) v.bools.push_back(read_bool(c, path, elem) ? 1 : 0);
  } else if (v.elem_type == GgufValueType::kFloat32 || v.elem_type == GgufValueType::kFloat64) {
    v.floats.reserve(reserve);
    for (uint64_t i = 0; i < n; ++i) {
      v.floats.push_back(v.elem_type == GgufValueType::kFloat32 ? double(c.read<float>(elem))
                                                                : c.read<double>(elem));
    }
  } else {
    v.ints.reserve(reserve);
    for (uint64_t i = 0; i < n; ++i) {
      const auto x = read_integer(c, v.elem_type, elem);
      if (const uint64_t* u = std::get_if<uint64_t>(&x)) {
        if (*u > uint64_t(std::numeric_limits<int64_t>::max())) {
          fail("'{}': {} element {} is {}, above the largest int64", path, what, i, *u);
        }
        v.ints.push_back(int64_t(*u));
      } else {
        v.ints.push_back(std::get<int64_t>(x));
      }
    }
  }
}

GgufValue read_value(Cursor& c, GgufValueType type, const std::string& path,
                     const std::string& key) {
  GgufValue v;
  v.type = type;
  const std::string what = fmt::format("metadata key '{}'", shown(key));
  if (type == GgufValueType::kArray) {
    read_array(c, v, path, key);
  } else if (type == GgufValueType::kString) {
    v.scalar = c.string(what);
  } else if (type == GgufValueType::kBool) {
    v.scalar = read_bool(c, path, what);
  } else if (type == GgufValueType::kFloat32) {
    v.scalar = double(c.read<float>(what));
  } else if (type == GgufValueType::kFloat64) {
    v.scalar = c.read<double>(what);
  } else {
    std::visit([&](auto x) { v.scalar = x; }, read_integer(c, type, what));
  }
  return v;
}

// An integer metadata value as int64, or an Error naming the file and the key.
int64_t int_value(const GgufValue& v, const std::string& key, const std::string& path) {
  if (v.is_array() || !gguf_is_integer_type(v.type)) {
    fail("'{}': {} is a {}, expected an integer", path, key,
         v.is_array() ? std::string("array") : std::string(gguf_value_type_name(v.type)));
  }
  if (const uint64_t* u = std::get_if<uint64_t>(&v.scalar)) {
    if (*u > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail("'{}': {} is {}, out of range", path, key, *u);
    }
  }
  return v.as_int(key);
}

uint32_t alignment_of(const GgufMetadata& kv, const std::string& path) {
  const auto it = kv.find("general.alignment");
  if (it == kv.end()) return kDefaultAlignment;
  const int64_t a = int_value(it->second, "general.alignment", path);
  if (a <= 0 || a > (int64_t(1) << 30) || !std::has_single_bit(uint64_t(a))) {
    fail("'{}': general.alignment is {}, expected a power of two (at most 2^30)", path, a);
  }
  return uint32_t(a);
}

// The tensor table's entry for one tensor, before its data is located.
struct RawTensor {
  GgufTensorInfo info;
  uint64_t offset = 0;  // relative to the data section
};

RawTensor read_tensor_info(Cursor& c, const std::string& path, uint64_t index) {
  RawTensor t;
  const std::string what = fmt::format("tensor {} of the tensor table", index);
  t.info.name = c.string(what + " (its name)");
  const std::string named = fmt::format("tensor '{}'", shown(t.info.name));
  const uint32_t n_dims = c.read<uint32_t>(named + " (its n_dims)");
  if (n_dims == 0 || n_dims > 4) {
    fail("'{}': {} has {} dimensions (expected 1 to 4)", path, named, n_dims);
  }
  std::vector<int64_t> ne(n_dims);
  int64_t elems = 1;
  for (uint32_t i = 0; i < n_dims; ++i) {
    const uint64_t d = c.read<uint64_t>(named + " (its dimensions)");
    if (d == 0 || d > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail("'{}': {} has dimension ne[{}] = {} ({}; expected a positive size)", path, named, i,
           int64_t(d), d == 0 ? "zero" : "negative as int64");
    }
    ne[i] = int64_t(d);
    if (__builtin_mul_overflow(elems, ne[i], &elems)) {
      fail("'{}': {} has more elements than an int64 holds", path, named);
    }
  }
  const uint32_t type = c.read<uint32_t>(named + " (its type)");
  const std::optional<ggml::TypeTraits> tr = ggml::type_traits(type);
  if (!tr) fail("'{}': {} has unknown ggml type id {}", path, named, type);
  t.info.type = ggml::Type(type);
  if (ne[0] % tr->block_elems != 0) {
    fail("'{}': {} of type {} has rows of {} elements, not a multiple of its block size {}", path,
         named, tr->name, ne[0], tr->block_elems);
  }
  t.offset = c.read<uint64_t>(named + " (its data offset)");
  const int64_t rows = elems / ne[0];
  int64_t row = 0;  // row_bytes, with the overflow checked (a lying ne[0] of 2^62 f32s)
  if (__builtin_mul_overflow(ne[0] / tr->block_elems, tr->block_bytes, &row) ||
      __builtin_mul_overflow(rows, row, &t.info.nbytes)) {
    fail("'{}': {} has more bytes than an int64 holds", path, named);
  }
  t.info.shape.assign(ne.rbegin(), ne.rend());
  return t;
}

// Places each tensor in the data section and checks alignment, bounds and overlaps.
void locate_tensors(std::vector<RawTensor>& raw, const MappedFile& file, size_t data_start,
                    uint32_t alignment) {
  const std::string& path = file.path();
  const uint64_t size = file.size();
  for (RawTensor& t : raw) {
    if (t.offset % alignment != 0) {
      fail("'{}': tensor '{}' has a misaligned data offset {} (not a multiple of the alignment {})",
           path, shown(t.info.name), t.offset, alignment);
    }
    const uint64_t start = data_start + t.offset;
    if (data_start > size || t.offset > size - data_start ||
        uint64_t(t.info.nbytes) > size - start) {
      fail(
          "'{}': truncated GGUF file: tensor '{}' data (offset {} of the data section at {}, {} "
          "bytes) runs past the end of the file at {}",
          path, shown(t.info.name), t.offset, data_start, t.info.nbytes, size);
    }
    t.info.data = file.data() + start;
  }
  std::vector<const RawTensor*> order;
  for (const RawTensor& t : raw) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const RawTensor* a, const RawTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const RawTensor& a = *order[i - 1];
    const RawTensor& b = *order[i];
    if (a.offset + uint64_t(a.info.nbytes) > b.offset) {
      fail("'{}': tensors '{}' (bytes {}..{}) and '{}' (from {}) overlap in the data section", path,
           a.info.name, a.offset, a.offset + uint64_t(a.info.nbytes), b.info.name, b.offset);
    }
  }
}

// One file of a set, parsed.
struct GgufPart {
  uint32_t version = 0;
  GgufMetadata kv;
  std::vector<GgufTensorInfo> tensors;
  size_t data_start = 0;
};

GgufPart parse_gguf_part(const std::shared_ptr<MappedFile>& file, int file_index) {
  const std::string& path = file->path();
  Cursor c(file->data(), file->size(), path);
  c.need(4, "the magic");
  if (std::memcmp(file->data(), "GGUF", 4) != 0) {
    const auto* b = reinterpret_cast<const uint8_t*>(file->data());
    fail("'{}' is not a GGUF file: bad magic {:02x} {:02x} {:02x} {:02x} (expected 'GGUF')", path,
         b[0], b[1], b[2], b[3]);
  }
  c.read<uint32_t>("the magic");
  GgufPart part;
  part.version = c.read<uint32_t>("the version");
  if (part.version == 1) {
    fail(
        "'{}': GGUF version 1 (the August 2023 draft) is not supported; versions 2 and 3 are "
        "(convert the model again with a current llama.cpp)",
        path);
  }
  if (part.version == 0x02000000u || part.version == 0x03000000u) {
    fail(
        "'{}' is a big-endian GGUF file (its version reads {} byte-swapped); inferd reads "
        "little-endian GGUF files only",
        path, __builtin_bswap32(part.version));
  }
  if (part.version != 2 && part.version != 3) {
    fail("'{}': GGUF version {} is not supported (expected 2 or 3)", path, part.version);
  }
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  if (n_tensors > c.left() / kMinTensorBytes) {
    fail(
        "'{}': truncated or corrupt GGUF file: tensor count {} is more than the {} bytes left "
        "could hold",
        path, n_tensors, c.left());
  }
  if (n_kv > c.left() / kMinKvBytes) {
    fail(
        "'{}': truncated or corrupt GGUF file: metadata count {} is more than the {} bytes "
        "left could hold",
        path, n_kv, c.left());
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.string(fmt::format("metadata key {}", i));
    const std::string what = fmt::format("metadata key '{}'", shown(key));
    const GgufValueType type = value_type(c.read<uint32_t>(what + " (its type)"), path, what);
    GgufValue v = read_value(c, type, path, key);
    if (!part.kv.emplace(key, std::move(v)).second) {
      fail("'{}': duplicate metadata key '{}'", path, shown(key));
    }
  }
  const uint32_t alignment = alignment_of(part.kv, path);
  std::vector<RawTensor> raw;
  raw.reserve(size_t(std::min<uint64_t>(n_tensors, kMaxReserve)));
  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    raw.push_back(read_tensor_info(c, path, i));
    if (!names.insert(raw.back().info.name).second) {
      fail("'{}': duplicate tensor name '{}'", path, shown(raw.back().info.name));
    }
  }
  const size_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  locate_tensors(raw, *file, data_start, alignment);
  part.tensors.reserve(raw.size());
  for (RawTensor& t : raw) {
    t.info.file_index = file_index;
    part.tensors.push_back(std::move(t.info));
  }
  part.data_start = data_start;
  return part;
}

// `PREFIX-00002-of-00003.gguf` (llama.cpp's split naming, as gguf-split writes it).
struct SplitName {
  std::string prefix;
  int no = 0;
  int count = 0;
  std::string part(int k) const {
    return fmt::format("{}-{:05d}-of-{:05d}.gguf", prefix, k, count);
  }
};

std::optional<SplitName> split_name(const std::string& path) {
  constexpr std::string_view kTail = "-00000-of-00000.gguf";  // the shape: digits where 0 is
  if (path.size() <= kTail.size()) return std::nullopt;
  const std::string_view tail = std::string_view(path).substr(path.size() - kTail.size());
  for (size_t i = 0; i < kTail.size(); ++i) {
    const bool digit = tail[i] >= '0' && tail[i] <= '9';
    if (kTail[i] == '0' ? !digit : tail[i] != kTail[i]) return std::nullopt;
  }
  return SplitName{path.substr(0, path.size() - kTail.size()),
                   std::stoi(std::string(tail.substr(1, 5))),
                   std::stoi(std::string(tail.substr(10, 5)))};
}

// An integer split.* key of a part, or -1 when it is absent.
int64_t split_key(const GgufMetadata& kv, const std::string& key, const std::string& path) {
  const auto it = kv.find(key);
  if (it == kv.end()) return -1;
  const int64_t v = int_value(it->second, key, path);
  if (v < 0) fail("'{}': {} is {}, expected a non-negative count", path, key, v);
  return v;
}

// The number of parts of the set whose first part is `path` (1 for a single file).
int split_count(const GgufMetadata& kv, const std::string& path) {
  const std::optional<SplitName> name = split_name(path);
  const int64_t count = split_key(kv, "split.count", path);
  const int64_t no = split_key(kv, "split.no", path);
  if ((name && name->no != 1) || no > 0) {
    fail("'{}' is part {} of a split GGUF set, not its first: open the first part{}", path,
         no > 0 ? no + 1 : name->no, name ? fmt::format(", '{}'", name->part(1)) : "");
  }
  if (!(name && name->count > 1) && count <= 1) return 1;
  if (!name) {
    fail(
        "'{}': split.count says {} parts, but the file name does not end in -00001-of-{:05d}.gguf "
        "(the names of split sets)",
        path, count, count);
  }
  if (count != name->count) {
    fail("'{}': the name says a split set of {} parts, but split.count is {}", path, name->count,
         count < 0 ? std::string("missing") : std::to_string(count));
  }
  return name->count;
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.path_ = path;
  f.files_.push_back(MappedFile::open(path));
  GgufPart first = parse_gguf_part(f.files_[0], 0);
  const int count = split_count(first.kv, path);
  f.version_ = first.version;
  f.kv_ = std::move(first.kv);
  f.tensors_ = std::move(first.tensors);
  for (int k = 2; k <= count; ++k) {
    const std::string part_path = split_name(path)->part(k);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(part_path, ec)) {
      fail("split GGUF set '{}': part {} of {}, '{}', is missing", path, k, count, part_path);
    }
    f.files_.push_back(MappedFile::open(part_path));
    GgufPart part = parse_gguf_part(f.files_.back(), k - 1);
    const int64_t no = split_key(part.kv, "split.no", part_path);
    const int64_t n = split_key(part.kv, "split.count", part_path);
    if (no != k - 1 || n != count) {
      fail(
          "'{}': part {} of the split set '{}' has split.no {} and split.count {} (expected {} "
          "and {})",
          part_path, k, path, no, n, k - 1, count);
    }
    for (GgufTensorInfo& t : part.tensors) f.tensors_.push_back(std::move(t));
  }
  const int64_t expected = split_key(f.kv_, "split.tensors.count", path);
  if (count > 1 && expected >= 0 && size_t(expected) != f.tensors_.size()) {
    fail("split GGUF set '{}': split.tensors.count is {}, but its {} parts hold {} tensors", path,
         expected, count, f.tensors_.size());
  }
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    if (!f.by_name_.emplace(f.tensors_[i].name, i).second) {
      fail("split GGUF set '{}': tensor '{}' is in more than one part ('{}')", path,
           f.tensors_[i].name, f.files_[size_t(f.tensors_[i].file_index)]->path());
    }
  }
  return f;
}

std::string_view gguf_value_type_name(GgufValueType t) {
  static constexpr std::string_view kNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                                "int32",  "float32", "bool",   "string", "array",
                                                "uint64", "int64",   "float64"};
  const auto i = size_t(t);
  return i < std::size(kNames) ? kNames[i] : "unknown type";
}

namespace {

std::string describe(const GgufValue& v) {
  if (!v.is_array()) return std::string(gguf_value_type_name(v.type));
  return fmt::format("array of {}", gguf_value_type_name(v.elem_type));
}

}  // namespace

size_t GgufValue::array_size() const {
  if (!is_array()) return 0;
  switch (elem_type) {
    case GgufValueType::kString:
      return strings.size();
    case GgufValueType::kBool:
      return bools.size();
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      return floats.size();
    default:
      return ints.size();
  }
}

int64_t GgufValue::as_int(const std::string& key) const {
  if (!is_array()) {
    if (const int64_t* i = std::get_if<int64_t>(&scalar)) return *i;
    if (const uint64_t* u = std::get_if<uint64_t>(&scalar)) {
      if (*u > uint64_t(std::numeric_limits<int64_t>::max())) {
        fail("GGUF metadata key '{}' is {}, above the largest int64", key, *u);
      }
      return int64_t(*u);
    }
  }
  fail("GGUF metadata key '{}' is a {}, expected an integer", key, describe(*this));
}

double GgufValue::as_float(const std::string& key) const {
  if (!is_array()) {
    if (const double* d = std::get_if<double>(&scalar)) return *d;
    if (const int64_t* i = std::get_if<int64_t>(&scalar)) return double(*i);
    if (const uint64_t* u = std::get_if<uint64_t>(&scalar)) return double(*u);
  }
  fail("GGUF metadata key '{}' is a {}, expected a number", key, describe(*this));
}

bool GgufValue::as_bool(const std::string& key) const {
  if (!is_array()) {
    if (const bool* b = std::get_if<bool>(&scalar)) return *b;
  }
  fail("GGUF metadata key '{}' is a {}, expected a bool", key, describe(*this));
}

const std::string& GgufValue::as_string(const std::string& key) const {
  if (!is_array()) {
    if (const std::string* s = std::get_if<std::string>(&scalar)) return *s;
  }
  fail("GGUF metadata key '{}' is a {}, expected a string", key, describe(*this));
}

bool GgufFile::is_gguf(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  char magic[4] = {};
  const bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::read(fd, magic, 4) == 4 &&
                  std::memcmp(magic, "GGUF", 4) == 0;
  ::close(fd);
  return ok;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("'{}': GGUF metadata key '{}' is missing", path_, key);
  return *v;
}

std::string GgufFile::architecture() const {
  const GgufValue& v = get("general.architecture");
  if (v.is_array() || v.type != GgufValueType::kString) {
    fail("'{}': general.architecture is a {}, expected a string", path_,
         gguf_value_type_name(v.type));
  }
  return v.as_string("general.architecture");
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (t == nullptr) fail("'{}': GGUF file has no tensor '{}'", path_, name);
  return *t;
}

const std::shared_ptr<MappedFile>& GgufFile::file_of(const GgufTensorInfo& t) const {
  INFERD_CHECK(t.file_index >= 0 && size_t(t.file_index) < files_.size(),
               "tensor '{}' names file {} of {}", t.name, t.file_index, files_.size());
  return files_[size_t(t.file_index)];
}

std::vector<std::string> GgufFile::paths() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

bool gguf_is_integer_type(GgufValueType t) {
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

}  // namespace inferd
