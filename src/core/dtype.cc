#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace inferd {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "float32";
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    case DType::kI32:
      return "int32";
    case DType::kI64:
      return "int64";
    case DType::kU8:
      return "uint8";
    case DType::kI8:
      return "int8";
    case DType::kF8E4M3:
      return "float8_e4m3fn";
  }
  return "?";
}

DType parse_dtype(std::string_view s) {
  if (s == "float32" || s == "f32" || s == "fp32" || s == "float") return DType::kF32;
  if (s == "bfloat16" || s == "bf16") return DType::kBF16;
  if (s == "float16" || s == "f16" || s == "fp16" || s == "half") return DType::kF16;
  fail("unsupported dtype '{}': expected one of float32, bfloat16, float16", s);
}

uint8_t f32_to_f8e4m3(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint8_t(sign | 0x7f);  // NaN
  const float a = std::fabs(f);
  if (a < 0.015625f) {  // below 2^-6: subnormal steps of 2^-9 (8 rounds up to the first normal)
    return uint8_t(sign | uint8_t(std::nearbyint(a * 512.0f)));
  }
  int ex = 0;
  const float fr = std::frexp(a, &ex);  // a = fr * 2^ex, fr in [0.5, 1)
  int e = ex - 1;                       // a = (2 fr) * 2^e, 2 fr in [1, 2)
  int q = int(std::nearbyint((2.0f * fr - 1.0f) * 8.0f));
  if (q == 8) {
    q = 0;
    ++e;
  }
  const int biased = e + 7;
  if (biased > 15 || (biased == 15 && q == 7)) return uint8_t(sign | 0x7e);  // saturate: 448
  return uint8_t(sign | (biased << 3) | q);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return uint16_t(sign | 0x7e00u);   // NaN
  if (absu >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflow -> inf (rounds up)
  if (absu < 0x38800000u) {                                  // subnormal or zero in half
    if (absu < 0x33000000u) return uint16_t(sign);           // < half of smallest subnormal
    const uint32_t e = absu >> 23;
    const uint32_t m = (absu & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14 + (127 - e) - 1 ... bits to drop beyond 13
    const uint32_t drop = shift;
    uint32_t r = m >> drop;
    const uint32_t rem = m & ((1u << drop) - 1);
    const uint32_t half = 1u << (drop - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = absu - 0x38000000u;  // rebias exponent 127 -> 15
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return uint16_t(sign | r);
}

}  // namespace inferd
