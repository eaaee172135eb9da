// Issue 35: the GGUF reader and writer (model/loader/gguf.h). Round trips of every metadata value
// type and of tensors of several ggml types and ranks at alignments 32 and 64; split sets of three
// files; and a corpus of broken files (truncated at every byte, bad magic, version 1, big-endian,
// misaligned or overlapping data, unknown types, duplicates, absurd lengths), each of which must
// be an Error naming the file and the problem. A real llama.cpp vocabulary file is opened when
// INFERD_GGUF_REAL_FILE names one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/loader/gguf.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;

class Gguf : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("inferd_gguf_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = uint8_t(rng());
  return b;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The message of the Error that opening `path` throws ("" when it opens).
std::string error_of(const std::string& path) {
  try {
    GgufFile::open(path);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

void expect_error(const std::string& path, const std::string& word) {
  const std::string e = error_of(path);
  ASSERT_FALSE(e.empty()) << path << ": accepted";
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find(word), std::string::npos) << "expected '" << word << "' in: " << e;
}

// Hand-made GGUF bytes, for files the writer would never produce.
struct Bytes {
  std::string b;
  template <typename T>
  Bytes& put(T v) {
    char c[sizeof(T)];
    std::memcpy(c, &v, sizeof(T));
    b.append(c, sizeof(T));
    return *this;
  }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b += "GGUF";
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
  // ne: GGUF order (fastest first).
  Bytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t a) {
    b.append((a - b.size() % a) % a, '\0');
    return *this;
  }
  Bytes& data(size_t n) {
    b.append(n, '\x11');
    return *this;
  }
};

TEST_F(Gguf, EveryValueTypeRoundTrips) {
  GgufMetadata kv;
  kv["t.u8"] = gguf_int(GgufValueType::kUint8, 255);
  kv["t.i8"] = gguf_int(GgufValueType::kInt8, -128);
  kv["t.u16"] = gguf_int(GgufValueType::kUint16, 65535);
  kv["t.i16"] = gguf_int(GgufValueType::kInt16, -32768);
  kv["t.u32"] = gguf_u32(4000000000u);
  kv["t.i32"] = gguf_i32(-2000000000);
  kv["t.f32"] = gguf_f32(0.1f);
  kv["t.bool"] = gguf_bool(true);
  kv["t.string"] = gguf_string("héllo\nworld");
  kv["t.empty_string"] = gguf_string("");
  kv["t.u64"] = gguf_u64(18000000000000000000ull);
  kv["t.i64"] = gguf_int(GgufValueType::kInt64, -9000000000000000000ll);
  kv["t.f64"] = gguf_f64(1e300);
  kv["a.strings"] = gguf_strings({"a", "", "<|im_start|>", "▁the"});
  kv["a.u8"] = gguf_ints(GgufValueType::kUint8, {0, 1, 255});
  kv["a.i8"] = gguf_ints(GgufValueType::kInt8, {-128, 0, 127});
  kv["a.u16"] = gguf_ints(GgufValueType::kUint16, {65535});
  kv["a.i16"] = gguf_ints(GgufValueType::kInt16, {-1});
  kv["a.u32"] = gguf_ints(GgufValueType::kUint32, {4294967295ll, 3});
  kv["a.i32"] = gguf_ints(GgufValueType::kInt32, {-5, 151643, 151645});
  kv["a.u64"] = gguf_ints(GgufValueType::kUint64, {9223372036854775807ll});
  kv["a.i64"] = gguf_ints(GgufValueType::kInt64, {-9223372036854775807ll - 1});
  kv["a.f32"] = gguf_floats({0.5, -1.25, 1e-6});
  GgufValue f64s = gguf_floats({1e-300, 3.0});
  f64s.elem_type = GgufValueType::kFloat64;
  kv["a.f64"] = f64s;
  kv["a.bools"] = gguf_bools({true, false, true});
  kv["a.empty"] = gguf_ints(GgufValueType::kInt32, {});
  write_gguf(path("values.gguf"), kv, {});

  const GgufFile f = GgufFile::open(path("values.gguf"));
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata().size(), kv.size());
  for (const auto& [key, want] : kv) {
    const GgufValue& got = f.get(key);
    EXPECT_EQ(got.type, want.type) << key;
    if (want.is_array()) {
      EXPECT_EQ(got.elem_type, want.elem_type) << key;
      EXPECT_EQ(got.array_size(), want.array_size()) << key;
      EXPECT_EQ(got.strings, want.strings) << key;
      EXPECT_EQ(got.ints, want.ints) << key;
      EXPECT_EQ(got.bools, want.bools) << key;
      ASSERT_EQ(got.floats.size(), want.floats.size()) << key;
      for (size_t i = 0; i < want.floats.size(); ++i) {
        const double w = want.elem_type == GgufValueType::kFloat32 ? double(float(want.floats[i]))
                                                                   : want.floats[i];
        EXPECT_EQ(got.floats[i], w) << key << "[" << i << "]";
      }
    } else {
      EXPECT_EQ(got.scalar, want.scalar) << key;
    }
  }
  EXPECT_EQ(f.get("t.u8").as_int("t.u8"), 255);
  EXPECT_EQ(f.get("t.i32").as_int("t.i32"), -2000000000);
  EXPECT_EQ(f.get("t.u32").as_float("t.u32"), 4000000000.0);
  EXPECT_EQ(f.get("t.f32").as_float("t.f32"), double(0.1f));
  EXPECT_TRUE(f.get("t.bool").as_bool("t.bool"));
  EXPECT_EQ(f.get("t.string").as_string("t.string"), "héllo\nworld");
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_TRUE(f.tensors().empty());
}

