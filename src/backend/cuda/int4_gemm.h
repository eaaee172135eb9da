// Int4 weights on the CUDA backend (issue 28): the kernels' weight layout, the mixed-precision
// GEMM (bf16 activations x int4 weights on the tensor cores) and its helpers. Plain C++ header
// (see kernels.h).
//
// Device layout of an Int4Linear [N, K] (N % 16 == 0, K % 64 == 0, group_size % 16 == 0): the
// weight is cut into tiles of 16 outputs x 64 inputs, tile (nb, kc) at word offset
// (nb * K/64 + kc) * 128; in a tile, lane l (g = l / 4, t = l % 4) owns the 16 bytes at words
// 4 l .. 4 l + 3, word kk covering inputs 64 kc + 16 kk .. + 16 (one k16 step of mma.m16n8k16):
// its nibbles 0..3 hold output 16 nb + g at inputs 2t, 2t+1, 2t+8, 2t+9 of that step (the B
// fragment of mma.sync m16n8k16, bf16 pairs b0 = (2t, 2t+1), b1 = (2t+8, 2t+9)), nibbles 4..7
// the same for output 16 nb + g + 8. So one coalesced 16-byte load a lane gives a warp the B
// fragments of 4 k16 steps x 2 n8 tiles. Inputs are in the linear's canonical (act-order) order;
// the input columns are gathered by perm first. Group scales and zero points: fp16 pairs
// (scale, zero) [K / group_size, N].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#ifdef __CUDACC__
#define INFERD_INT4_HD __host__ __device__
#else
#define INFERD_INT4_HD
#endif

namespace inferd::cuda {

// Whether the int4 kernels take an [N, K] weight of this group size.
inline bool int4_shape_supported(int64_t n, int64_t k, int64_t group_size) {
  return n > 0 && k > 0 && n % 16 == 0 && k % 64 == 0 && group_size > 0 && group_size % 16 == 0 &&
         k % group_size == 0;
}

// Where the code of (output n, input k) of an [N, K] weight lives in the tile layout: its word
// and bit shift (the host repack writes there, the dequantization kernel reads there).
INFERD_INT4_HD inline void int4_tile_position(int64_t n, int64_t k, int64_t K, int64_t* word,
                                              int* shift) {
  const int64_t nb = n / 16, kc = k / 64, kk = (k % 64) / 16, kr = k % 16;
  const int64_t nr = n % 16, g = nr % 8, hi = nr / 8;
  const int64_t t = (kr % 8) / 2;
  const int64_t lane = g * 4 + t;
  const int nib = int(hi * 4 + (kr / 8) * 2 + (kr % 2));
  *word = ((nb * (K / 64) + kc) * 32 + lane) * 4 + kk;
  *shift = 4 * nib;
}

// Rows a launch_int4_gemm call handles with the tensor-core kernel; from kInt4DequantMinTokens
// rows on, the weight is dequantized to bf16 (launch_int4_dequantize_bf16) for a dense GEMM.
constexpr int32_t kInt4DequantMinTokens = 512;

// out[t, n] = sum_k x[t, k] * W[n, k] (+ bias[n]) for t < T: x bf16 [T, K] (row stride ld_x,
// even; 4-byte aligned), out bf16 or fp32 [T, N] (row stride ld_out). w: the tile layout above;
// sz: fp16 (scale, zero) pairs [K / group_size, N]. fp32 accumulation.
cudaError_t launch_int4_gemm(const uint32_t* w, const void* sz, int64_t n, int64_t k,
                             int64_t group_size, const void* x, int64_t ld_x, int32_t T,
                             const float* bias, void* out, int64_t ld_out, bool out_f32,
                             cudaStream_t stream);

// dst bf16 [T, K] (row stride K) = x[:, perm]: the act-order gather of the input columns.
cudaError_t launch_int4_gather_columns(const void* x, int64_t ld_x, int32_t T, int64_t k,
                                       const int32_t* perm, void* dst, cudaStream_t stream);

// dst bf16 [rows, K] (row stride K) = output rows [row0, row0 + rows) of W dequantized (rows and
// row0 multiples of 16).
cudaError_t launch_int4_dequantize_bf16(const uint32_t* w, const void* sz, int64_t n, int64_t k,
                                        int64_t group_size, int64_t row0, int64_t rows, void* dst,
                                        cudaStream_t stream);

// --load-format dummy: random words for the [N, K] weight (w: N * K / 8 words) and (scale, zero)
// pairs (scale uniform in [0.5, 1.5] * scale_mean, zero 8).
cudaError_t launch_int4_fill_random(uint32_t* w, void* sz, int64_t n, int64_t k, int64_t group_size,
                                    uint64_t seed, float scale_mean, cudaStream_t stream);

}  // namespace inferd::cuda
