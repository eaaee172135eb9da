// The CUDA backend's small kernels (see kernels.h for each kernel's contract): embedding, norms
// (+ residual adds before or after them), RoPE (+ the KV-cache write), SiLU/GELU-and-mul, logit
// soft-capping and scaling, gather, random fill. bf16
// storage, fp32 arithmetic, 16-byte vector loads where rows allow (scalar versions otherwise).
// Row-wise kernels take one block per token. Achieved on the H200 (commit 3475f50, ncu,
// Llama-3.1-8B shape, batch 256): residual add + RMSNorm 1.75 TB/s, SiLU-and-mul 2.7 TB/s, RoPE +
// KV write 1.2 TB/s; at batch 1 each is 3-4 us of latency (docs/performance.md). No fmt here (nvcc
// cannot compile fmt 9). Attention is in attention.cu, sampling in sampler.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "backend/cuda/kernels.h"
#include "backend/cuda/pdl.cuh"

namespace inferd::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kRowThreads = 256;  // threads per row for the row-wise kernels

__device__ __forceinline__ float to_f(bf16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ bf16 to_bf(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). Every thread gets the result.
// Call at most once per kernel (the shared scratch is not reset).
__device__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int nwarps = int(blockDim.x) >> 5;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < nwarps ? warp_sums[lane] : 0.f;
    t = warp_sum(t);
    if (lane == 0) warp_sums[0] = t;
  }
  __syncthreads();
  return warp_sums[0];
}

int grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65536) blocks = 65536;  // grid-stride loops cover the rest
  return int(blocks < 1 ? 1 : blocks);
}

// ---- embedding ---------------------------------------------------------------------------
__global__ void embedding_kernel(const bf16* __restrict__ table, int64_t vocab, int64_t hidden,
                                 const int32_t* __restrict__ ids, float scale,
                                 bf16* __restrict__ out, int64_t ld_out) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  bf16* o = out + t * ld_out;
  if (id < 0 || id >= vocab) {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = to_bf(0.f);
    return;
  }
  const bf16* row = table + int64_t(id) * hidden;
  if (scale == 1.0f) {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = row[i];
  } else {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = to_bf(to_f(row[i]) * scale);
  }
}

// ---- RMSNorm -----------------------------------------------------------------------------
// HF RMSNorm: x * rsqrt(mean(x^2) + eps) in fp32, then * weight.
// 1 / sqrt(mean(row^2) + eps) of one row, in fp32 (every thread of the block gets it).
__device__ __forceinline__ float row_inv_rms(const bf16* __restrict__ xr, int64_t hidden,
                                             float eps) {
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float v = to_f(xr[i]);
    ss += v * v;
  }
  ss = block_sum(ss);
  return 1.0f / sqrtf(ss / float(hidden) + eps);
}

__global__ void rms_norm_kernel(const bf16* __restrict__ x, int64_t ld_x,
                                const float* __restrict__ w, float eps, int64_t hidden,
                                bf16* __restrict__ out, int64_t ld_out) {
  const int64_t t = blockIdx.x;
  const bf16* xr = x + t * ld_x;
  const float r = row_inv_rms(xr, hidden, eps);
  bf16* o = out + t * ld_out;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = to_bf(w[i] * (to_f(xr[i]) * r));
}

// Each thread re-reads only the residual elements it wrote itself, so no barrier is needed between
// the two passes (block_sum's barriers order the rest).
__global__ void add_rms_norm_kernel(bf16* __restrict__ residual, int64_t ld_res,
                                    const bf16* __restrict__ x, int64_t ld_x, float x_scale,
                                    const float* __restrict__ w, float eps, int64_t hidden,
                                    bf16* __restrict__ out, int64_t ld_out) {
  const int64_t t = blockIdx.x;
  bf16* rr = residual + t * ld_res;
  const bf16* xr = x + t * ld_x;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const bf16 s = to_bf(fmaf(to_f(xr[i]), x_scale, to_f(rr[i])));
    rr[i] = s;
    const float v = to_f(s);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float r = 1.0f / sqrtf(ss / float(hidden) + eps);
  bf16* o = out + t * ld_out;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = to_bf(w[i] * (to_f(rr[i]) * r));
}