TEST_F(Gguf, TypedReadsOfTheWrongShapeNameTheKey) {
  GgufMetadata kv;
  kv["k.s"] = gguf_string("x");
  kv["k.a"] = gguf_ints(GgufValueType::kInt32, {1});
  kv["k.big"] = gguf_u64(18000000000000000000ull);
  write_gguf(path("typed.gguf"), kv, {});
  const GgufFile f = GgufFile::open(path("typed.gguf"));
  auto msg = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg([&] { f.get("k.s").as_int("k.s"); }).find("'k.s' is a string, expected an integer"),
            std::string::npos);
  EXPECT_NE(msg([&] { f.get("k.a").as_string("k.a"); }).find("array of int32"), std::string::npos);
  EXPECT_NE(msg([&] { f.get("k.big").as_int("k.big"); }).find("int64"), std::string::npos);
  EXPECT_NE(msg([&] { f.get("k.s").as_bool("k.s"); }).find("expected a bool"), std::string::npos);
  EXPECT_NE(msg([&] { f.get("missing.key"); }).find("'missing.key' is missing"), std::string::npos);
  EXPECT_NE(msg([&] { f.architecture(); }).find("general.architecture"), std::string::npos);
  EXPECT_NE(msg([&] { f.tensor("w"); }).find("no tensor 'w'"), std::string::npos);
}

std::vector<GgufWriteTensor> sample_tensors() {
  return {
      {"f32.1d", ggml::Type::kF32, {7}, random_bytes(7 * 4, 1)},
      {"f16.2d", ggml::Type::kF16, {3, 5}, random_bytes(3 * 5 * 2, 2)},
      {"q8_0.2d", ggml::Type::kQ8_0, {2, 64}, random_bytes(2 * 2 * 34, 3)},
      {"q4_k.3d", ggml::Type::kQ4_K, {2, 1, 256}, random_bytes(2 * 144, 4)},
      {"bf16.4d", ggml::Type::kBF16, {2, 1, 3, 2}, random_bytes(12 * 2, 5)},
  };
}

class GgufAlignment : public Gguf, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(GgufAlignment, TensorsRoundTrip) {
  const uint32_t alignment = GetParam();
  GgufMetadata kv;
  kv["general.architecture"] = gguf_string("llama");
  if (alignment != 32) kv["general.alignment"] = gguf_u32(alignment);
  const auto tensors = sample_tensors();
  const std::string p = path("tensors.gguf");
  write_gguf(p, kv, tensors);

