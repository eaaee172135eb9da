// Mixture-of-experts kernels (moe.h; issue 27). Launch shapes:
//  - moe_topk_kernel: 4 warps a block, one warp a token; each lane holds E / 32 logits in
//    registers; softmax by warp reductions; K rounds of a warp arg-max (ties: lower index).
//  - decode: gate_up_gemv_kernel, grid (T * K slots, F / 16): 4 warps, each 4 activation columns
//    = 8 weight rows (gate and up), 16-byte loads of the weight rows (8 in flight a lane; a lane
//    covers 8 values a load, 32 for MXFP4: one scale group, its codes looked up in a 16-entry
//    shared-memory table), the activation fused;
//    down_combine_gemv_kernel, grid (T, H / 32): each warp 8 output rows, the token's K choices
//    summed in choice order.
//  - batched: moe_permute_kernel (one block: shared-memory counts, offsets, per-expert tile
//    offsets, slot positions by shared atomics); grouped_gemm_kernel, grid (max tiles, N tiles):
//    a CTA finds its expert by binary search over the tile offsets (tiles past the last exit),
//    4 warps, a 64 x 64 tile (gate+up: 32 activation columns, their gate and up rows side by side
//    so the epilogue applies the activation), BK 32, register-staged double buffer, bf16
//    mma.sync m16n8k16 with fp32 accumulation; float8 and MXFP4 weights are converted to bf16 in
//    the load stage (MXFP4: e2m1 codes times their group's e8m0 scale, exact in bf16), float8
//    row scales applied in the epilogue; moe_combine_kernel.
//  Weight formats (MoeWeightFormat) are a template parameter of the two GEMV and the two grouped
//  GEMM kernels: 12 instantiations.
// Measured: not yet (written without a GPU at hand; the lead's H100 run fills this in).
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cfloat>

#include "backend/cuda/mma.cuh"
#include "backend/cuda/moe.h"
#include "backend/cuda/mxfp4_decode.h"

namespace inferd::cuda {

namespace {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// ---- routing -----------------------------------------------------------------------------------

constexpr int kPerLane = kMoeMaxExperts / 32;

__global__ void __launch_bounds__(128)
    moe_topk_kernel(const bf16* __restrict__ logits, int64_t ld, int32_t T, int32_t E, int32_t K,
                    bool softmax_first, bool renorm, int32_t* __restrict__ ids,
                    float* __restrict__ weights) {
  const int lane = threadIdx.x & 31;
  const int32_t t = blockIdx.x * 4 + (threadIdx.x >> 5);
  if (t >= T) return;
  const bf16* row = logits + int64_t(t) * ld;
  float v[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    v[i] = e < E ? __bfloat162float(row[e]) : -INFINITY;
  }
  if (softmax_first) {
    float m = -INFINITY;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) m = fmaxf(m, v[i]);
    m = warp_max(m);
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      v[i] = lane + 32 * i < E ? __expf(v[i] - m) : -1.0f;  // taken / absent: below every p
      s += fmaxf(v[i], 0.f);
    }
    s = warp_sum(s);
    const float inv = 1.0f / s;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      if (v[i] >= 0.f) v[i] *= inv;
  }
  // K rounds of arg-max; lane j keeps choice j.
  int32_t my_id = 0;
  float my_v = 0.f, first = 0.f, sum = 0.f;
  for (int j = 0; j < K; ++j) {
    float bv = -FLT_MAX;
    int bi = 0x7fffffff;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < E && v[i] > bv) {  // first (lowest e) of equal values wins in this lane
        bv = v[i];
        bi = e;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) {
        bv = ov;
        bi = oi;
      }
    }
    if (j == 0) first = bv;
    if (lane == j) {
      my_id = bi;
      my_v = bv;
    }
    if ((bi & 31) == lane) {
#pragma unroll
      for (int i = 0; i < kPerLane; ++i)
        if (i == (bi >> 5)) v[i] = -FLT_MAX;
    }
    sum += softmax_first ? bv : __expf(bv - first);
  }
  if (lane < K) {
    float w;
    if (softmax_first) {
      w = renorm ? my_v / sum : my_v;
    } else {
      w = __expf(my_v - first) / sum;
    }
    ids[int64_t(t) * K + lane] = my_id;
    weights[int64_t(t) * K + lane] = w;
  }
}

// ---- weights: 8 consecutive values of a row as floats -----------------------------------------

using Fmt = MoeWeightFormat;

