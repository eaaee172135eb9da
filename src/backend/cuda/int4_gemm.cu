// Int4 weights on the CUDA backend (int4_gemm.h): a Marlin-style mixed-precision GEMM for small
// batches. Each block owns 16 outputs (one tile column of the layout) and 16 * kMT activation
// rows; its kWarps warps split the inputs in runs of kU 64-wide chunks (warp w: runs w,
// w + kWarps, ...). A lane loads its 16 bytes of each chunk of its next run (and the
// chunks' (scale, zero) pairs) before it computes the current run, so 2 kU 16-byte loads a lane are
// in flight (kU = 4 for decode: 128 bytes a lane); each word turns into two bf16 B fragments in
// registers with bf16x2 arithmetic (int4_dequant_pair: one mask, one subtraction, one multiply
// and one fma per two codes; the layout puts a fragment's two codes 16 bits apart), the A
// fragments of x come straight from global memory (small, they stay in L1/L2) and 2 * kMT
// mma.sync m16n8k16 run per word (fp32 accumulators). The warps' partial sums meet in shared
// memory; the epilogue adds the bias and writes bf16 or fp32. kMT = 1 up to 16 rows (decode: the
// weight bytes stream once), 2 up to 32; from kInt4DequantMinTokens rows the host side
// dequantizes to bf16 (int4_dequantize_kernel: one tile a block, coalesced 16-byte stores) and
// calls cuBLASLt instead.
// Performance (H100, before the runs of kU loads and the bf16x2 dequantization): 700-880 GB/s of
// packed weights at T = 1..16; the new figures are to be measured with bench/cuda_int4_bench.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/int4_gemm.h"
#include "backend/cuda/mma.cuh"