  const GgufFile f = GgufFile::open(p);
  EXPECT_EQ(f.architecture(), "llama");
  EXPECT_EQ(f.path(), p);
  EXPECT_EQ(f.paths(), std::vector<std::string>{p});
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(&f.tensor(tensors[i].name), &t);
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.type, tensors[i].type);
    EXPECT_EQ(t.shape, tensors[i].shape);
    EXPECT_EQ(t.nbytes, int64_t(tensors[i].bytes.size()));
    EXPECT_EQ(t.file_index, 0);
    const char* base = f.file_of(t)->data();
    EXPECT_EQ((t.data - base) % alignment, 0) << t.name;
    EXPECT_EQ(std::memcmp(t.data, tensors[i].bytes.data(), tensors[i].bytes.size()), 0) << t.name;
  }
  EXPECT_EQ(read_bytes(p).size() % alignment, 0u);
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufAlignment, ::testing::Values(32u, 64u, 1u));

TEST_F(Gguf, TensorViewsOutliveTheFileObject) {
  write_gguf(path("keep.gguf"), {}, sample_tensors());
  std::shared_ptr<MappedFile> keep;
  const char* data = nullptr;
  {
    const GgufFile f = GgufFile::open(path("keep.gguf"));
    keep = f.file_of(f.tensor("q8_0.2d"));
    data = f.tensor("q8_0.2d").data;
  }
  EXPECT_EQ(std::memcmp(data, sample_tensors()[2].bytes.data(), 136), 0);
}

// Writes a set of `n` parts: part k holds tensor "t<k>" and the key "part.only" = k.
void write_split(const std::string& prefix, int n, int bad_no_part = 0) {
  for (int k = 1; k <= n; ++k) {
    GgufMetadata kv;
    kv["split.no"] = gguf_int(GgufValueType::kUint16, k == bad_no_part ? 0 : k - 1);
    kv["split.count"] = gguf_int(GgufValueType::kUint16, n);
    kv["part.only"] = gguf_u32(uint32_t(k));
    if (k == 1) {
      kv["general.architecture"] = gguf_string("qwen2");
      kv["split.tensors.count"] = gguf_i32(n);
    }
    const std::string name = fmt::format("{}-{:05d}-of-{:05d}.gguf", prefix, k, n);
    write_gguf(name, kv,
               {{fmt::format("t{}", k),
                 ggml::Type::kF32,
                 {int64_t(k), 3},
                 random_bytes(size_t(k) * 12, uint32_t(k))}});
  }
}

TEST_F(Gguf, SplitSetOpensAsOneFile) {
  const std::string prefix = path("model");
  write_split(prefix, 3);
  const GgufFile f = GgufFile::open(prefix + "-00001-of-00003.gguf");
  EXPECT_EQ(f.architecture(), "qwen2");
  EXPECT_EQ(f.get("part.only").as_int("part.only"), 1);  // metadata from the first part
  ASSERT_EQ(f.tensors().size(), 3u);
  ASSERT_EQ(f.paths().size(), 3u);
  EXPECT_EQ(f.paths()[2], prefix + "-00003-of-00003.gguf");
  for (int k = 1; k <= 3; ++k) {
    const GgufTensorInfo& t = f.tensor(fmt::format("t{}", k));
    EXPECT_EQ(t.file_index, k - 1);
    EXPECT_EQ(t.shape, (std::vector<int64_t>{k, 3}));
    EXPECT_EQ(f.file_of(t)->path(), f.paths()[size_t(k - 1)]);
    const auto want = random_bytes(size_t(k) * 12, uint32_t(k));
    EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0);
  }
}

TEST_F(Gguf, SplitSetFaults) {
  const std::string prefix = path("model");
  write_split(prefix, 3);
  expect_error(prefix + "-00002-of-00003.gguf", "open the first part");
  fs::remove(prefix + "-00003-of-00003.gguf");
  const std::string e = error_of(prefix + "-00001-of-00003.gguf");
  EXPECT_NE(e.find("part 3 of 3, '" + prefix + "-00003-of-00003.gguf', is missing"),
            std::string::npos)
      << e;
  write_split(prefix, 3, /*bad_no_part=*/2);
  expect_error(prefix + "-00001-of-00003.gguf", "split.no 0");
  // A first part whose split.count disagrees with its name.
  write_split(prefix, 2);
  fs::rename(prefix + "-00001-of-00002.gguf", prefix + "-00001-of-00004.gguf");
  expect_error(prefix + "-00001-of-00004.gguf", "split.count is 2");
}