// Bytes of one expert's [rows, cols] weight (cols a multiple of 32 for MXFP4).
template <Fmt kFmt>
__device__ __forceinline__ size_t expert_bytes(int64_t rows, int64_t cols) {
  if constexpr (kFmt == Fmt::kMxfp4) return size_t(rows * cols / 2);
  return size_t(rows * cols) * (kFmt == Fmt::kFp8 ? 1 : 2);
}

// Values [k, k + 8) of row `row` of an expert's weight (row length K) as floats: `we` the
// expert's weight base, `scales` its e8m0 scales (MXFP4 only). k is a multiple of 8.
template <Fmt kFmt>
__device__ __forceinline__ void load8(const void* we, const uint8_t* scales, int64_t row, int64_t K,
                                      int64_t k, float* f) {
  if constexpr (kFmt == Fmt::kFp8) {
    const uint2 u = *reinterpret_cast<const uint2*>(static_cast<const uint8_t*>(we) + row * K + k);
    const __nv_fp8x2_storage_t* p = reinterpret_cast<const __nv_fp8x2_storage_t*>(&u);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(p[j], __NV_E4M3);
      const float2 t = __half22float2(*reinterpret_cast<const __half2*>(&h));
      f[2 * j] = t.x;
      f[2 * j + 1] = t.y;
    }
  } else if constexpr (kFmt == Fmt::kMxfp4) {
    // Byte i holds element 2i in its low nibble: element j is bits [4j, 4j + 4) of the word.
    const uint32_t u =
        *reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(we) + (row * K + k) / 2);
    const float scale = mx::e8m0_scale(scales[(row * K + k) / 32]);
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = mx::e2m1_value(mx::code_of(u, j)) * scale;
  } else {
    bf16x8_to_float(*reinterpret_cast<const uint4*>(static_cast<const bf16*>(we) + row * K + k), f);
  }
}

__device__ __forceinline__ float act_fn(const MoeWeightsView& w, float g, float u) {
  if (w.swiglu_clamp) {
    g = fminf(g, w.limit);
    u = fminf(fmaxf(u, -w.limit), w.limit);
    return (u + 1.0f) * (g / (1.0f + __expf(-w.alpha * g)));
  }
  return g / (1.0f + __expf(-g)) * u;
}

// The gate and up rows of activation column f in w13's expert e (row indices within [2F]).
__device__ __forceinline__ int64_t gate_row(const MoeWeightsView& w, int64_t f) {
  return w.interleaved ? 2 * f : f;
}
__device__ __forceinline__ int64_t up_row(const MoeWeightsView& w, int64_t f) {
  return w.interleaved ? 2 * f + 1 : w.inter + f;
}

// ---- decode: per-slot GEMVs --------------------------------------------------------------------

constexpr int kGemvColsPerWarp = 4;
constexpr int kGemvWarps = 4;

// One lane's load of a weight row in the GEMVs: 8 values (bf16: 16 bytes, fp8: 8 bytes) or, for
// MXFP4, 32 (16 bytes of codes: exactly one scale group), so that MXFP4 keeps as many bytes in
// flight a lane as bf16 does.
template <Fmt kFmt>
struct GemvChunk {
  static constexpr int kVals = kFmt == Fmt::kMxfp4 ? 32 : 8;
  uint4 raw;
  uint32_t scale;  // MXFP4: the group's e8m0 byte

  // Values [k, k + kVals) of row `row` (length K) of the expert at `we` (`mx`: its scales).
  __device__ __forceinline__ void load(const void* we, const uint8_t* mx, int64_t row, int64_t K,
                                       int64_t k) {
    const uint8_t* b = static_cast<const uint8_t*>(we);
    if constexpr (kFmt == Fmt::kMxfp4) {
      raw = *reinterpret_cast<const uint4*>(b + (row * K + k) / 2);
      scale = mx[(row * K + k) / 32];
    } else if constexpr (kFmt == Fmt::kFp8) {
      const uint2 u = *reinterpret_cast<const uint2*>(b + row * K + k);
      raw = make_uint4(u.x, u.y, 0u, 0u);
    } else {
      raw = *reinterpret_cast<const uint4*>(b + (row * K + k) * 2);
    }
  }