// residual += bf16(rms_norm(x) * w), fp32 math (OLMo 2's norms after attention and MLP).
__global__ void rms_norm_add_kernel(const bf16* __restrict__ x, int64_t ld_x,
                                    const float* __restrict__ w, float eps, int64_t hidden,
                                    bf16* __restrict__ residual, int64_t ld_res) {
  const int64_t t = blockIdx.x;
  const bf16* xr = x + t * ld_x;
  const float r = row_inv_rms(xr, hidden, eps);
  bf16* rr = residual + t * ld_res;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float n = to_f(to_bf(w[i] * (to_f(xr[i]) * r)));
    rr[i] = to_bf(to_f(rr[i]) + n);
  }
}

// One warp per (token, head) vector.
constexpr int kHeadNormWarps = 4;
__global__ void head_rms_norm_kernel(bf16* __restrict__ x, int64_t ld_x, int64_t num_vectors,
                                     int64_t heads, int64_t head_dim, const float* __restrict__ w,
                                     float eps) {
  const int64_t vec = int64_t(blockIdx.x) * kHeadNormWarps + (threadIdx.x >> 5);
  if (vec >= num_vectors) return;  // whole warps leave together
  const int lane = int(threadIdx.x) & 31;
  const int64_t t = vec / heads, h = vec % heads;
  bf16* v = x + t * ld_x + h * head_dim;
  float ss = 0.f;
  for (int64_t i = lane; i < head_dim; i += 32) {
    const float f = to_f(v[i]);
    ss += f * f;
  }
  ss = warp_sum(ss);
  const float r = 1.0f / sqrtf(ss / float(head_dim) + eps);
  for (int64_t i = lane; i < head_dim; i += 32) v[i] = to_bf(w[i] * (to_f(v[i]) * r));
}

// ---- bias --------------------------------------------------------------------------------
__global__ void add_bias_kernel(void* out, int64_t ld_out, bool out_f32,
                                const float* __restrict__ bias, int64_t num_tokens, int64_t n) {
  const int64_t total = num_tokens * n;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / n, c = i % n;
    if (out_f32) {
      static_cast<float*>(out)[t * ld_out + c] += bias[c];
    } else {
      bf16* p = static_cast<bf16*>(out) + t * ld_out + c;
      *p = to_bf(to_f(*p) + bias[c]);
    }
  }
}

// ---- RoPE --------------------------------------------------------------------------------
// One block per token; threads cover (head, i) pairs with i < head_dim / 2.
__global__ void rope_kernel(bf16* __restrict__ qkv, int64_t ld_qkv, int64_t num_rot_heads,
                            int64_t head_dim, const float* __restrict__ inv_freq,
                            float attention_scaling, const int32_t* __restrict__ positions) {
  const int64_t t = blockIdx.x;
  const int64_t half = head_dim / 2;
  const float pos = float(positions[t]);
  bf16* row = qkv + t * ld_qkv;
  for (int64_t k = threadIdx.x; k < num_rot_heads * half; k += blockDim.x) {
    const int64_t h = k / half, i = k % half;
    const float ang = pos * inv_freq[i];  // fp32 product, as transformers computes it
    float s, c;
    sincosf(ang, &s, &c);
    s *= attention_scaling;
    c *= attention_scaling;
    bf16* v = row + h * head_dim;
    const float x1 = to_f(v[i]), x2 = to_f(v[i + half]);
    v[i] = to_bf(x1 * c - x2 * s);
    v[i + half] = to_bf(x2 * c + x1 * s);
  }
}

// ---- SiLU / GELU-tanh and mul --------------------------------------------------------------
// kGelu: PyTorch's gelu(approximate="tanh") (Gemma); else SiLU.
template <bool kGelu>
__device__ __forceinline__ float gate_act(float g) {
  if constexpr (kGelu) {
    constexpr float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
    return 0.5f * g * (1.0f + tanhf(kBeta * (g + kKappa * g * g * g)));
  } else {
    return g / (1.0f + expf(-g));
  }
}

template <bool kGelu>
__global__ void act_mul_kernel(const bf16* __restrict__ gu, int64_t ld_gu, int64_t num_tokens,
                               int64_t f, bf16* __restrict__ out, int64_t ld_out) {
  const int64_t total = num_tokens * f;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / f, c = i % f;
    const float g = to_f(gu[t * ld_gu + c]), u = to_f(gu[t * ld_gu + f + c]);
    out[t * ld_out + c] = to_bf(gate_act<kGelu>(g) * u);
  }
}

// ---- logit soft-capping ------------------------------------------------------------------
__global__ void softcap_kernel(float* __restrict__ x, int64_t ld, int64_t rows, int64_t cols,
                               float cap) {
  const int64_t total = rows * cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    float* p = x + (i / cols) * ld + i % cols;
    *p = tanhf(*p / cap) * cap;
  }
}