// A small valid file: three keys and two tensors.
std::string small_file(const std::string& p) {
  GgufMetadata kv;
  kv["general.architecture"] = gguf_string("llama");
  kv["tokenizer.ggml.tokens"] = gguf_strings({"<s>", "a", "b"});
  kv["llama.block_count"] = gguf_u32(2);
  write_gguf(p, kv,
             {{"a", ggml::Type::kF32, {2, 2}, random_bytes(16, 7)},
              {"b", ggml::Type::kQ8_0, {1, 32}, random_bytes(34, 8)}});
  return read_bytes(p);
}

TEST_F(Gguf, TruncatedAtEveryByteIsAnError) {
  const std::string full = small_file(path("full.gguf"));
  const GgufFile f = GgufFile::open(path("full.gguf"));
  const GgufTensorInfo& last = f.tensor("b");
  const size_t end = size_t(last.data - f.file_of(last)->data()) + size_t(last.nbytes);
  const std::string p = path("cut.gguf");
  for (size_t n = 0; n < end; ++n) {
    write_bytes(p, full.substr(0, n));
    const std::string e = error_of(p);
    ASSERT_FALSE(e.empty()) << "accepted at " << n << " bytes";
    EXPECT_NE(e.find("truncated"), std::string::npos) << n << ": " << e;
    EXPECT_NE(e.find(p), std::string::npos) << e;
  }
}

TEST_F(Gguf, HeaderFaults) {
  const std::string full = small_file(path("full.gguf"));
  const std::string p = path("bad.gguf");
  auto with = [&](size_t at, const std::string& bytes) {
    std::string b = full;
    b.replace(at, bytes.size(), bytes);
    write_bytes(p, b);
  };
  with(4, std::string("\x02\0\0\0", 4));  // version 2 has the layout of version 3
  EXPECT_EQ(GgufFile::open(p).version(), 2u);
  EXPECT_EQ(GgufFile::open(p).tensors().size(), 2u);
  with(0, "GGUX");
  expect_error(p, "bad magic");
  with(4, std::string("\x01\0\0\0", 4));
  expect_error(p, "version 1");
  with(4, std::string("\0\0\0\x03", 4));
  expect_error(p, "big-endian");
  with(4, std::string("\x04\0\0\0", 4));
  expect_error(p, "version 4");
  with(8, std::string("\xff\xff\xff\xff\xff\xff\x00\x00", 8));
  expect_error(p, "tensor count");
  with(16, std::string("\xff\xff\xff\xff\xff\xff\x00\x00", 8));
  expect_error(p, "metadata count");
  with(24, std::string("\0\0\0\0\0\0\0\x40", 8));  // the first key's length: 2^62
  expect_error(p, "string length");
}

TEST_F(Gguf, MetadataFaults) {
  const std::string p = path("bad.gguf");
  write_bytes(p, Bytes().header(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).b);
  expect_error(p, "duplicate metadata key 'a.b'");
  write_bytes(p, Bytes().header(0, 2).kv_u32("a\nb", 1).kv_u32("a\nb", 2).b);
  expect_error(p, "duplicate metadata key 'a\\x0ab'");  // control bytes of names escaped
  write_bytes(p, Bytes().header(0, 1).str("a.b").u32(13).u32(0).b);
  expect_error(p, "'a.b' has unknown value type 13");
  write_bytes(p, Bytes().header(0, 1).str("a.b").u32(9).u32(9).u64(1).u32(4).u64(0).b);
  expect_error(p, "array of arrays");
  write_bytes(p, Bytes().header(0, 1).str("a.b").u32(9).u32(4).u64(1ull << 60).b);
  expect_error(p, "array count");
  write_bytes(p, Bytes().header(0, 1).str("a.b").u32(9).u32(8).u64(1ull << 60).b);
  expect_error(p, "array count");
  write_bytes(p, Bytes().header(0, 1).str("a.b").u32(9).u32(10).u64(1).u64(~0ull).b);
  expect_error(p, "above the largest int64");
  write_bytes(p, Bytes().header(0, 1).str("a.b").u32(7).put<uint8_t>(2).b);
  expect_error(p, "bool stored as 2");
  write_bytes(p, Bytes().header(0, 1).kv_u32("general.alignment", 48).b);
  expect_error(p, "power of two");
  write_bytes(p, Bytes().header(0, 1).kv_u32("general.alignment", 0).b);
  expect_error(p, "power of two");
  write_bytes(p, Bytes().header(0, 1).str("general.alignment").u32(8).str("32").b);
  expect_error(p, "general.alignment is a string, expected an integer");
  write_bytes(p, Bytes().header(0, 1).str("general.alignment").u32(10).u64(~0ull).b);
  expect_error(p, "general.alignment is 18446744073709551615, out of range");
  write_bytes(p, Bytes().header(0, 1).str("general.architecture").u32(4).u32(1).b);
  const std::string e = [&] {
    try {
      GgufFile::open(p).architecture();
    } catch (const Error& x) {
      return std::string(x.what());
    }
    return std::string();
  }();
  EXPECT_NE(e.find(p + "': general.architecture is a uint32, expected a string"), std::string::npos)
      << e;
}