  // sum_j value_j * x[j] over the chunk; `lut` (shared memory, MXFP4 only): the 16 e2m1 values,
  // one load a code instead of building the float from its bits.
  __device__ __forceinline__ float dot(const float* x, const float* lut) const {
    float acc = 0.f;
    if constexpr (kFmt == Fmt::kMxfp4) {
      const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc = fmaf(lut[mx::code_of(words[i], j)], x[8 * i + j], acc);
      return acc * mx::e8m0_scale(scale);  // the group's scale, once
    } else if constexpr (kFmt == Fmt::kFp8) {
      (void)lut;
      const __nv_fp8x2_storage_t* p = reinterpret_cast<const __nv_fp8x2_storage_t*>(&raw);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(p[j], __NV_E4M3);
        const float2 t = __half22float2(*reinterpret_cast<const __half2*>(&h));
        acc = fmaf(t.x, x[2 * j], acc);
        acc = fmaf(t.y, x[2 * j + 1], acc);
      }
    } else {
      (void)lut;
      float w[8];
      bf16x8_to_float(raw, w);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc = fmaf(w[j], x[j], acc);
    }
    return acc;
  }
};

// The 16 e2m1 values in shared memory (MXFP4's GEMV lookups); every thread of the block must call
// it before any returns.
template <Fmt kFmt>
__device__ __forceinline__ void fill_e2m1_lut(float* lut) {
  if constexpr (kFmt == Fmt::kMxfp4) {
    if (threadIdx.x < 16) lut[threadIdx.x] = mx::e2m1_value(threadIdx.x);
    __syncthreads();
  }
}

// kVals consecutive bf16 values of x from x[k] on, as floats.
template <int kVals>
__device__ __forceinline__ void load_x(const bf16* x, int64_t k, float* f) {
#pragma unroll
  for (int i = 0; i < kVals / 8; ++i)
    bf16x8_to_float(*reinterpret_cast<const uint4*>(x + k + 8 * i), f + 8 * i);
}

template <Fmt kFmt>
__global__ void __launch_bounds__(128)
    gate_up_gemv_kernel(const bf16* __restrict__ x, int64_t ld_x, int32_t K,
                        const int32_t* __restrict__ ids, MoeWeightsView w, bf16* __restrict__ act,
                        int32_t* __restrict__ counts) {
  const int32_t slot = blockIdx.x, t = slot / K;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t H = w.hidden, F = w.inter;
  const int32_t e = min(max(ids[slot], 0), w.num_experts - 1);
  if (counts && blockIdx.y == 0 && threadIdx.x == 0) atomicAdd(counts + e, 1);
  __shared__ float lut[16];
  fill_e2m1_lut<kFmt>(lut);
  const int64_t f0 = (int64_t(blockIdx.y) * kGemvWarps + warp) * kGemvColsPerWarp;
  if (f0 >= F) return;
  const char* we = static_cast<const char*>(w.w13) + size_t(e) * expert_bytes<kFmt>(2 * F, H);
  const uint8_t* wmx = w.w13_mx + (kFmt == Fmt::kMxfp4 ? size_t(e) * size_t(2 * F * (H / 32)) : 0);
  int64_t rows[2 * kGemvColsPerWarp];
#pragma unroll
  for (int c = 0; c < kGemvColsPerWarp; ++c) {
    const int64_t f = min(f0 + c, F - 1);
    rows[2 * c] = gate_row(w, f);
    rows[2 * c + 1] = up_row(w, f);
  }
  float acc[2 * kGemvColsPerWarp] = {};
  const bf16* xr = x + int64_t(t) * ld_x;
  constexpr int V = GemvChunk<kFmt>::kVals;
  for (int64_t k0 = int64_t(lane) * V; k0 < H; k0 += 32 * V) {
    GemvChunk<kFmt> c[2 * kGemvColsPerWarp];
#pragma unroll
    for (int r = 0; r < 2 * kGemvColsPerWarp; ++r) c[r].load(we, wmx, rows[r], H, k0);
    float xv[V];
    load_x<V>(xr, k0, xv);
#pragma unroll
    for (int r = 0; r < 2 * kGemvColsPerWarp; ++r) acc[r] += c[r].dot(xv, lut);
  }
#pragma unroll
  for (int r = 0; r < 2 * kGemvColsPerWarp; ++r) acc[r] = warp_sum(acc[r]);
  if (lane < kGemvColsPerWarp && f0 + lane < F) {
    float g = 0.f, u = 0.f;
#pragma unroll
    for (int c = 0; c < kGemvColsPerWarp; ++c)
      if (c == lane) {
        g = acc[2 * c];
        u = acc[2 * c + 1];
      }
    const int64_t gr = gate_row(w, f0 + lane), ur = up_row(w, f0 + lane);
    if (kFmt == Fmt::kFp8) {
      g *= w.w13_scale[int64_t(e) * 2 * F + gr];
      u *= w.w13_scale[int64_t(e) * 2 * F + ur];
    }
    if (w.w13_bias) {
      g += w.w13_bias[int64_t(e) * 2 * F + gr];
      u += w.w13_bias[int64_t(e) * 2 * F + ur];
    }
    act[int64_t(slot) * F + f0 + lane] = __float2bfloat16(act_fn(w, g, u));
  }
}