namespace inferd::cuda {

namespace {

using bf16 = __nv_bfloat16;

// The dequantization of one group's codes on the way into the tensor cores, in bf16x2 arithmetic:
// a code pair arrives as 128 + q (int4_pair below); minus 128 + zero is q - zero exactly (for the
// integer zero points of AWQ / GPTQ / compressed-tensors), times the fp16 scale split in two bf16
// terms (hi + lo == scale exactly) rounds once: (q - z) * lo rounded, then fma((q - z), hi, that).
struct Int4Group {
  __nv_bfloat162 z128, s_hi, s_lo;
};

__device__ __forceinline__ Int4Group int4_group(__half2 sz) {
  const float2 f = __half22float2(sz);
  const bf16 hi = __float2bfloat16_rn(f.x);
  const bf16 lo = __float2bfloat16_rn(f.x - __bfloat162float(hi));
  Int4Group g;
  g.z128 = __bfloat162bfloat162(__float2bfloat16_rn(128.0f + f.y));
  g.s_hi = __bfloat162bfloat162(hi);
  g.s_lo = __bfloat162bfloat162(lo);
  return g;
}

// Pair j of a tile word (int4_layout.h): codes in nibbles j and j + 4 as bf16 128 + q each.
__device__ __forceinline__ uint32_t int4_pair(uint32_t word, int j) {
  return ((word >> (4 * j)) & 0x000f000fu) | 0x43004300u;
}

__device__ __forceinline__ uint32_t int4_dequant_pair(uint32_t word, int j, const Int4Group& g) {
  const uint32_t p = int4_pair(word, j);
  const __nv_bfloat162 d = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&p), g.z128);
  const __nv_bfloat162 r = __hfma2(d, g.s_hi, __hmul2(d, g.s_lo));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// The B fragments (n8 tiles lo, hi: b0, b1 each) of one tile word.
__device__ __forceinline__ void int4_b_fragments(uint32_t word, const Int4Group& lo,
                                                 const Int4Group& hi, uint32_t (&b)[2][2]) {
  b[0][0] = int4_dequant_pair(word, 0, lo);
  b[0][1] = int4_dequant_pair(word, 1, lo);
  b[1][0] = int4_dequant_pair(word, 2, hi);
  b[1][1] = int4_dequant_pair(word, 3, hi);
}

__device__ __forceinline__ uint32_t load_pair(const bf16* p, bool ok) {
  return ok ? __ldg(reinterpret_cast<const unsigned int*>(p)) : 0u;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int kk) {
  return kk == 0 ? v.x : kk == 1 ? v.y : kk == 2 ? v.z : v.w;
}

// Block: 16 outputs (tile column nb = blockIdx.x) x 16 kMT rows (from 16 kMT blockIdx.y). Warp w
// takes the runs of kU consecutive 64-input chunks r = w, w + kWarps, ...: the kU 16-byte weight
// loads (and (scale, zero) pairs) of its next run are issued before the current run is computed,
// so 2 kU loads a lane are in flight. kAligned: group_size % 64 == 0 (one group per chunk).
template <int kMT, int kWarps, int kU, bool kAligned>
__global__ void __launch_bounds__(kWarps * 32)
    int4_gemm_kernel(const uint4* __restrict__ w, const __half2* __restrict__ sz, int n, int k,
                     int group_size, const bf16* __restrict__ x, int64_t ld_x, int T,
                     const float* __restrict__ bias, void* __restrict__ out, int64_t ld_out,
                     bool out_f32) {
  __shared__ float red[kWarps][kMT * 8][32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int nb = blockIdx.x;
  const int m0 = blockIdx.y * 16 * kMT;
  const int kchunks = k / 64;
  const int n_lo = nb * 16 + g, n_hi = n_lo + 8;
  const uint4* wt = w + int64_t(nb) * kchunks * 32 + lane;
  float acc[kMT][2][4];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[mt][j][c] = 0.0f;
  const bf16* xr[kMT][2];
  bool ok[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = m0 + mt * 16 + g + 8 * h;
      ok[mt][h] = r < T;
      xr[mt][h] = x + int64_t(ok[mt][h] ? r : 0) * ld_x + 2 * t;
    }
  uint4 wn[kU];
  __half2 sn[kU][2];
  const __half2 zero2 = __floats2half2_rn(0.0f, 0.0f);
  auto load_run = [&](int run) {
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int kc = run * kU + u;
      if (kc < kchunks) {
        wn[u] = __ldg(wt + int64_t(kc) * 32);
        const int64_t grp = int64_t(kc * 64 / group_size) * n;
        sn[u][0] = __ldg(sz + grp + n_lo);
        sn[u][1] = __ldg(sz + grp + n_hi);
      } else {
        wn[u] = make_uint4(0, 0, 0, 0);
        sn[u][0] = sn[u][1] = zero2;
      }
    }
  };
  const int runs = (kchunks + kU - 1) / kU;
  if (warp < runs) load_run(warp);
  for (int run = warp; run < runs; run += kWarps) {
    uint4 wc[kU];
    __half2 sc[kU][2];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      wc[u] = wn[u];
      sc[u][0] = sn[u][0];
      sc[u][1] = sn[u][1];
    }
    if (run + kWarps < runs) load_run(run + kWarps);
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int kc = run * kU + u;
      if (kc >= kchunks) continue;  // the warp's last run may be short
      Int4Group glo = int4_group(sc[u][0]), ghi = int4_group(sc[u][1]);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const int k0 = kc * 64 + kk * 16;
        if (!kAligned && kk > 0 && k0 % group_size == 0) {  // a new group inside the chunk
          const int64_t grp = int64_t(k0 / group_size) * n;
          glo = int4_group(__ldg(sz + grp + n_lo));
          ghi = int4_group(__ldg(sz + grp + n_hi));
        }
        uint32_t b[2][2];
        int4_b_fragments(word_of(wc[u], kk), glo, ghi, b);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          uint32_t a[4];
          a[0] = load_pair(xr[mt][0] + k0, ok[mt][0]);
          a[1] = load_pair(xr[mt][1] + k0, ok[mt][1]);
          a[2] = load_pair(xr[mt][0] + k0 + 8, ok[mt][0]);
          a[3] = load_pair(xr[mt][1] + k0 + 8, ok[mt][1]);
          mma_m16n8k16(acc[mt][0], a, b[0][0], b[0][1]);
          mma_m16n8k16(acc[mt][1], a, b[1][0], b[1][1]);
        }
      }
    }
  }
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) red[warp][mt * 8 + j * 4 + c][lane] = acc[mt][j][c];
  __syncthreads();
  for (int e = threadIdx.x; e < kMT * 8 * 32; e += kWarps * 32) {
    const int i = e / 32, l = e % 32;
    float s = 0.0f;
#pragma unroll
    for (int wi = 0; wi < kWarps; ++wi) s += red[wi][i][l];
    const int mt = i / 8, j = (i / 4) % 2, c = i % 4;
    const int row = m0 + mt * 16 + (l >> 2) + (c >= 2 ? 8 : 0);
    const int col = nb * 16 + j * 8 + 2 * (l & 3) + (c & 1);
    if (row >= T) continue;
    if (bias != nullptr) s += bias[col];
    if (out_f32) {
      static_cast<float*>(out)[int64_t(row) * ld_out + col] = s;
    } else {
      static_cast<bf16*>(out)[int64_t(row) * ld_out + col] = __float2bfloat16_rn(s);
    }
  }
}

