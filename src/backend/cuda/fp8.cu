#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "backend/cuda/fp8.h"

namespace inferd::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;

__device__ __forceinline__ float block_max(float v) {
  __shared__ float warp_max[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < kThreads / 32 ? warp_max[threadIdx.x] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (threadIdx.x == 0) warp_max[0] = v;
  }
  __syncthreads();
  return warp_max[0];
}

__device__ __forceinline__ uint16_t to_e4m3x2(float a, float b) {
  return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}

// One block per row; vector path: 8 bf16 (16 bytes) per load, 8 fp8 per store.
template <bool kVec>
__global__ void __launch_bounds__(kThreads)
    quantize_rows_kernel(const bf16* __restrict__ x, int64_t ld_x, int64_t cols,
                         uint8_t* __restrict__ q, int64_t ld_q, float* __restrict__ scales,
                         float static_scale) {
  const bf16* row = x + int64_t(blockIdx.x) * ld_x;
  uint8_t* qrow = q + int64_t(blockIdx.x) * ld_q;
  float scale = static_scale;
  if (!(scale > 0.0f)) {
    float amax = 0.0f;
    if constexpr (kVec) {
      for (int64_t c = int64_t(threadIdx.x) * 8; c < cols; c += kThreads * 8) {
        const uint4 u = *reinterpret_cast<const uint4*>(row + c);
        const bf16* h = reinterpret_cast<const bf16*>(&u);
#pragma unroll
        for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(__bfloat162float(h[j])));
      }
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += kThreads)
        amax = fmaxf(amax, fabsf(__bfloat162float(row[c])));
    }
    scale = fmaxf(block_max(amax), 1e-10f) / 448.0f;
  }
  if (threadIdx.x == 0) scales[blockIdx.x] = scale;
  const float inv = 1.0f / scale;
  if constexpr (kVec) {
    for (int64_t c = int64_t(threadIdx.x) * 8; c < cols; c += kThreads * 8) {
      const uint4 u = *reinterpret_cast<const uint4*>(row + c);
      const bf16* h = reinterpret_cast<const bf16*>(&u);
      uint2 out;
      uint16_t* o = reinterpret_cast<uint16_t*>(&out);
#pragma unroll
      for (int j = 0; j < 4; ++j)
        o[j] = to_e4m3x2(__bfloat162float(h[2 * j]) * inv, __bfloat162float(h[2 * j + 1]) * inv);
      *reinterpret_cast<uint2*>(qrow + c) = out;
    }
  } else {
    for (int64_t c = threadIdx.x; c < cols; c += kThreads)
      qrow[c] = uint8_t(to_e4m3x2(__bfloat162float(row[c]) * inv, 0.0f) & 0xff);
  }
}

}  // namespace

cudaError_t launch_quantize_rows_fp8(const void* x, int64_t ld_x, int64_t rows, int64_t cols,
                                     uint8_t* q, int64_t ld_q, float* scales, float static_scale,
                                     cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const bool vec = cols % 8 == 0 && ld_x % 8 == 0 && ld_q % 8 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(q) % 8 == 0;
  if (vec) {
    quantize_rows_kernel<true><<<unsigned(rows), kThreads, 0, stream>>>(
        static_cast<const bf16*>(x), ld_x, cols, q, ld_q, scales, static_scale);
  } else {
    quantize_rows_kernel<false><<<unsigned(rows), kThreads, 0, stream>>>(
        static_cast<const bf16*>(x), ld_x, cols, q, ld_q, scales, static_scale);
  }
  return cudaGetLastError();
}

}  // namespace inferd::cuda
