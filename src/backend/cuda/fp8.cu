#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdlib>

#include "backend/cuda/fp8.h"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/pdl.cuh"

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

// The GEMV's blocks: 8 warps, each lane streaming 16 weights (16 bytes) at a time and multiplying
// them with the matching 16 inputs of every token (bf16, cached in L1/L2).
constexpr int kGemvRowsPerBlock = 8;

__device__ __forceinline__ void fp8x16_to_float(const uint4& v, float* f) {
  const __nv_fp8x2_storage_t* p = reinterpret_cast<const __nv_fp8x2_storage_t*>(&v);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const __half2 h(__nv_cvt_fp8x2_to_halfraw2(p[j], __NV_E4M3));
    const float2 t = __half22float2(h);
    f[2 * j] = t.x;
    f[2 * j + 1] = t.y;
  }
}

// The GEMV (variants 0..3): kRows output rows a warp (8 warps a block), so that each input load
// and conversion serves kRows rows and each lane has kRows x kChunks 16-byte weight loads in
// flight before any math; the token count is a template bound (kMaxT in 1, 2, 4, 8) so that a
// single-token step carries no code for eight.
// kFp8: float8 weights (16 a 16-byte load) scaled per row; else bf16 weights (8 a load), unscaled
// (launch_bf16_gemv).
template <int kMaxT, int kRows, int kChunks, bool kOutF32, bool kFp8 = true>
__global__ void __launch_bounds__(kGemvRowsPerBlock * 32)
    gemv_rows_kernel(const bf16* __restrict__ x, int64_t ld_x, int num_tokens,
                     const uint8_t* __restrict__ w, const float* __restrict__ w_scale,
                     const float* __restrict__ bias, int64_t n_rows, int64_t k,
                     void* __restrict__ out, int64_t ld_out) {
  constexpr int kElems = kFp8 ? 16 : 8;  // weights a 16-byte load
  constexpr int kBytes = kFp8 ? 1 : 2;   // bytes a weight
  const int lane = threadIdx.x & 31;
  const int64_t n0 = (int64_t(blockIdx.x) * kGemvRowsPerBlock + (threadIdx.x >> 5)) * kRows;
  if (n0 >= n_rows) {
    pdl_wait();
    return;
  }
  const uint8_t* wrow[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    wrow[r] = w + (n0 + r < n_rows ? n0 + r : n_rows - 1) * k * kBytes;
  float acc[kRows][kMaxT];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int t = 0; t < kMaxT; ++t) acc[r][t] = 0.0f;
  // The first weights into L2 while the kernel before this one finishes (they are no kernel's
  // output); then the loop as before the programmatic launch (loads first, then the math).
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    if (int64_t(lane) * kElems < k)
      prefetch_l2(wrow[r] + int64_t(lane) * kElems * kBytes);
  pdl_wait();
  pdl_launch_dependents();
  for (int64_t base = int64_t(lane) * kElems; base < k; base += kChunks * 32 * kElems) {
    uint4 wv[kRows][kChunks];
#pragma unroll
    for (int u = 0; u < kChunks; ++u) {
      const int64_t k0 = base + int64_t(u) * 32 * kElems;
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        wv[r][u] = k0 < k ? __ldcs(reinterpret_cast<const uint4*>(wrow[r] + k0 * kBytes))
                          : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kChunks; ++u) {
      const int64_t k0 = base + int64_t(u) * 32 * kElems;
      if (k0 >= k) break;
      float wf[kRows][kElems];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if constexpr (kFp8) {
          fp8x16_to_float(wv[r][u], wf[r]);
        } else {
          bf16x8_to_float(wv[r][u], wf[r]);
        }
      }
#pragma unroll
      for (int t = 0; t < kMaxT; ++t) {
        if (t < num_tokens) {
          const uint4* xp = reinterpret_cast<const uint4*>(x + int64_t(t) * ld_x + k0);
          float xf[kElems];
          bf16x8_to_float(__ldg(xp), xf);
          if constexpr (kFp8) bf16x8_to_float(__ldg(xp + 1), xf + 8);
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            float s = 0.0f;
#pragma unroll
            for (int j = 0; j < kElems; ++j) s = fmaf(xf[j], wf[r][j], s);
            acc[r][t] += s;
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t n = n0 + r;
    if (n >= n_rows) break;
    const float scale = kFp8 ? w_scale[n] : 1.0f, b = bias != nullptr ? bias[n] : 0.0f;
#pragma unroll
    for (int t = 0; t < kMaxT; ++t) {
      if (t < num_tokens) {
        float v = acc[r][t];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) {
          v = v * scale + b;
          if constexpr (kOutF32) {
            static_cast<float*>(out)[int64_t(t) * ld_out + n] = v;
          } else {
            static_cast<bf16*>(out)[int64_t(t) * ld_out + n] = __float2bfloat16(v);
          }
        }
      }
    }
  }
}

// Variant 4: tensor cores, for several tokens (the FMA kernels above convert each weight once but
// multiply it by every token in fp32: compute-bound from ~4 tokens). A block of kTcWarps warps
// computes 16 output rows for up to 8 tokens: the warps take the 64-column k-blocks round robin
// and sum their partial tiles through shared memory. Lane (g, c) (g = lane / 4, c = lane % 4)
// streams 16 weights of rows g and g + 8 and the matching 16 inputs of token g per k-block, so
// mma.m16n8k16's k index is a relabelling of the block's 64 columns, the same for A (the weights,
// e4m3 -> bf16, exact) and B (the bf16 inputs as they are): four mmas a k-block.
constexpr int kTcWarps = 8;
constexpr int kTcUnroll = 2;

__device__ __forceinline__ uint32_t e4m3x2_to_bf16x2(uint16_t v) {
  const __half2 h(__nv_cvt_fp8x2_to_halfraw2(v, __NV_E4M3));
  const float2 f = __half22float2(h);
  return pack_bf16x2(f.x, f.y);
}

template <bool kOutF32>
__global__ void __launch_bounds__(kTcWarps * 32)
    fp8_gemv_tc_kernel(const bf16* __restrict__ x, int64_t ld_x, int num_tokens,
                       const uint8_t* __restrict__ w, const float* __restrict__ w_scale,
                       const float* __restrict__ bias, int64_t k, void* __restrict__ out,
                       int64_t ld_out) {
  __shared__ float red[kTcWarps][16][8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, c = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * 16;
  const uint8_t* w_lo = w + (n0 + g) * k;
  const uint8_t* w_hi = w + (n0 + g + 8) * k;
  const bool has_x = g < num_tokens;
  const bf16* xr = x + int64_t(has_x ? g : 0) * ld_x;
  float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const int64_t kblocks = (k + 63) / 64;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  // The first k-blocks' weights into L2 while the kernel before this one finishes.
#pragma unroll
  for (int u = 0; u < kTcUnroll; ++u) {
    const int64_t kb = warp + int64_t(u) * kTcWarps, k0 = kb * 64 + 16 * c;
    if (kb < kblocks && k0 < k) {
      prefetch_l2(w_lo + k0);
      prefetch_l2(w_hi + k0);
    }
  }
  pdl_wait();
  pdl_launch_dependents();
  for (int64_t kb0 = warp; kb0 < kblocks; kb0 += kTcWarps * kTcUnroll) {
    uint4 wl[kTcUnroll], wh[kTcUnroll], xv[kTcUnroll][2];
#pragma unroll
    for (int u = 0; u < kTcUnroll; ++u) {
      const int64_t kb = kb0 + int64_t(u) * kTcWarps;
      const int64_t k0 = kb * 64 + 16 * c;
      const bool ok = kb < kblocks && k0 < k;  // k is a multiple of 16: a run is all in or out
      wl[u] = ok ? __ldcs(reinterpret_cast<const uint4*>(w_lo + k0)) : zero;
      wh[u] = ok ? __ldcs(reinterpret_cast<const uint4*>(w_hi + k0)) : zero;
      const bool okx = ok && has_x;
      xv[u][0] = okx ? __ldg(reinterpret_cast<const uint4*>(xr + k0)) : zero;
      xv[u][1] = okx ? __ldg(reinterpret_cast<const uint4*>(xr + k0 + 8)) : zero;
    }
#pragma unroll
    for (int u = 0; u < kTcUnroll; ++u) {
      const uint16_t* pl = reinterpret_cast<const uint16_t*>(&wl[u]);
      const uint16_t* ph = reinterpret_cast<const uint16_t*>(&wh[u]);
      const uint32_t* px = reinterpret_cast<const uint32_t*>(&xv[u][0]);  // 8 bf16 pairs
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        // Elements 4m, 4m + 1 of the run are the lane's k slots 2c, 2c + 1; 4m + 2, 4m + 3 are
        // 2c + 8, 2c + 9 (pairs 2m and 2m + 1).
        const uint32_t a[4] = {e4m3x2_to_bf16x2(pl[2 * m]), e4m3x2_to_bf16x2(ph[2 * m]),
                               e4m3x2_to_bf16x2(pl[2 * m + 1]), e4m3x2_to_bf16x2(ph[2 * m + 1])};
        mma_m16n8k16(d, a, px[2 * m], px[2 * m + 1]);
      }
    }
  }
  // d: rows g and g + 8, tokens 2c and 2c + 1.
  red[warp][g][2 * c] = d[0];
  red[warp][g][2 * c + 1] = d[1];
  red[warp][g + 8][2 * c] = d[2];
  red[warp][g + 8][2 * c + 1] = d[3];
  __syncthreads();
  if (threadIdx.x < 128) {
    const int r = threadIdx.x >> 3, t = threadIdx.x & 7;
    if (t < num_tokens) {
      float v = 0.0f;
#pragma unroll
      for (int i = 0; i < kTcWarps; ++i) v += red[i][r][t];
      const int64_t n = n0 + r;
      v = v * w_scale[n] + (bias != nullptr ? bias[n] : 0.0f);
      if constexpr (kOutF32) {
        static_cast<float*>(out)[int64_t(t) * ld_out + n] = v;
      } else {
        static_cast<bf16*>(out)[int64_t(t) * ld_out + n] = __float2bfloat16(v);
      }
    }
  }
}

template <int kRows, int kChunks, bool kOutF32, bool kFp8 = true>
void launch_rows(const bf16* x, int64_t ld_x, int num_tokens, const uint8_t* w,
                 const float* w_scale, const float* bias, int64_t n, int64_t k, void* out,
                 int64_t ld_out, cudaStream_t stream) {
  const int64_t warps = (n + kRows - 1) / kRows;
  const unsigned blocks = unsigned((warps + kGemvRowsPerBlock - 1) / kGemvRowsPerBlock);
  constexpr unsigned kBlock = kGemvRowsPerBlock * 32;
  if (num_tokens == 1) {
    launch_pdl(gemv_rows_kernel<1, kRows, kChunks, kOutF32, kFp8>, dim3(blocks), dim3(kBlock), 0,
               stream, x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out);
  } else if (num_tokens == 2) {
    launch_pdl(gemv_rows_kernel<2, kRows, kChunks, kOutF32, kFp8>, dim3(blocks), dim3(kBlock), 0,
               stream, x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out);
  } else if (num_tokens <= 4) {
    launch_pdl(gemv_rows_kernel<4, kRows, kChunks, kOutF32, kFp8>, dim3(blocks), dim3(kBlock), 0,
               stream, x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out);
  } else {
    launch_pdl(gemv_rows_kernel<8, kRows, kChunks, kOutF32, kFp8>, dim3(blocks), dim3(kBlock), 0,
               stream, x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out);
  }
}

template <bool kOutF32>
void launch_variant(int variant, const bf16* x, int64_t ld_x, int num_tokens, const uint8_t* w,
                    const float* w_scale, const float* bias, int64_t n, int64_t k, void* out,
                    int64_t ld_out, cudaStream_t stream) {
  switch (variant) {
    case 1:
      launch_rows<1, 8, kOutF32>(x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out, stream);
      return;
    case 2:
      launch_rows<2, 4, kOutF32>(x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out, stream);
      return;
    case 3:
      launch_rows<4, 2, kOutF32>(x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out, stream);
      return;
    case kFp8GemvAuto:
      // Variant 3 for one token, tensor cores for more (bench/cuda_fp8_bench: v3 leads or ties at
      // one token; v4 holds 1.8-2.7 TB/s for 2..8 tokens where the FMA kernels fall below 1).
      if (num_tokens == 1) {
        launch_rows<4, 2, kOutF32>(x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out,
                                   stream);
        return;
      }
      [[fallthrough]];
    case 4:
      if (n % 16 == 0) {
        launch_pdl(fp8_gemv_tc_kernel<kOutF32>, dim3(unsigned(n / 16)), dim3(kTcWarps * 32), 0,
                   stream, x, ld_x, num_tokens, w, w_scale, bias, k, out, ld_out);
      } else {
        launch_rows<4, 2, kOutF32>(x, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out,
                                   stream);
      }
      return;
    default: {
      // Variant 0, the first GEMV: a warp a row, 4 loads in flight, code for eight tokens always.
      const unsigned blocks = unsigned((n + kGemvRowsPerBlock - 1) / kGemvRowsPerBlock);
      gemv_rows_kernel<kFp8GemvMaxTokens, 1, 4, kOutF32>
          <<<blocks, kGemvRowsPerBlock * 32, 0, stream>>>(x, ld_x, num_tokens, w, w_scale, bias, n,
                                                          k, out, ld_out);
    }
  }
}

int g_gemv_variant = kFp8GemvDefaultVariant;

}  // namespace

