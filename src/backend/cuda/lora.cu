// Batched multi-LoRA on the GPU (lora.h; issue 29), BGMV-style: every row reads its own adapter
// slot from a device array (DeviceBatch::lora_slots), so one captured CUDA graph serves any mix of
// adapters and the base model. Shrink: one warp per (row, 4 rank columns) computes x[t] . A_s[k]
// with 16-byte bf16 loads (each chunk of x once for its 4 columns) and fp32 sums into a [T, R]
// fp32 scratch; launch grid (T, R / 32) of 8 warps. Expand: one thread per (row, output) sums its
// part's max_rank columns of scratch and B_s, adds to the base GEMM's bf16 output; grid (T, N /
// 256). Rows of the base model (slot -1) return at once. A and B of a decode step's slots stay in
// L2 (an 8B rank-16 qkv slot is 0.4 MB). Figures: not measured yet (written without a GPU; the
// lead's H100 run records them).
#include <cuda_bf16.h>

#include "backend/cuda/lora.h"
#include "backend/cuda/mma.cuh"

namespace inferd::cuda {

namespace {

constexpr int kShrinkWarps = 8;
constexpr int kShrinkCols = 4;  // rank columns a warp computes
constexpr int kExpandThreads = 256;

__global__ void lora_shrink_kernel(const __nv_bfloat16* __restrict__ x, int64_t ld_x,
                                   const __nv_bfloat16* __restrict__ a,
                                   const int32_t* __restrict__ slots, int64_t K, int64_t R,
                                   float* __restrict__ tmp, bool vec) {
  const int t = blockIdx.x;
  const int s = slots[t];
  if (s < 0) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // This warp's kShrinkCols rank columns: each chunk of x is loaded once for all of them.
  const int64_t k0 = (int64_t(blockIdx.y) * kShrinkWarps + warp) * kShrinkCols;
  if (k0 >= R) return;
  const int nk = int(R - k0 < kShrinkCols ? R - k0 : kShrinkCols);
  const __nv_bfloat16* xr = x + int64_t(t) * ld_x;
  const __nv_bfloat16* ar = a + (int64_t(s) * R + k0) * K;
  float acc[kShrinkCols] = {};
  if (vec) {
    for (int64_t i = int64_t(lane) * 8; i < K; i += 32 * 8) {
      float xf[8];
      bf16x8_to_float(*reinterpret_cast<const uint4*>(xr + i), xf);
#pragma unroll
      for (int j = 0; j < kShrinkCols; ++j) {
        if (j >= nk) break;
        float af[8];
        bf16x8_to_float(*reinterpret_cast<const uint4*>(ar + j * K + i), af);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[j] += xf[e] * af[e];
      }
    }
  } else {
    for (int64_t i = lane; i < K; i += 32) {
      const float xv = __bfloat162float(xr[i]);
#pragma unroll
      for (int j = 0; j < kShrinkCols; ++j) {
        if (j >= nk) break;
        acc[j] += xv * __bfloat162float(ar[j * K + i]);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kShrinkCols; ++j) {
#pragma unroll
    for (int o = 16; o > 0; o /= 2) acc[j] += __shfl_xor_sync(0xffffffffu, acc[j], o);
  }
  if (lane == 0) {
    for (int j = 0; j < nk; ++j) tmp[int64_t(t) * R + k0 + j] = acc[j];
  }
}

struct PartEnds {
  int64_t end[3];
};

__global__ void lora_expand_kernel(const float* __restrict__ tmp,
                                   const __nv_bfloat16* __restrict__ b,
                                   const int32_t* __restrict__ slots, int64_t N, int64_t R,
                                   int64_t max_rank, int num_parts, PartEnds parts,
                                   __nv_bfloat16* __restrict__ out, int64_t ld_out) {
  const int t = blockIdx.x;
  const int s = slots[t];
  if (s < 0) return;
  const int64_t n = int64_t(blockIdx.y) * kExpandThreads + threadIdx.x;
  if (n >= N) return;
  int p = 0;
  while (p + 1 < num_parts && n >= parts.end[p]) ++p;
  const float* tr = tmp + int64_t(t) * R + int64_t(p) * max_rank;
  const __nv_bfloat16* br = b + (int64_t(s) * N + n) * R + int64_t(p) * max_rank;
  float acc = 0.0f;
  for (int64_t c = 0; c < max_rank; ++c) acc += tr[c] * __bfloat162float(br[c]);
  __nv_bfloat16* o = out + int64_t(t) * ld_out + n;
  *o = __float2bfloat16(__bfloat162float(*o) + acc);
}

}  // namespace

cudaError_t launch_lora_shrink(const void* x, int64_t ld_x, const void* a, const int32_t* slots,
                               int32_t num_tokens, int64_t in_features, int64_t rank, float* tmp,
                               cudaStream_t stream) {
  if (num_tokens <= 0 || rank <= 0) return cudaSuccess;
  const bool vec = in_features % 8 == 0 && ld_x % 8 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(a) % 16 == 0;
  const int64_t per_block = int64_t(kShrinkWarps) * kShrinkCols;
  const dim3 grid(unsigned(num_tokens), unsigned((rank + per_block - 1) / per_block));
  lora_shrink_kernel<<<grid, kShrinkWarps * 32, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(x), ld_x, static_cast<const __nv_bfloat16*>(a), slots,
      in_features, rank, tmp, vec);
  return cudaGetLastError();
}

cudaError_t launch_lora_expand(const float* tmp, const void* b, const int32_t* slots,
                               int32_t num_tokens, int64_t out_features, int64_t rank,
                               int64_t max_rank, int32_t num_parts, const int64_t* part_end,
                               void* out, int64_t ld_out, cudaStream_t stream) {
  if (num_tokens <= 0 || out_features <= 0) return cudaSuccess;
  if (num_parts < 1 || num_parts > 3) return cudaErrorInvalidValue;
  PartEnds parts{{0, 0, 0}};
  for (int p = 0; p < num_parts; ++p) parts.end[p] = part_end[p];
  const dim3 grid(unsigned(num_tokens),
                  unsigned((out_features + kExpandThreads - 1) / kExpandThreads));
  lora_expand_kernel<<<grid, kExpandThreads, 0, stream>>>(
      tmp, static_cast<const __nv_bfloat16*>(b), slots, out_features, rank, max_rank, num_parts,
      parts, static_cast<__nv_bfloat16*>(out), ld_out);
  return cudaGetLastError();
}

}  // namespace inferd::cuda