// Granite's logits_scaling: x / divisor (IEEE division, as a model computes logits / scaling).
__global__ void div_scalar_kernel(float* __restrict__ x, int64_t ld, int64_t rows, int64_t cols,
                                  float divisor) {
  const int64_t total = rows * cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    float* p = x + (i / cols) * ld + i % cols;
    *p = __fdiv_rn(*p, divisor);
  }
}

// ---- KV-cache write ----------------------------------------------------------------------
// An FP8 cache (--kv-cache-dtype fp8) stores e4m3(x / scale), rounded to nearest even and
// saturated to +-448 (the CPU backend's f32_to_f8e4m3 of the same quotient).
__device__ __forceinline__ uint8_t to_kv_fp8(float x, float scale) {
  return uint8_t(__nv_cvt_float_to_fp8(__fdiv_rn(x, scale), __NV_SATFINITE, __NV_E4M3));
}

template <bool kFp8>
__global__ void write_kv_kernel(const bf16* __restrict__ qkv, int64_t ld_qkv, int64_t num_heads,
                                int64_t num_kv_heads, int64_t head_dim,
                                const int32_t* __restrict__ slots, void* __restrict__ k_cache,
                                void* __restrict__ v_cache, float k_scale, float v_scale) {
  const int64_t t = blockIdx.x;
  const int32_t slot = slots[t];
  if (slot < 0) return;
  const int64_t kvs = num_kv_heads * head_dim;
  const bf16* k = qkv + t * ld_qkv + num_heads * head_dim;
  const bf16* v = k + kvs;
  for (int64_t i = threadIdx.x; i < kvs; i += blockDim.x) {
    if constexpr (kFp8) {
      static_cast<uint8_t*>(k_cache)[int64_t(slot) * kvs + i] =
          to_kv_fp8(__bfloat162float(k[i]), k_scale);
      static_cast<uint8_t*>(v_cache)[int64_t(slot) * kvs + i] =
          to_kv_fp8(__bfloat162float(v[i]), v_scale);
    } else {
      static_cast<bf16*>(k_cache)[int64_t(slot) * kvs + i] = k[i];
      static_cast<bf16*>(v_cache)[int64_t(slot) * kvs + i] = v[i];
    }
  }
}

// ---- gather rows -------------------------------------------------------------------------
__global__ void gather_rows_kernel(const char* __restrict__ x, int64_t x_stride, int64_t row_units,
                                   const int32_t* __restrict__ rows, char* __restrict__ out,
                                   int64_t out_stride) {
  const int64_t r = blockIdx.x;
  const uint16_t* src = reinterpret_cast<const uint16_t*>(x + int64_t(rows[r]) * x_stride);
  uint16_t* dst = reinterpret_cast<uint16_t*>(out + r * out_stride);
  for (int64_t i = threadIdx.x; i < row_units; i += blockDim.x) dst[i] = src[i];
}

// ---- 16-byte vector versions -------------------------------------------------------------
// Used when every row start and length is a multiple of 8 elements (16 bytes), which the
// launchers check; the scalar kernels above remain for anything else.
struct alignas(16) Bf16x8 {
  __nv_bfloat162 h[4];
};

__device__ __forceinline__ void unpack8(const Bf16x8& v, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __bfloat1622float2(v.h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}
__device__ __forceinline__ Bf16x8 pack8(const float (&f)[8]) {
  Bf16x8 v;
#pragma unroll
  for (int i = 0; i < 4; ++i) v.h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return v;
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}
bool vec_ok(const void* p, int64_t ld_elems, int64_t width_elems) {
  return aligned16(p) && ld_elems % 8 == 0 && width_elems % 8 == 0;
}
// Threads for a row of n8 vectors: one vector each up to 1024 threads, a multiple of 32.
int row_threads(int64_t n8) {
  int64_t t = (n8 + 31) / 32 * 32;
  if (t > 1024) t = 1024;
  return int(t < 32 ? 32 : t);
}

__global__ void embedding_vec_kernel(const Bf16x8* __restrict__ table, int64_t vocab, int64_t n8,
                                     const int32_t* __restrict__ ids, float scale,
                                     Bf16x8* __restrict__ out, int64_t ld8_out) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  Bf16x8* o = out + t * ld8_out;
  if (id < 0 || id >= vocab) {
    const float z[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = threadIdx.x; i < n8; i += blockDim.x) o[i] = pack8(z);
    return;
  }
  const Bf16x8* row = table + int64_t(id) * n8;
  if (scale == 1.0f) {
    for (int64_t i = threadIdx.x; i < n8; i += blockDim.x) o[i] = row[i];
    return;
  }
  for (int64_t i = threadIdx.x; i < n8; i += blockDim.x) {
    float a[8];
    unpack8(row[i], a);
#pragma unroll
    for (int j = 0; j < 8; ++j) a[j] *= scale;
    o[i] = pack8(a);
  }
}