constexpr int kDownRowsPerWarp = 8;

template <Fmt kFmt>
__global__ void __launch_bounds__(128)
    down_combine_gemv_kernel(const bf16* __restrict__ act, int32_t K,
                             const int32_t* __restrict__ ids, const float* __restrict__ weights,
                             MoeWeightsView w, bf16* __restrict__ out, int64_t ld_out) {
  const int32_t t = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t H = w.hidden, F = w.inter;
  const int64_t n0 = (int64_t(blockIdx.y) * kGemvWarps + warp) * kDownRowsPerWarp;
  __shared__ float lut[16];
  fill_e2m1_lut<kFmt>(lut);
  if (n0 >= H) return;
  float total[kDownRowsPerWarp] = {};
  for (int j = 0; j < K; ++j) {
    const int32_t slot = t * K + j;
    const int32_t e = min(max(ids[slot], 0), w.num_experts - 1);
    const char* we = static_cast<const char*>(w.w2) + size_t(e) * expert_bytes<kFmt>(H, F);
    const uint8_t* wmx = w.w2_mx + (kFmt == Fmt::kMxfp4 ? size_t(e) * size_t(H * (F / 32)) : 0);
    const bf16* ar = act + int64_t(slot) * F;
    float acc[kDownRowsPerWarp] = {};
    constexpr int V = GemvChunk<kFmt>::kVals;
    for (int64_t k0 = int64_t(lane) * V; k0 < F; k0 += 32 * V) {
      GemvChunk<kFmt> c[kDownRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kDownRowsPerWarp; ++r) c[r].load(we, wmx, min(n0 + r, H - 1), F, k0);
      float av[V];
      load_x<V>(ar, k0, av);
#pragma unroll
      for (int r = 0; r < kDownRowsPerWarp; ++r) acc[r] += c[r].dot(av, lut);
    }
    const float wt = weights[slot];
#pragma unroll
    for (int r = 0; r < kDownRowsPerWarp; ++r) {
      float y = warp_sum(acc[r]);
      const int64_t n = min(n0 + r, H - 1);
      if (kFmt == Fmt::kFp8) y *= w.w2_scale[int64_t(e) * H + n];
      if (w.w2_bias) y += w.w2_bias[int64_t(e) * H + n];
      // The expert's output rounded to bf16 (as a bf16 model keeps it), then weighted in fp32.
      total[r] = fmaf(wt, __bfloat162float(__float2bfloat16(y)), total[r]);
    }
  }
  if (lane < kDownRowsPerWarp && n0 + lane < H) {
    float v = 0.f;
#pragma unroll
    for (int r = 0; r < kDownRowsPerWarp; ++r)
      if (r == lane) v = total[r];
    out[int64_t(t) * ld_out + n0 + lane] = __float2bfloat16(v);
  }
}

// ---- batched: permutation, grouped GEMM, combine -----------------------------------------------

// Scratch layout of the batched path (offsets in bytes, 256-aligned).
struct GroupedLayout {
  size_t offsets, tile_off, perm, slot_row, act, y, total;
  GroupedLayout(int64_t n, int64_t E, int64_t H, int64_t F) {
    auto up = [](size_t v) { return (v + 255) / 256 * 256; };
    offsets = 0;
    tile_off = up(offsets + size_t(E + 1) * 4);
    perm = up(tile_off + size_t(E + 1) * 4);
    slot_row = up(perm + size_t(n) * 4);
    act = up(slot_row + size_t(n) * 4);
    y = up(act + size_t(n * F) * 2);
    total = up(y + size_t(n * H) * 2);
  }
};

constexpr int kPermThreads = 1024;