TEST_F(Gguf, TensorTableFaults) {
  const std::string p = path("bad.gguf");
  auto one = [&](std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data) {
    write_bytes(p, Bytes().header(1, 0).tensor("w", ne, type, offset).pad(32).data(data).b);
  };
  one({8}, 0, 0, 32);
  EXPECT_EQ(error_of(p), "");
  one({8}, 0, 16, 64);
  expect_error(p, "'w' has a misaligned data offset 16");
  one({8}, 31, 0, 64);
  expect_error(p, "tensor 'w' has unknown ggml type id 31");
  one({8, 1, 1, 1, 1}, 0, 0, 64);
  expect_error(p, "5 dimensions");
  one({}, 0, 0, 64);
  expect_error(p, "0 dimensions");
  one({8, 0}, 0, 0, 64);
  expect_error(p, "zero");
  one({8, ~0ull}, 0, 0, 64);
  expect_error(p, "negative");
  one({1ull << 40, 1ull << 40}, 0, 0, 64);
  expect_error(p, "more elements than an int64");
  one({1ull << 62}, 0, 0, 64);  // 2^62 elements fit an int64, their 2^64 bytes do not
  expect_error(p, "more bytes than an int64");
  one({1ull << 40, 1ull << 22}, 0, 0, 64);  // rows of 2^42 bytes, 2^22 of them
  expect_error(p, "more bytes than an int64");
  one({32}, 12, 0, 256);  // q4_K rows must hold whole 256-element blocks
  expect_error(p, "block size 256");
  one({8}, 0, 0, 31);
  expect_error(p, "past the end");
  one({8}, 0, 1ull << 63, 64);
  expect_error(p, "past the end");
  write_bytes(
      p, Bytes().header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad(32).data(64).b);
  expect_error(p, "duplicate tensor name 'w'");
  write_bytes(
      p, Bytes().header(2, 0).tensor("w", {16}, 0, 0).tensor("v", {8}, 0, 32).pad(32).data(96).b);
  expect_error(p, "'w' (bytes 0..64) and 'v' (from 32) overlap");
  write_bytes(p, Bytes().header(1, 0).u64(1ull << 62).data(64).b);
  expect_error(p, "string length");
}