// RMSNorm / residual add + RMSNorm on 8-element vectors; same arithmetic as the scalar kernels
// (the residual is rounded to bf16 before it is squared).
template <bool kAdd>
__global__ void rms_norm_vec_kernel(Bf16x8* __restrict__ residual, int64_t ld8_res,
                                    const Bf16x8* __restrict__ x, int64_t ld8_x, float x_scale,
                                    const float4* __restrict__ w, float eps, int64_t n8,
                                    Bf16x8* __restrict__ out, int64_t ld8_out) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x;
  Bf16x8* rr = residual + t * ld8_res;
  const Bf16x8* xr = x + t * ld8_x;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < n8; i += blockDim.x) {
    float a[8];
    unpack8(kAdd ? rr[i] : xr[i], a);
    if (kAdd) {
      float b[8];
      unpack8(xr[i], b);
#pragma unroll
      for (int j = 0; j < 8; ++j) a[j] = fmaf(b[j], x_scale, a[j]);  // a + b when x_scale is 1
      const Bf16x8 s = pack8(a);
      rr[i] = s;
      unpack8(s, a);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) ss += a[j] * a[j];
  }
  ss = block_sum(ss);
  const float r = 1.0f / sqrtf(ss / float(n8 * 8) + eps);
  Bf16x8* o = out + t * ld8_out;
  for (int64_t i = threadIdx.x; i < n8; i += blockDim.x) {
    float a[8];
    unpack8(kAdd ? rr[i] : xr[i], a);
    const float4 w0 = w[2 * i], w1 = w[2 * i + 1];
    const float ww[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
    for (int j = 0; j < 8; ++j) a[j] = ww[j] * (a[j] * r);
    o[i] = pack8(a);
  }
}

template <bool kGelu>
__global__ void act_mul_vec_kernel(const Bf16x8* __restrict__ gu, int64_t ld8_gu,
                                   int64_t num_tokens, int64_t f8, Bf16x8* __restrict__ out,
                                   int64_t ld8_out) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t total = num_tokens * f8;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / f8, c = i % f8;
    float g[8], u[8];
    unpack8(gu[t * ld8_gu + c], g);
    unpack8(gu[t * ld8_gu + f8 + c], u);
#pragma unroll
    for (int j = 0; j < 8; ++j) g[j] = gate_act<kGelu>(g[j]) * u[j];
    out[t * ld8_out + c] = pack8(g);
  }
}

// One block per token. Work items: (q or k head, 8-wide slice of the first half) rotate the pair
// of slices (i, i + half); (v head, 8-wide slice) copy. Rotated q goes back into qkv, rotated k
// and v into the cache.
// Eight values at element offset e of a KV cache: bf16, or (kFp8) e4m3 of x / scale.
template <bool kFp8>
__device__ __forceinline__ void store_kv8(void* cache, int64_t e, const float (&x)[8], float scale) {
  if constexpr (kFp8) {
    uint2 q;
    uint8_t* b = reinterpret_cast<uint8_t*>(&q);
#pragma unroll
    for (int j = 0; j < 8; ++j) b[j] = to_kv_fp8(x[j], scale);
    *reinterpret_cast<uint2*>(static_cast<uint8_t*>(cache) + e) = q;
  } else {
    *reinterpret_cast<Bf16x8*>(static_cast<bf16*>(cache) + e) = pack8(x);
  }
}