template <int kMT, int kWarps, int kU>
cudaError_t launch_mt(const uint32_t* w, const void* sz, int64_t n, int64_t k, int64_t group_size,
                      const void* x, int64_t ld_x, int32_t T, const float* bias, void* out,
                      int64_t ld_out, bool out_f32, cudaStream_t stream) {
  const dim3 grid(unsigned(n / 16), unsigned((T + 16 * kMT - 1) / (16 * kMT)));
  const auto* wv = reinterpret_cast<const uint4*>(w);
  const auto* szv = static_cast<const __half2*>(sz);
  const auto* xv = static_cast<const bf16*>(x);
  if (group_size % 64 == 0) {
    int4_gemm_kernel<kMT, kWarps, kU, true><<<grid, kWarps * 32, 0, stream>>>(
        wv, szv, int(n), int(k), int(group_size), xv, ld_x, T, bias, out, ld_out, out_f32);
  } else {
    int4_gemm_kernel<kMT, kWarps, kU, false><<<grid, kWarps * 32, 0, stream>>>(
        wv, szv, int(n), int(k), int(group_size), xv, ld_x, T, bias, out, ld_out, out_f32);
  }
  return cudaGetLastError();
}

__global__ void int4_gather_kernel(const bf16* __restrict__ x, int64_t ld_x, int64_t k,
                                   const int32_t* __restrict__ perm, bf16* __restrict__ dst) {
  const int64_t row = blockIdx.y;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < k;
       j += int64_t(gridDim.x) * blockDim.x)
    dst[row * k + j] = x[row * ld_x + perm[j]];
}

// One block per tile (16 outputs x 64 inputs): its 128 words into shared memory (one coalesced
// 512-byte read), then thread i writes output row i / 8, inputs 8 (i % 8) .. + 8 of the tile as
// one 16-byte store (each row's 128 bytes contiguous).
__global__ void __launch_bounds__(128)
    int4_dequantize_kernel(const uint32_t* __restrict__ w, const __half2* __restrict__ sz, int n,
                           int k, int group_size, int row0, bf16* __restrict__ dst) {
  __shared__ uint32_t tile[128];
  const int kc = blockIdx.x, nb = row0 / 16 + blockIdx.y;
  const int kchunks = k / 64;
  tile[threadIdx.x] = __ldg(w + (int64_t(nb) * kchunks + kc) * 128 + threadIdx.x);
  __syncthreads();
  const int r = threadIdx.x / 8, kseg = (threadIdx.x % 8) * 8;
  const int nrow = nb * 16 + r, k0 = kc * 64 + kseg;
  const float2 p = __half22float2(sz[int64_t(k0 / group_size) * n + nrow]);
  const int g = r % 8, hi = r / 8;
  uint32_t v[4];
#pragma unroll
  for (int e = 0; e < 8; e += 2) {
    float f[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int kt = kseg + e + h, kk = kt / 16, kr = kt % 16;
      const int lane = g * 4 + (kr % 8) / 2, nib = (kr % 2) * 4 + hi * 2 + kr / 8;
      f[h] = (float((tile[lane * 4 + kk] >> (4 * nib)) & 15u) - p.y) * p.x;
    }
    v[e / 2] = pack_bf16x2(f[0], f[1]);
  }
  *reinterpret_cast<uint4*>(dst + int64_t(nrow - row0) * k + k0) =
      make_uint4(v[0], v[1], v[2], v[3]);
}