TEST_F(Gguf, IsGguf) {
  small_file(path("ok.gguf"));
  EXPECT_TRUE(GgufFile::is_gguf(path("ok.gguf")));
  EXPECT_FALSE(GgufFile::is_gguf(dir_.string()));
  EXPECT_FALSE(GgufFile::is_gguf(path("absent.gguf")));
  write_bytes(path("empty.gguf"), "");
  EXPECT_FALSE(GgufFile::is_gguf(path("empty.gguf")));
  write_bytes(path("st.safetensors"), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  EXPECT_FALSE(GgufFile::is_gguf(path("st.safetensors")));
  write_bytes(path("v1.gguf"), "GGUF\x01");
  EXPECT_TRUE(GgufFile::is_gguf(path("v1.gguf")));  // any version
}

TEST_F(Gguf, WriterRefusesWhatItCannotWrite) {
  auto msg = [&](GgufMetadata kv, std::vector<GgufWriteTensor> t) {
    try {
      write_gguf(path("w.gguf"), kv, t);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({{"k", gguf_int(GgufValueType::kUint8, 256)}}, {}).find("does not fit a uint8"),
            std::string::npos);
  EXPECT_NE(msg({{"k", gguf_ints(GgufValueType::kInt8, {-129})}}, {}).find("does not fit a int8"),
            std::string::npos);
  EXPECT_NE(msg({}, {{"w", ggml::Type::kF32, {2}, random_bytes(4, 1)}}).find("need 8"),
            std::string::npos);
  EXPECT_NE(msg({{"general.alignment", gguf_u32(3)}}, {}).find("power of two"), std::string::npos);
}

// The type table (core/ggml_type_table.cc) the reader sizes tensors by. ggml-common.h's sizes.
TEST(GgmlTypeTable, BlockSizesNamesAndUnknownIds) {
  struct Want {
    uint32_t id;
    const char* name;
    int64_t elems, bytes;
    bool supported;
  };
  const Want want[] = {
      {0, "f32", 1, 4, true},          {1, "f16", 1, 2, true},
      {2, "q4_0", 32, 18, true},       {3, "q4_1", 32, 20, true},
      {6, "q5_0", 32, 22, true},       {7, "q5_1", 32, 24, true},
      {8, "q8_0", 32, 34, true},       {9, "q8_1", 32, 36, false},
      {10, "q2_K", 256, 84, true},     {11, "q3_K", 256, 110, true},
      {12, "q4_K", 256, 144, true},    {13, "q5_K", 256, 176, true},
      {14, "q6_K", 256, 210, true},    {15, "q8_K", 256, 292, true},
      {16, "iq2_xxs", 256, 66, false}, {17, "iq2_xs", 256, 74, false},
      {18, "iq3_xxs", 256, 98, false}, {19, "iq1_s", 256, 50, false},
      {20, "iq4_nl", 32, 18, true},    {21, "iq3_s", 256, 110, false},
      {22, "iq2_s", 256, 82, false},   {23, "iq4_xs", 256, 136, false},
      {24, "i8", 1, 1, false},         {25, "i16", 1, 2, false},
      {26, "i32", 1, 4, false},        {27, "i64", 1, 8, false},
      {28, "f64", 1, 8, false},        {29, "iq1_m", 256, 56, false},
      {30, "bf16", 1, 2, true},        {34, "tq1_0", 256, 54, false},
      {35, "tq2_0", 256, 66, false},   {39, "mxfp4", 32, 17, false},
  };
  for (const Want& w : want) {
    const auto t = ggml::type_traits(w.id);
    ASSERT_TRUE(t.has_value()) << w.id;
    EXPECT_EQ(t->name, w.name);
    EXPECT_EQ(t->block_elems, w.elems) << w.name;
    EXPECT_EQ(t->block_bytes, w.bytes) << w.name;
    EXPECT_EQ(t->supported, w.supported) << w.name;
    EXPECT_EQ(ggml::type_name(w.id), w.name);
    EXPECT_EQ(ggml::traits(ggml::Type(w.id)).block_bytes, w.bytes);
  }
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 1000u, 0xFFFFFFFFu}) {
    EXPECT_FALSE(ggml::type_traits(id).has_value()) << id;
    EXPECT_EQ(ggml::type_name(id), "type " + std::to_string(id));
  }
  EXPECT_EQ(ggml::row_bytes(ggml::Type::kQ4_K, 512), 288);
  EXPECT_EQ(ggml::row_bytes(ggml::Type::kQ8_0, 64), 68);
  EXPECT_EQ(ggml::row_bytes(ggml::Type::kBF16, 3), 6);
  EXPECT_THROW(ggml::row_bytes(ggml::Type::kQ4_0, 31), Error);
}