__global__ void __launch_bounds__(kPermThreads)
    moe_permute_kernel(const int32_t* __restrict__ ids, int32_t n, int32_t E,
                       int32_t* __restrict__ offsets, int32_t* __restrict__ tile_off,
                       int32_t* __restrict__ perm, int32_t* __restrict__ slot_row,
                       int32_t* __restrict__ counts_out) {
  __shared__ int32_t cnt[kMoeMaxExperts], cursor[kMoeMaxExperts];
  for (int e = threadIdx.x; e < E; e += kPermThreads) cnt[e] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += kPermThreads)
    atomicAdd(&cnt[min(max(ids[i], 0), E - 1)], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t off = 0, tiles = 0;
    for (int e = 0; e < E; ++e) {
      offsets[e] = off;
      tile_off[e] = tiles;
      cursor[e] = off;
      off += cnt[e];
      tiles += (cnt[e] + kMoeTileM - 1) / kMoeTileM;
    }
    offsets[E] = off;
    tile_off[E] = tiles;
  }
  __syncthreads();
  if (counts_out)
    for (int e = threadIdx.x; e < E; e += kPermThreads)
      if (cnt[e]) atomicAdd(counts_out + e, cnt[e]);
  for (int i = threadIdx.x; i < n; i += kPermThreads) {
    const int32_t pos = atomicAdd(&cursor[min(max(ids[i], 0), E - 1)], 1);
    perm[pos] = i;
    slot_row[i] = pos;
  }
}

// The expert e with tile_off[e] <= tile < tile_off[e + 1] (experts without tiles are skipped).
__device__ __forceinline__ int32_t expert_of_tile(const int32_t* tile_off, int32_t E,
                                                  int32_t tile) {
  int lo = 0, hi = E;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (tile_off[mid] <= tile) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// The grouped GEMM's epilogue: this thread's accumulators (two n8 tiles of each 16-row m tile)
// scaled (FP8 row scales), biased, through the activation (kSwiglu: the gate and up tiles of one
// column block) and stored as bf16 rows m0 + r < m0 + rows.
template <bool kFp8, bool kSwiglu>
__device__ __forceinline__ void store_tile(const float (&acc)[kMoeTileM / 16][2][4],
                                           const MoeWeightsView& w, int32_t e, int32_t m0,
                                           int32_t rows, int64_t n0, int warp, int g, int tq,
                                           bf16* __restrict__ out) {
  const int64_t H = w.hidden, F = w.inter, Nw = kSwiglu ? 2 * F : H;
#pragma unroll
  for (int mt = 0; mt < kMoeTileM / 16; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = mt * 16 + g + 8 * h;
      if (r >= rows) continue;
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        if (kSwiglu) {
          const int64_t f = n0 + 8 * warp + 2 * tq + c;
          if (f >= F) continue;
          float gv = acc[mt][0][2 * h + c], uv = acc[mt][1][2 * h + c];
          const int64_t gr = gate_row(w, f), ur = up_row(w, f);
          if (kFp8) {
            gv *= w.w13_scale[int64_t(e) * Nw + gr];
            uv *= w.w13_scale[int64_t(e) * Nw + ur];
          }
          if (w.w13_bias) {
            gv += w.w13_bias[int64_t(e) * Nw + gr];
            uv += w.w13_bias[int64_t(e) * Nw + ur];
          }
          out[int64_t(m0 + r) * F + f] = __float2bfloat16(act_fn(w, gv, uv));
        } else {
#pragma unroll
          for (int nt = 0; nt < 2; ++nt) {
            const int64_t n = n0 + 16 * warp + 8 * nt + 2 * tq + c;
            if (n >= H) continue;
            float y = acc[mt][nt][2 * h + c];
            if (kFp8) y *= w.w2_scale[int64_t(e) * H + n];
            if (w.w2_bias) y += w.w2_bias[int64_t(e) * H + n];
            out[int64_t(m0 + r) * H + n] = __float2bfloat16(y);
          }
        }
      }
    }
  }
}

constexpr int kBN = 64, kBK = 32, kPad = 8, kLd = kBK + kPad;

