// MXFP4 decoding as moe.cu's kernels do it, plain C++ that nvcc compiles for the device and a host
// test (tests/backend/mxfp4_decode_test.cc) checks against model/quant/mxfp4.cc's dequantization.
// OCP Microscaling Formats v1.0, MXFP4, in the gpt-oss checkpoints' packing: byte i of a row holds
// element 2i in its low nibble and 2i + 1 in its high one, so element j of a little-endian 32-bit
// word is bits [4j, 4j + 4); each 32 elements share an e8m0 scale 2^(s - 127).
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define INFERD_MX_HD __host__ __device__ __forceinline__
#else
#define INFERD_MX_HD inline
#endif

namespace inferd::cuda::mx {

INFERD_MX_HD float float_of_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// The e2m1 value of the 4-bit code c: sign, 2 exponent bits, 1 mantissa bit (0, 0.5, 1, 1.5, 2,
// 3, 4, 6), built without a table and without subnormals.
INFERD_MX_HD float e2m1_value(uint32_t c) {
  const uint32_t e = (c >> 1) & 3u, m = c & 1u;
  const float mag = e != 0 ? float_of_bits(((e + 126u) << 23) | (m << 22)) : 0.5f * float(m);
  return (c & 8u) != 0 ? -mag : mag;
}

// 2^(s - 127): a normal float for s >= 1, 2^-127 (subnormal) for s = 0.
INFERD_MX_HD float e8m0_scale(uint32_t s) {
  return s != 0 ? float_of_bits(s << 23) : float_of_bits(0x00400000u);
}

// Element j (0..7) of a word of four packed bytes.
INFERD_MX_HD uint32_t code_of(uint32_t word, int j) {
  return (word >> (4 * j)) & 15u;
}

}  // namespace inferd::cuda::mx