// A file made by llama.cpp's own writer (gguf-py, tools/make_gguf_fixture.py): values, shapes
// (gguf-py writes numpy's row-major shapes reversed, as ggml's ne) and data as that script wrote.
TEST(GgufFixture, GgufPyReference) {
  const GgufFile f = GgufFile::open(INFERD_TEST_DATA_DIR "/gguf/gguf_py_reference.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.architecture(), "qwen2");
  EXPECT_EQ(f.get("qwen2.block_count").type, GgufValueType::kUint32);
  EXPECT_EQ(f.get("qwen2.block_count").as_int("k"), 2);
  EXPECT_EQ(f.get("qwen2.attention.layer_norm_rms_epsilon").as_float("k"), double(1e-6f));
  EXPECT_FALSE(f.get("tokenizer.ggml.add_bos_token").as_bool("k"));
  EXPECT_EQ(f.get("tokenizer.ggml.tokens").strings,
            (std::vector<std::string>{"a", "b", "\u2581c"}));
  EXPECT_EQ(f.get("tokenizer.ggml.token_type").elem_type, GgufValueType::kInt32);
  EXPECT_EQ(f.get("tokenizer.ggml.token_type").ints, (std::vector<int64_t>{1, 3, 1}));
  EXPECT_EQ(f.get("tokenizer.ggml.scores").floats, (std::vector<double>{0.5, -1.0, 2.0}));
  EXPECT_EQ(f.get("x.u64").as_int("k"), int64_t(1) << 40);
  EXPECT_EQ(f.get("x.i8").type, GgufValueType::kInt8);
  EXPECT_EQ(f.get("x.i8").as_int("k"), -3);
  EXPECT_EQ(f.get("x.f64").type, GgufValueType::kFloat64);
  EXPECT_EQ(f.get("x.f64").as_float("k"), 0.125);
  EXPECT_EQ(f.get("tokenizer.chat_template").as_string("k"), "{{ messages }}");

  ASSERT_EQ(f.tensors().size(), 5u);
  const GgufTensorInfo& a = f.tensor("a.f32");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 5, 7}));
  for (int i = 0; i < 105; ++i) {
    float x;
    std::memcpy(&x, a.data + 4 * i, 4);
    ASSERT_EQ(x, float(i)) << i;
  }
  const GgufTensorInfo& b = f.tensor("b.f16");
  EXPECT_EQ(b.type, ggml::Type::kF16);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{4, 6}));
  uint16_t h;
  std::memcpy(&h, b.data + 2 * 9, 2);
  EXPECT_EQ(h, 0x3c80);  // 9 / 8 = 1.125 in IEEE half
  const GgufTensorInfo& c = f.tensor("c.q8_0");
  EXPECT_EQ(c.type, ggml::Type::kQ8_0);
  EXPECT_EQ(c.shape, (std::vector<int64_t>{2, 64}));
  ASSERT_EQ(c.nbytes, 136);
  for (int i = 0; i < 136; ++i) ASSERT_EQ(uint8_t(c.data[i]), uint8_t(i * 7 % 256)) << i;
  const GgufTensorInfo& d = f.tensor("d.q4_k");
  EXPECT_EQ(d.type, ggml::Type::kQ4_K);
  EXPECT_EQ(d.shape, (std::vector<int64_t>{3, 256}));
  ASSERT_EQ(d.nbytes, 432);
  for (int i = 0; i < 432; ++i) ASSERT_EQ(uint8_t(d.data[i]), uint8_t(i * 13 % 256)) << i;
  EXPECT_EQ(f.tensor("e.1d").shape, (std::vector<int64_t>{2}));
}

// A real llama.cpp file (e.g. models/ggml-vocab-llama-spm.gguf of a llama.cpp checkout), named by
// INFERD_GGUF_REAL_FILE; the project ships none.
TEST(GgufReal, OpensAVocabularyFile) {
  const char* p = std::getenv("INFERD_GGUF_REAL_FILE");
  if (p == nullptr || *p == '\0') {
    GTEST_SKIP() << "llama.cpp's own GGUF files are not part of this project (they are not "
                    "committed): set INFERD_GGUF_REAL_FILE to one (e.g. llama.cpp's "
                    "models/ggml-vocab-llama-spm.gguf) to read it here; gguf_py_reference.gguf, "
                    "written by llama.cpp's gguf-py, is read by GgufFixture always";
  }
  EXPECT_TRUE(GgufFile::is_gguf(p));
  const GgufFile f = GgufFile::open(p);
  EXPECT_GE(f.version(), 2u);
  EXPECT_FALSE(f.architecture().empty());
  const GgufValue& tokens = f.get("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.is_array());
  EXPECT_EQ(tokens.elem_type, GgufValueType::kString);
  EXPECT_GT(tokens.array_size(), 100u);
  EXPECT_FALSE(f.get("tokenizer.ggml.model").as_string("tokenizer.ggml.model").empty());
}

}  // namespace
}  // namespace inferd