template <bool kFp8>
__global__ void rope_write_kv_kernel(bf16* __restrict__ qkv, int64_t ld_qkv, int64_t num_heads,
                                     int64_t num_kv_heads, int64_t head_dim,
                                     const float* __restrict__ inv_freq, float attention_scaling,
                                     const int32_t* __restrict__ positions,
                                     const int32_t* __restrict__ slots, void* __restrict__ k_cache,
                                     void* __restrict__ v_cache, float k_scale, float v_scale) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x;
  const int64_t half = head_dim / 2, h8 = half / 8, d8 = head_dim / 8;
  const float pos = float(positions[t]);
  const int32_t slot = slots[t];
  bf16* row = qkv + t * ld_qkv;
  const int64_t kvs = num_kv_heads * head_dim;
  const int64_t rot_items = (num_heads + num_kv_heads) * h8;
  const int64_t items = rot_items + (slot >= 0 ? num_kv_heads * d8 : 0);
  for (int64_t k = threadIdx.x; k < items; k += blockDim.x) {
    if (k < rot_items) {
      const int64_t hh = k / h8, i0 = (k % h8) * 8;
      const bool is_q = hh < num_heads;
      if (!is_q && slot < 0) continue;
      bf16* v = row + hh * head_dim;
      float x1[8], x2[8], y1[8], y2[8];
      unpack8(*reinterpret_cast<const Bf16x8*>(v + i0), x1);
      unpack8(*reinterpret_cast<const Bf16x8*>(v + i0 + half), x2);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float ang = pos * inv_freq[i0 + j];  // fp32 product, as transformers computes it
        float sn, cs;
        sincosf(ang, &sn, &cs);
        sn *= attention_scaling;
        cs *= attention_scaling;
        y1[j] = x1[j] * cs - x2[j] * sn;
        y2[j] = x2[j] * cs + x1[j] * sn;
      }
      if (is_q) {
        *reinterpret_cast<Bf16x8*>(v + i0) = pack8(y1);
        *reinterpret_cast<Bf16x8*>(v + i0 + half) = pack8(y2);
      } else {
        // The rotated key rounded once, from fp32 (to bf16, or to FP8 of key / k_scale).
        const int64_t e = int64_t(slot) * kvs + (hh - num_heads) * head_dim + i0;
        store_kv8<kFp8>(k_cache, e, y1, k_scale);
        store_kv8<kFp8>(k_cache, e + half, y2, k_scale);
      }
    } else {
      const int64_t e = (k - rot_items) * 8;  // element offset within the v part
      const bf16* src = row + (num_heads + num_kv_heads) * head_dim + e;
      if constexpr (kFp8) {
        float x[8];
        unpack8(*reinterpret_cast<const Bf16x8*>(src), x);
        store_kv8<true>(v_cache, int64_t(slot) * kvs + e, x, v_scale);
      } else {
        *reinterpret_cast<Bf16x8*>(static_cast<bf16*>(v_cache) + int64_t(slot) * kvs + e) =
            *reinterpret_cast<const Bf16x8*>(src);
      }
    }
  }
}

__global__ void gather_rows_vec_kernel(const char* __restrict__ x, int64_t x_stride,
                                       int64_t row_units, const int32_t* __restrict__ rows,
                                       char* __restrict__ out, int64_t out_stride) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t r = blockIdx.x;
  const uint4* src = reinterpret_cast<const uint4*>(x + int64_t(rows[r]) * x_stride);
  uint4* dst = reinterpret_cast<uint4*>(out + r * out_stride);
  for (int64_t i = threadIdx.x; i < row_units; i += blockDim.x) dst[i] = src[i];
}

// ---- random fill -------------------------------------------------------------------------
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void fill_random_kernel(void* dst, int dtype_code, int64_t n, uint64_t seed,
                                   float stddev, float fill) {
  const float a = stddev * 1.7320508075688772f;  // uniform on [-a, a] has std a / sqrt(3)
  const uint64_t base = mix64(seed + 0x9e3779b97f4a7c15ull);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = fill;
    if (stddev != 0.f) {
      const uint64_t h = mix64(base ^ (uint64_t(i) * 0x9e3779b97f4a7c15ull));
      const float u = float(h >> 40) * (1.0f / 16777216.0f);  // [0, 1) with 24 bits
      v = (u * 2.0f - 1.0f) * a;
    }
    if (dtype_code == 0) {
      static_cast<float*>(dst)[i] = v;
    } else if (dtype_code == 1) {
      static_cast<bf16*>(dst)[i] = to_bf(v);
    } else {
      static_cast<__half*>(dst)[i] = __float2half_rn(v);
    }
  }
}

}  // namespace

bool pdl_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("INFERD_CUDA_PDL");
    if (env != nullptr && std::string_view(env) == "0") return false;
    int dev = 0, major = 0;
    return cudaGetDevice(&dev) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
           major >= 9;
  }();
  return on;
}