// C [rows, N] = A W_e^T over every expert's tiles. kSwiglu: A rows are token rows x[perm[r] / K]
// (ld_a), W = w13, out = act [n, F] with the activation applied; else A = act rows (contiguous),
// W = w2, out = y [n, H].
template <Fmt kFmt, bool kSwiglu>
__global__ void __launch_bounds__(128)
    grouped_gemm_kernel(const bf16* __restrict__ a, int64_t ld_a, int32_t topk,
                        const int32_t* __restrict__ offsets, const int32_t* __restrict__ tile_off,
                        const int32_t* __restrict__ perm, MoeWeightsView w,
                        bf16* __restrict__ out) {
  __shared__ __align__(16) bf16 sa[2][kMoeTileM][kLd];
  __shared__ __align__(16) bf16 sb[2][kBN][kLd];
  const int32_t E = w.num_experts;
  const int32_t tile = blockIdx.x;
  if (tile >= tile_off[E]) return;
  const int32_t e = expert_of_tile(tile_off, E, tile);
  const int32_t m0 = offsets[e] + (tile - tile_off[e]) * kMoeTileM;
  const int32_t rows = min(kMoeTileM, offsets[e + 1] - m0);
  const int64_t H = w.hidden, F = w.inter;
  const int64_t Kd = kSwiglu ? H : F;      // reduction length
  const int64_t Nw = kSwiglu ? 2 * F : H;  // rows of W_e
  const int64_t n0 = int64_t(blockIdx.y) * (kSwiglu ? kBN / 2 : kBN);
  const char* we =
      static_cast<const char*>(kSwiglu ? w.w13 : w.w2) + size_t(e) * expert_bytes<kFmt>(Nw, Kd);
  const uint8_t* wmx = (kSwiglu ? w.w13_mx : w.w2_mx) +
                       (kFmt == Fmt::kMxfp4 ? size_t(e) * size_t(Nw * (Kd / 32)) : 0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;

  // The W row of B-tile row i (-1: outside).
  auto b_row = [&](int i) -> int64_t {
    if (kSwiglu) {
      const int64_t f = n0 + (i & 31);
      if (f >= F) return -1;
      return i < 32 ? gate_row(w, f) : up_row(w, f);
    }
    const int64_t n = n0 + i;
    return n < H ? n : -1;
  };
  // The A row of tile row r (-1: outside).
  auto a_row = [&](int r) -> int64_t {
    if (r >= rows) return -1;
    return kSwiglu ? int64_t(perm[m0 + r] / topk) * ld_a : int64_t(m0 + r) * ld_a;
  };
  // Each thread stages 2 chunks of 8 of A and 2 of B per k tile.
  uint4 ra[2], rb[2];
  int64_t arow[2], brow[2];
  int acol[2];
#pragma unroll
  for (int c = 0; c < 2; ++c) {
    const int idx = tid + c * 128;  // 256 chunks: 64 rows x 4 chunks of 8
    acol[c] = (idx & 3) * 8;
    arow[c] = a_row(idx >> 2);
    brow[c] = b_row(idx >> 2);
  }
  auto load = [&](int64_t k0) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int64_t k = k0 + acol[c];
      const bool kin = k < Kd;
      ra[c] = arow[c] >= 0 && kin ? *reinterpret_cast<const uint4*>(a + arow[c] + k)
                                  : make_uint4(0, 0, 0, 0);
      if (brow[c] < 0 || !kin) {
        rb[c] = make_uint4(0, 0, 0, 0);
      } else if constexpr (kFmt != Fmt::kBf16) {
        float f[8];
        load8<kFmt>(we, wmx, brow[c], Kd, k, f);
        rb[c] = make_uint4(pack_bf16x2(f[0], f[1]), pack_bf16x2(f[2], f[3]),
                           pack_bf16x2(f[4], f[5]), pack_bf16x2(f[6], f[7]));
      } else {
        rb[c] =
            *reinterpret_cast<const uint4*>(reinterpret_cast<const bf16*>(we) + brow[c] * Kd + k);
      }
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int r = (tid + c * 128) >> 2;
      *reinterpret_cast<uint4*>(&sa[buf][r][acol[c]]) = ra[c];
      *reinterpret_cast<uint4*>(&sb[buf][r][acol[c]]) = rb[c];
    }
  };
  // Warp w's two n8 tiles: gate and up of columns [8w, 8w + 8) (kSwiglu), else [16w, 16w + 16).
  const int nb0 = kSwiglu ? 8 * warp : 16 * warp, nb1 = kSwiglu ? 32 + 8 * warp : 16 * warp + 8;
  float acc[kMoeTileM / 16][2][4] = {};
  load(0);
  store(0);
  __syncthreads();
  const int64_t ktiles = (Kd + kBK - 1) / kBK;
  for (int64_t kt = 0; kt < ktiles; ++kt) {
    const int buf = int(kt & 1);
    if (kt + 1 < ktiles) load((kt + 1) * kBK);
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      const int kc = kk * 16 + 2 * tq;
      uint32_t b[2][2];
      b[0][0] = *reinterpret_cast<const uint32_t*>(&sb[buf][nb0 + g][kc]);
      b[0][1] = *reinterpret_cast<const uint32_t*>(&sb[buf][nb0 + g][kc + 8]);
      b[1][0] = *reinterpret_cast<const uint32_t*>(&sb[buf][nb1 + g][kc]);
      b[1][1] = *reinterpret_cast<const uint32_t*>(&sb[buf][nb1 + g][kc + 8]);
#pragma unroll
      for (int mt = 0; mt < kMoeTileM / 16; ++mt) {
        uint32_t af[4];
        af[0] = *reinterpret_cast<const uint32_t*>(&sa[buf][mt * 16 + g][kc]);
        af[1] = *reinterpret_cast<const uint32_t*>(&sa[buf][mt * 16 + g + 8][kc]);
        af[2] = *reinterpret_cast<const uint32_t*>(&sa[buf][mt * 16 + g][kc + 8]);
        af[3] = *reinterpret_cast<const uint32_t*>(&sa[buf][mt * 16 + g + 8][kc + 8]);
        mma_m16n8k16(acc[mt][0], af, b[0][0], b[0][1]);
        mma_m16n8k16(acc[mt][1], af, b[1][0], b[1][1]);
      }
    }
    if (kt + 1 < ktiles) store(buf ^ 1);
    __syncthreads();
  }
  store_tile<kFmt == Fmt::kFp8, kSwiglu>(acc, w, e, m0, rows, n0, warp, g, tq, out);
}

