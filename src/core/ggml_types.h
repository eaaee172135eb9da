// The tensor types of GGUF files (ggml's block formats), as ggml defines them: the type ids a GGUF
// file stores, the byte layout of each block, and a scalar reference that dequantizes (exactly as
// ggml does) and quantizes (simple round-to-nearest quantizers that write valid blocks, for tests
// and tools; not llama.cpp's importance-weighted search). The CPU kernels (backend/cpu) and the
// GGUF quantization method (model/quant/gguf.cc) read blocks through these definitions.
//
// Published description followed: ggml's ggml-common.h (block structs) and ggml-quants.c
// (dequantize_row_*), as of llama.cpp b4700 (February 2025).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace inferd::ggml {

// ggml_type ids as GGUF stores them (the numbers are the file format; never renumber).
enum class Type : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

constexpr int kQK = 32;    // elements of a block of the legacy types (Q4_0 .. Q8_1, IQ4_NL)
constexpr int kQKK = 256;  // elements of a K-quant super-block
constexpr int kScaleSizeK = 12;

// fp16 fields are stored as raw IEEE half bits (uint16_t); core/dtype.h converts them.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];  // low nibbles: elements 0..15, high nibbles: 16..31
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // fifth bits, little-endian uint32: bit j for element j
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
struct BlockQ8_1 {
  uint16_t d, s;  // s = d * sum(qs)
  int8_t qs[kQK];
};
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];  // 4-bit scale | 4-bit min, per 16 elements
  uint8_t qs[kQKK / 4];
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[kScaleSizeK];  // 16 6-bit scales
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[kScaleSizeK];  // 8 6-bit scales and 8 6-bit mins
  uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[kScaleSizeK];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
struct BlockQ8_K {  // activations only (never in files ggml writes for weights)
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];  // sum of each 16 qs
};
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK / 2];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292 &&
              sizeof(BlockIQ4_NL) == 18);

// IQ4_NL's 16 non-linear levels.
extern const int8_t kIq4nlValues[16];

struct TypeTraits {
  std::string_view name;    // ggml's name: "f32", "q4_K", ...
  int64_t block_elems = 0;  // elements per block (1 for plain types)
  int64_t block_bytes = 0;  // bytes per block
  bool supported = false;   // inferd dequantizes it (dequantize_row below)
};

// Traits of any known type id; nullopt for an id ggml does not define.
std::optional<TypeTraits> type_traits(uint32_t type);
const TypeTraits& traits(Type t);  // a defined type
std::string_view type_name(uint32_t type);  // "type 31" style text for an unknown id
// Bytes of a row of n elements (n a multiple of block_elems).
int64_t row_bytes(Type t, int64_t n);

// y[0..n) = the values of the n elements at `src` (n a multiple of the block size). Types:
// F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL.
// Bit-exact with ggml's dequantize_row_* (the same float operations in the same order).
void dequantize_row(Type t, const void* src, float* y, int64_t n);

// Writes the blocks of n values (n a multiple of the block size) by a plain round-to-nearest
// quantizer (per-block absmax / min-max scales); every supported type, Q8_K included.
void quantize_row(Type t, const float* x, void* dst, int64_t n);

// K-quant helper (ggml's get_scale_min_k4): scale and min j (0..7) of a Q4_K / Q5_K block.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

}  // namespace inferd::ggml