cudaError_t launch_embedding(const void* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                             int32_t num_tokens, float scale, void* out, int64_t ld_out,
                             cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (vec_ok(table, hidden, hidden) && vec_ok(out, ld_out, hidden)) {
    embedding_vec_kernel<<<num_tokens, row_threads(hidden / 8), 0, stream>>>(
        static_cast<const Bf16x8*>(table), vocab, hidden / 8, ids, scale, static_cast<Bf16x8*>(out),
        ld_out / 8);
  } else {
    embedding_kernel<<<num_tokens, kRowThreads, 0, stream>>>(static_cast<const bf16*>(table), vocab,
                                                             hidden, ids, scale,
                                                             static_cast<bf16*>(out), ld_out);
  }
  return cudaGetLastError();
}

cudaError_t launch_rms_norm(const void* x, int64_t ld_x, const float* w, float eps,
                            int32_t num_tokens, int64_t hidden, void* out, int64_t ld_out,
                            cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (vec_ok(x, ld_x, hidden) && vec_ok(out, ld_out, hidden) && aligned16(w)) {
    return launch_pdl(rms_norm_vec_kernel<false>, dim3(num_tokens), dim3(row_threads(hidden / 8)),
                      0, stream, nullptr, int64_t{0}, static_cast<const Bf16x8*>(x), ld_x / 8, 1.0f,
                      reinterpret_cast<const float4*>(w), eps, hidden / 8,
                      static_cast<Bf16x8*>(out), ld_out / 8);
  } else {
    rms_norm_kernel<<<num_tokens, kRowThreads, 0, stream>>>(
        static_cast<const bf16*>(x), ld_x, w, eps, hidden, static_cast<bf16*>(out), ld_out);
  }
  return cudaGetLastError();
}

cudaError_t launch_add_rms_norm(void* residual, int64_t ld_res, const void* x, int64_t ld_x,
                                float x_scale, const float* w, float eps, int32_t num_tokens,
                                int64_t hidden, void* out, int64_t ld_out, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (vec_ok(residual, ld_res, hidden) && vec_ok(x, ld_x, hidden) && vec_ok(out, ld_out, hidden) &&
      aligned16(w)) {
    return launch_pdl(rms_norm_vec_kernel<true>, dim3(num_tokens), dim3(row_threads(hidden / 8)),
                      0, stream, static_cast<Bf16x8*>(residual), ld_res / 8,
                      static_cast<const Bf16x8*>(x), ld_x / 8, x_scale,
                      reinterpret_cast<const float4*>(w), eps, hidden / 8,
                      static_cast<Bf16x8*>(out), ld_out / 8);
  } else {
    add_rms_norm_kernel<<<num_tokens, kRowThreads, 0, stream>>>(
        static_cast<bf16*>(residual), ld_res, static_cast<const bf16*>(x), ld_x, x_scale, w, eps,
        hidden, static_cast<bf16*>(out), ld_out);
  }
  return cudaGetLastError();
}

cudaError_t launch_rms_norm_add(const void* x, int64_t ld_x, const float* w, float eps,
                                int32_t num_tokens, int64_t hidden, void* residual, int64_t ld_res,
                                cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  rms_norm_add_kernel<<<num_tokens, kRowThreads, 0, stream>>>(
      static_cast<const bf16*>(x), ld_x, w, eps, hidden, static_cast<bf16*>(residual), ld_res);
  return cudaGetLastError();
}

cudaError_t launch_head_rms_norm(void* x, int64_t ld_x, int32_t num_tokens, int64_t heads,
                                 int64_t head_dim, const float* w, float eps, cudaStream_t stream) {
  const int64_t vectors = int64_t(num_tokens) * heads;
  if (vectors <= 0) return cudaSuccess;
  const int64_t blocks = (vectors + kHeadNormWarps - 1) / kHeadNormWarps;
  head_rms_norm_kernel<<<unsigned(blocks), 32 * kHeadNormWarps, 0, stream>>>(
      static_cast<bf16*>(x), ld_x, vectors, heads, head_dim, w, eps);
  return cudaGetLastError();
}

cudaError_t launch_add_bias(void* out, int64_t ld_out, bool out_f32, const float* bias,
                            int32_t num_tokens, int64_t n, cudaStream_t stream) {
  const int64_t total = int64_t(num_tokens) * n;
  if (total <= 0) return cudaSuccess;
  add_bias_kernel<<<grid_for(total, 256), 256, 0, stream>>>(out, ld_out, out_f32, bias, num_tokens,
                                                            n);
  return cudaGetLastError();
}