// out[t, :] = sum_j weights[t, j] * y[slot_row[t K + j], :] (choice order, fp32).
__global__ void __launch_bounds__(256)
    moe_combine_kernel(const bf16* __restrict__ y, int64_t H, int32_t K,
                       const int32_t* __restrict__ slot_row, const float* __restrict__ weights,
                       bf16* __restrict__ out, int64_t ld_out) {
  const int32_t t = blockIdx.x;
  for (int64_t n = threadIdx.x; n < H; n += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < K; ++j) {
      const int32_t s = t * K + j;
      acc = fmaf(weights[s], __bfloat162float(y[int64_t(slot_row[s]) * H + n]), acc);
    }
    out[int64_t(t) * ld_out + n] = __float2bfloat16(acc);
  }
}

bool shapes_ok(const MoeWeightsView& w, int32_t top_k) {
  const bool fp8 = w.format == Fmt::kFp8, mx = w.format == Fmt::kMxfp4;
  const int64_t align = mx ? 32 : fp8 ? 16 : 8;
  return w.num_experts > 0 && w.num_experts <= kMoeMaxExperts && top_k > 0 &&
         top_k <= kMoeMaxTopK && top_k <= w.num_experts && w.hidden % align == 0 &&
         w.inter % align == 0 && w.hidden > 0 && w.inter > 0 &&
         (!fp8 || (w.w13_scale && w.w2_scale)) && (!mx || (w.w13_mx && w.w2_mx));
}

template <Fmt kFmt>
void launch_gemv_as(dim3 g1, dim3 g2, const bf16* x, int64_t ld_x, int32_t K, const int32_t* ids,
                    const float* weights, const MoeWeightsView& w, bf16* act, int32_t* counts,
                    bf16* out, int64_t ld_out, cudaStream_t stream) {
  gate_up_gemv_kernel<kFmt><<<g1, 128, 0, stream>>>(x, ld_x, K, ids, w, act, counts);
  down_combine_gemv_kernel<kFmt><<<g2, 128, 0, stream>>>(act, K, ids, weights, w, out, ld_out);
}

template <Fmt kFmt>
void launch_grouped_as(dim3 g1, dim3 g2, const bf16* x, int64_t ld_x, int32_t K,
                       const int32_t* offsets, const int32_t* tile_off, const int32_t* perm,
                       const MoeWeightsView& w, bf16* act, bf16* y, cudaStream_t stream) {
  grouped_gemm_kernel<kFmt, true>
      <<<g1, 128, 0, stream>>>(x, ld_x, K, offsets, tile_off, perm, w, act);
  grouped_gemm_kernel<kFmt, false>
      <<<g2, 128, 0, stream>>>(act, w.inter, K, offsets, tile_off, perm, w, y);
}

}  // namespace

cudaError_t launch_moe_topk(const void* logits, int64_t ld, int32_t T, int32_t E, int32_t K,
                            bool softmax_first, bool renorm, int32_t* ids, float* weights,
                            cudaStream_t stream) {
  if (E <= 0 || E > kMoeMaxExperts || K <= 0 || K > E || K > kMoeMaxTopK)
    return cudaErrorInvalidValue;
  if (T <= 0) return cudaSuccess;
  moe_topk_kernel<<<(T + 3) / 4, 128, 0, stream>>>(static_cast<const bf16*>(logits), ld, T, E, K,
                                                   softmax_first, renorm, ids, weights);
  return cudaGetLastError();
}

