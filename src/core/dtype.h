// Element types and scalar conversions.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace inferd {

// kF8E4M3: float8 e4m3fn (no infinities, max 448), the FP8 of checkpoints and tensor cores.
enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kI64, kU8, kI8, kF8E4M3 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kBF16:
      return 2;
    case DType::kF16:
      return 2;
    case DType::kI32:
      return 4;
    case DType::kI64:
      return 8;
    case DType::kU8:
      return 1;
    case DType::kI8:
      return 1;
    case DType::kF8E4M3:
      return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t);
// Parses "float32"/"f32"/"fp32", "bfloat16"/"bf16", "float16"/"f16"/"half"; throws Error otherwise.
DType parse_dtype(std::string_view s);

// bf16 <-> f32 (round to nearest even, NaN preserved).
inline float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(uint32_t(h) << 16);
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// float8 e4m3fn <-> f32: decoding is exact; encoding rounds to nearest even and saturates to
// +-448 (as torch's `.clamp(-448, 448).to(torch.float8_e4m3fn)` does); NaN stays NaN.
inline float f8e4m3_to_f32(uint8_t b) {
  const uint32_t e = (b >> 3) & 15u, m = b & 7u;
  float v;
  if (e == 15 && m == 7) {
    v = std::bit_cast<float>(0x7fc00000u);
  } else if (e == 0) {
    v = float(m) * 0.001953125f;  // m * 2^-9
  } else {
    v = std::bit_cast<float>(((e + 120u) << 23) | (m << 20));  // (1 + m/8) * 2^(e-7)
  }
  return (b & 0x80u) ? -v : v;
}
uint8_t f32_to_f8e4m3(float f);

// IEEE half <-> f32 (exact for every half; round to nearest even on the way down).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace inferd