cudaError_t launch_rope(void* qkv, int64_t ld_qkv, int32_t num_tokens, int64_t num_rot_heads,
                        int64_t head_dim, const float* inv_freq, float attention_scaling,
                        const int32_t* positions, cudaStream_t stream) {
  if (num_tokens <= 0 || num_rot_heads <= 0) return cudaSuccess;
  rope_kernel<<<num_tokens, kRowThreads, 0, stream>>>(static_cast<bf16*>(qkv), ld_qkv,
                                                      num_rot_heads, head_dim, inv_freq,
                                                      attention_scaling, positions);
  return cudaGetLastError();
}

namespace {
template <bool kGelu>
cudaError_t launch_act_mul(const void* gate_up, int64_t ld_gate_up, int32_t num_tokens, int64_t f,
                           void* out, int64_t ld_out, cudaStream_t stream) {
  const int64_t total = int64_t(num_tokens) * f;
  if (total <= 0) return cudaSuccess;
  if (vec_ok(gate_up, ld_gate_up, f) && vec_ok(out, ld_out, f)) {
    return launch_pdl(act_mul_vec_kernel<kGelu>, dim3(grid_for(total / 8, 256)), dim3(256), 0,
                      stream, static_cast<const Bf16x8*>(gate_up), ld_gate_up / 8,
                      int64_t{num_tokens}, f / 8, static_cast<Bf16x8*>(out), ld_out / 8);
  } else {
    act_mul_kernel<kGelu>
        <<<grid_for(total, 256), 256, 0, stream>>>(static_cast<const bf16*>(gate_up), ld_gate_up,
                                                   num_tokens, f, static_cast<bf16*>(out), ld_out);
  }
  return cudaGetLastError();
}
}  // namespace

cudaError_t launch_silu_mul(const void* gate_up, int64_t ld_gate_up, int32_t num_tokens, int64_t f,
                            void* out, int64_t ld_out, cudaStream_t stream) {
  return launch_act_mul<false>(gate_up, ld_gate_up, num_tokens, f, out, ld_out, stream);
}

cudaError_t launch_gelu_tanh_mul(const void* gate_up, int64_t ld_gate_up, int32_t num_tokens,
                                 int64_t f, void* out, int64_t ld_out, cudaStream_t stream) {
  return launch_act_mul<true>(gate_up, ld_gate_up, num_tokens, f, out, ld_out, stream);
}

cudaError_t launch_softcap(float* x, int64_t ld, int32_t rows, int64_t cols, float cap,
                           cudaStream_t stream) {
  const int64_t total = int64_t(rows) * cols;
  if (total <= 0) return cudaSuccess;
  softcap_kernel<<<grid_for(total, 256), 256, 0, stream>>>(x, ld, rows, cols, cap);
  return cudaGetLastError();
}

cudaError_t launch_div_scalar(float* x, int64_t ld, int32_t rows, int64_t cols, float divisor,
                              cudaStream_t stream) {
  const int64_t total = int64_t(rows) * cols;
  if (total <= 0) return cudaSuccess;
  div_scalar_kernel<<<grid_for(total, 256), 256, 0, stream>>>(x, ld, rows, cols, divisor);
  return cudaGetLastError();
}

cudaError_t launch_write_kv(const void* qkv, int64_t ld_qkv, int32_t num_tokens, int64_t num_heads,
                            int64_t num_kv_heads, int64_t head_dim, const int32_t* slots,
                            void* k_cache, void* v_cache, const KvCacheFormat& f,
                            cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (f.fp8) {
    write_kv_kernel<true><<<num_tokens, kRowThreads, 0, stream>>>(
        static_cast<const bf16*>(qkv), ld_qkv, num_heads, num_kv_heads, head_dim, slots, k_cache,
        v_cache, f.k_scale, f.v_scale);
  } else {
    write_kv_kernel<false><<<num_tokens, kRowThreads, 0, stream>>>(
        static_cast<const bf16*>(qkv), ld_qkv, num_heads, num_kv_heads, head_dim, slots, k_cache,
        v_cache, 1.0f, 1.0f);
  }
  return cudaGetLastError();
}