cudaError_t launch_moe_gemv(const void* x, int64_t ld_x, int32_t T, int32_t K, const int32_t* ids,
                            const float* weights, const MoeWeightsView& w, void* act,
                            int32_t* expert_counts, void* out, int64_t ld_out,
                            cudaStream_t stream) {
  if (!shapes_ok(w, K) || T > kMoeGemvMaxTokens || ld_x % 8 != 0) return cudaErrorInvalidValue;
  if (T <= 0) return cudaSuccess;
  const int cols = kGemvWarps * kGemvColsPerWarp;
  const dim3 g1(unsigned(T * K), unsigned((w.inter + cols - 1) / cols));
  const int rows = kGemvWarps * kDownRowsPerWarp;
  const dim3 g2(unsigned(T), unsigned((w.hidden + rows - 1) / rows));
  const bf16* xb = static_cast<const bf16*>(x);
  bf16* ab = static_cast<bf16*>(act);
  bf16* ob = static_cast<bf16*>(out);
  switch (w.format) {
    case Fmt::kBf16:
      launch_gemv_as<Fmt::kBf16>(g1, g2, xb, ld_x, K, ids, weights, w, ab, expert_counts, ob,
                                 ld_out, stream);
      break;
    case Fmt::kFp8:
      launch_gemv_as<Fmt::kFp8>(g1, g2, xb, ld_x, K, ids, weights, w, ab, expert_counts, ob, ld_out,
                                stream);
      break;
    case Fmt::kMxfp4:
      launch_gemv_as<Fmt::kMxfp4>(g1, g2, xb, ld_x, K, ids, weights, w, ab, expert_counts, ob,
                                  ld_out, stream);
      break;
  }
  return cudaGetLastError();
}

size_t moe_grouped_scratch_bytes(int32_t T, int32_t K, const MoeWeightsView& w) {
  return GroupedLayout(int64_t(T) * K, w.num_experts, w.hidden, w.inter).total;
}

cudaError_t launch_moe_grouped(const void* x, int64_t ld_x, int32_t T, int32_t K,
                               const int32_t* ids, const float* weights, const MoeWeightsView& w,
                               void* scratch, size_t scratch_bytes, int32_t* expert_counts,
                               void* out, int64_t ld_out, cudaStream_t stream) {
  if (!shapes_ok(w, K) || ld_x % 8 != 0) return cudaErrorInvalidValue;
  if (T <= 0) return cudaSuccess;
  const int64_t n = int64_t(T) * K, E = w.num_experts;
  const GroupedLayout L(n, E, w.hidden, w.inter);
  if (scratch_bytes < L.total || n > INT32_MAX / 2) return cudaErrorInvalidValue;
  char* s = static_cast<char*>(scratch);
  int32_t* offsets = reinterpret_cast<int32_t*>(s + L.offsets);
  int32_t* tile_off = reinterpret_cast<int32_t*>(s + L.tile_off);
  int32_t* perm = reinterpret_cast<int32_t*>(s + L.perm);
  int32_t* slot_row = reinterpret_cast<int32_t*>(s + L.slot_row);
  bf16* act = reinterpret_cast<bf16*>(s + L.act);
  bf16* y = reinterpret_cast<bf16*>(s + L.y);
  moe_permute_kernel<<<1, kPermThreads, 0, stream>>>(ids, int32_t(n), int32_t(E), offsets, tile_off,
                                                     perm, slot_row, expert_counts);
  // Tiles: sum over experts of ceil(count / 64) <= n / 64 + (experts with a token).
  const unsigned max_tiles = unsigned((n + kMoeTileM - 1) / kMoeTileM + std::min<int64_t>(E, n));
  const dim3 g1(max_tiles, unsigned((w.inter + kBN / 2 - 1) / (kBN / 2)));
  const dim3 g2(max_tiles, unsigned((w.hidden + kBN - 1) / kBN));
  const bf16* xb = static_cast<const bf16*>(x);
  switch (w.format) {
    case Fmt::kBf16:
      launch_grouped_as<Fmt::kBf16>(g1, g2, xb, ld_x, K, offsets, tile_off, perm, w, act, y,
                                    stream);
      break;
    case Fmt::kFp8:
      launch_grouped_as<Fmt::kFp8>(g1, g2, xb, ld_x, K, offsets, tile_off, perm, w, act, y, stream);
      break;
    case Fmt::kMxfp4:
      launch_grouped_as<Fmt::kMxfp4>(g1, g2, xb, ld_x, K, offsets, tile_off, perm, w, act, y,
                                     stream);
      break;
  }
  moe_combine_kernel<<<unsigned(T), 256, 0, stream>>>(y, w.hidden, K, slot_row, weights,
                                                      static_cast<bf16*>(out), ld_out);
  return cudaGetLastError();
}

}  // namespace inferd::cuda