cudaError_t launch_fp8_gemv(const void* x, int64_t ld_x, int32_t num_tokens, const uint8_t* w,
                            const float* w_scale, const float* bias, int64_t n, int64_t k,
                            void* out, int64_t ld_out, bool out_f32, cudaStream_t stream) {
  if (num_tokens <= 0 || n <= 0) return cudaSuccess;
  if (num_tokens > kFp8GemvMaxTokens || k % 16 != 0 || ld_x % 8 != 0 ||
      reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0)
    return cudaErrorInvalidValue;
  const bf16* xb = static_cast<const bf16*>(x);
  const int v = g_gemv_variant == kFp8GemvCublas ? kFp8GemvDefaultVariant : g_gemv_variant;
  if (out_f32) {
    launch_variant<true>(v, xb, ld_x, num_tokens, w, w_scale, bias, n, k, out, ld_out,
                         stream);
  } else {
    launch_variant<false>(v, xb, ld_x, num_tokens, w, w_scale, bias, n, k, out,
                          ld_out, stream);
  }
  return cudaGetLastError();
}

int fp8_gemv_variant() { return g_gemv_variant; }

cudaError_t launch_bf16_gemv(const void* x, int64_t ld_x, int32_t num_tokens, const void* w,
                             const float* bias, int64_t n, int64_t k, void* out, int64_t ld_out,
                             bool out_f32, cudaStream_t stream) {
  if (num_tokens <= 0 || n <= 0) return cudaSuccess;
  if (num_tokens > kFp8GemvMaxTokens || k % 8 != 0 || ld_x % 8 != 0 ||
      reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0)
    return cudaErrorInvalidValue;
  const bf16* xb = static_cast<const bf16*>(x);
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  if (out_f32) {
    launch_rows<4, 2, true, false>(xb, ld_x, num_tokens, wb, nullptr, bias, n, k, out, ld_out,
                                   stream);
  } else {
    launch_rows<4, 2, false, false>(xb, ld_x, num_tokens, wb, nullptr, bias, n, k, out, ld_out,
                                    stream);
  }
  return cudaGetLastError();
}

namespace {
int g_bf16_gemv_max_tokens = -1;  // -1: INFERD_CUDA_BF16_GEMV not read yet
}  // namespace

int bf16_gemv_max_tokens() {
  if (g_bf16_gemv_max_tokens < 0) {
    const char* env = std::getenv("INFERD_CUDA_BF16_GEMV");
    const int want = env != nullptr && *env != 0 ? std::atoi(env) : kBf16GemvDefaultMaxTokens;
    g_bf16_gemv_max_tokens = std::clamp(want, 0, kFp8GemvMaxTokens);
  }
  return g_bf16_gemv_max_tokens;
}

int set_bf16_gemv_max_tokens(int max_tokens) {
  const int before = bf16_gemv_max_tokens();
  g_bf16_gemv_max_tokens = std::clamp(max_tokens, 0, kFp8GemvMaxTokens);
  return before;
}

int set_fp8_gemv_variant(int variant) {
  const int before = g_gemv_variant;
  g_gemv_variant = variant >= 0 && variant < kFp8GemvVariants ? variant : kFp8GemvDefaultVariant;
  return before;
}

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