cudaError_t launch_rope_write_kv(void* qkv, int64_t ld_qkv, int32_t num_tokens, int64_t num_heads,
                                 int64_t num_kv_heads, int64_t head_dim, const float* inv_freq,
                                 float attention_scaling, const int32_t* positions,
                                 const int32_t* slots, void* k_cache, void* v_cache,
                                 const KvCacheFormat& f, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (head_dim % 16 != 0 || ld_qkv % 8 != 0 || !aligned16(qkv) || !aligned16(k_cache) ||
      !aligned16(v_cache)) {
    return cudaErrorInvalidValue;  // the caller runs rope and write_kv separately
  }
  const int64_t items = (num_heads + num_kv_heads) * (head_dim / 16) + num_kv_heads * head_dim / 8;
  return launch_pdl(f.fp8 ? rope_write_kv_kernel<true> : rope_write_kv_kernel<false>,
                    dim3(num_tokens), dim3(row_threads(items)), 0, stream,
                    static_cast<bf16*>(qkv), ld_qkv, num_heads, num_kv_heads, head_dim, inv_freq,
                    attention_scaling, positions, slots, k_cache, v_cache, f.k_scale, f.v_scale);
}

cudaError_t launch_gather_rows(const void* x, int64_t x_stride_bytes, int64_t row_bytes,
                               const int32_t* rows, int32_t num_rows, void* out,
                               int64_t out_stride_bytes, cudaStream_t stream) {
  if (num_rows <= 0) return cudaSuccess;
  if (row_bytes % 2 != 0) return cudaErrorInvalidValue;
  if (row_bytes % 16 == 0 && x_stride_bytes % 16 == 0 && out_stride_bytes % 16 == 0 &&
      aligned16(x) && aligned16(out)) {
    return launch_pdl(gather_rows_vec_kernel, dim3(num_rows), dim3(row_threads(row_bytes / 16)), 0,
                      stream, static_cast<const char*>(x), x_stride_bytes, row_bytes / 16, rows,
                      static_cast<char*>(out), out_stride_bytes);
  } else {
    gather_rows_kernel<<<num_rows, kRowThreads, 0, stream>>>(
        static_cast<const char*>(x), x_stride_bytes, row_bytes / 2, rows, static_cast<char*>(out),
        out_stride_bytes);
  }
  return cudaGetLastError();
}

cudaError_t launch_fill_random(void* dst, int dtype_code, int64_t n, uint64_t seed, float stddev,
                               float fill, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (dtype_code < 0 || dtype_code > 2) return cudaErrorInvalidValue;
  fill_random_kernel<<<grid_for(n, 256), 256, 0, stream>>>(dst, dtype_code, n, seed, stddev, fill);
  return cudaGetLastError();
}

// One round of a greedy decode chain: row s (< num_seqs, one per sequence) keeps its argmax in
// `kept` and takes it as its next token, one position further (kv_len + 1, the slot from its
// block table).
__global__ void advance_decode_chain_kernel(const int32_t* __restrict__ sampled,
                                            int32_t* __restrict__ kept, int32_t* ids, int32_t* pos,
                                            int32_t* slot, int32_t* kv_len,
                                            const int32_t* __restrict__ block_tables,
                                            int32_t stride, int32_t block_size, int32_t num_seqs) {
  const int32_t s = int32_t(blockIdx.x * blockDim.x + threadIdx.x);
  if (s >= num_seqs) return;
  const int32_t tok = sampled[s];
  kept[s] = tok;
  ids[s] = tok;
  const int32_t p = pos[s] + 1;
  pos[s] = p;
  kv_len[s] = p + 1;
  slot[s] = block_tables[int64_t(s) * stride + p / block_size] * block_size + p % block_size;
}

cudaError_t launch_advance_decode_chain(const int32_t* sampled, int32_t* kept, int32_t* ids,
                                        int32_t* pos, int32_t* slot, int32_t* kv_len,
                                        const int32_t* block_tables, int32_t stride,
                                        int32_t block_size, int32_t num_seqs,
                                        cudaStream_t stream) {
  if (num_seqs <= 0) return cudaSuccess;
  advance_decode_chain_kernel<<<(num_seqs + 127) / 128, 128, 0, stream>>>(
      sampled, kept, ids, pos, slot, kv_len, block_tables, stride, block_size, num_seqs);
  return cudaGetLastError();
}

__global__ void illegal_write_kernel(int* p) {
  *p = 1;
}

cudaError_t launch_illegal_write(cudaStream_t stream) {
  // Low addresses are never mapped on the device (as on the host).
  illegal_write_kernel<<<1, 1, 0, stream>>>(reinterpret_cast<int*>(uintptr_t{64}));
  return cudaGetLastError();
}

}  // namespace inferd::cuda