__host__ __device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void int4_fill_kernel(uint32_t* __restrict__ w, int64_t words, __half2* __restrict__ sz,
                                 int64_t pairs, uint64_t seed, float scale_mean) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < words + pairs;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(seed ^ (uint64_t(i) * 0x9e3779b97f4a7c15ull));
    if (i < words) {
      w[i] = uint32_t(h);
    } else {
      const float u = float(h >> 40) * (1.0f / 16777216.0f);
      sz[i - words] = __floats2half2_rn(scale_mean * (0.5f + u), 8.0f);
    }
  }
}

}  // namespace

cudaError_t launch_int4_gemm(const uint32_t* w, const void* sz, int64_t n, int64_t k,
                             int64_t group_size, const void* x, int64_t ld_x, int32_t T,
                             const float* bias, void* out, int64_t ld_out, bool out_f32,
                             cudaStream_t stream) {
  if (!int4_shape_supported(n, k, group_size) || T < 0 || ld_x % 2 != 0 ||
      reinterpret_cast<uintptr_t>(x) % 4 != 0)
    return cudaErrorInvalidValue;
  if (T == 0) return cudaSuccess;
  if (T <= 16)
    return launch_mt<1, 8, 4>(w, sz, n, k, group_size, x, ld_x, T, bias, out, ld_out, out_f32,
                              stream);
  if (T <= 32)
    return launch_mt<2, 8, 2>(w, sz, n, k, group_size, x, ld_x, T, bias, out, ld_out, out_f32,
                              stream);
  if (T <= 64)
    return launch_mt<4, 4, 2>(w, sz, n, k, group_size, x, ld_x, T, bias, out, ld_out, out_f32,
                              stream);
  return launch_mt<8, 4, 1>(w, sz, n, k, group_size, x, ld_x, T, bias, out, ld_out, out_f32,
                            stream);
}

cudaError_t launch_int4_gather_columns(const void* x, int64_t ld_x, int32_t T, int64_t k,
                                       const int32_t* perm, void* dst, cudaStream_t stream) {
  if (T <= 0) return cudaSuccess;
  const dim3 grid(unsigned((k + 255) / 256), unsigned(T));
  int4_gather_kernel<<<grid, 256, 0, stream>>>(static_cast<const bf16*>(x), ld_x, k, perm,
                                               static_cast<bf16*>(dst));
  return cudaGetLastError();
}

cudaError_t launch_int4_dequantize_bf16(const uint32_t* w, const void* sz, int64_t n, int64_t k,
                                        int64_t group_size, int64_t row0, int64_t rows, void* dst,
                                        cudaStream_t stream) {
  if (!int4_shape_supported(n, k, group_size) || row0 < 0 || rows < 0 || row0 + rows > n ||
      reinterpret_cast<uintptr_t>(dst) % 16 != 0)
    return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (row0 % 16 != 0 || rows % 16 != 0) return cudaErrorInvalidValue;
  const dim3 grid(unsigned(k / 64), unsigned(rows / 16));
  int4_dequantize_kernel<<<grid, 128, 0, stream>>>(w, static_cast<const __half2*>(sz), int(n),
                                                   int(k), int(group_size), int(row0),
                                                   static_cast<bf16*>(dst));
  return cudaGetLastError();
}

cudaError_t launch_int4_fill_random(uint32_t* w, void* sz, int64_t n, int64_t k, int64_t group_size,
                                    uint64_t seed, float scale_mean, cudaStream_t stream) {
  if (!int4_shape_supported(n, k, group_size)) return cudaErrorInvalidValue;
  const int64_t words = n * k / 8, pairs = n * (k / group_size);
  int4_fill_kernel<<<1024, 256, 0, stream>>>(w, words, static_cast<__half2*>(sz), pairs,
                                             mix64(seed + 0x9e3779b97f4a7c15ull), scale_mean);
  return cudaGetLastError();
}

}  // namespace inferd::cuda
