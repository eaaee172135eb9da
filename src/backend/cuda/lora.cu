// Batched multi-LoRA on the GPU (lora.h; issue 29), SGMV-style: the rows of a step are grouped by
// adapter slot into tiles of at most 64 rows on the host (build_lora_tiles, in the step's one
// metadata upload), so a slot's A and B are read once per tile, not once per row, and one captured
// CUDA graph serves any mix of adapters and the base model (its grids depend only on the number of
// rows and slots; tiles past the step's count return at once).
// Shrink, x A_s^T over K chunks (split-K: partial sums [splits, T, R] fp32, added by the expand):
//  - steps of at most 32 rows (decode): SIMT, grid (splits, tiles, R / 32), 8 warps of 4 rank
//    columns; a block stages its rows' 256-element pieces of x in shared memory, each lane holds 16
//    bytes of A for its warp's 4 columns and the warp-reduced dot of row r lands in lane r.
//  - larger steps (prefill, big decode batches): tensor cores (mma.sync m16n8k16 bf16, fp32
//    sums), grid (splits, tiles, R / 64), 4 warps of 16 rows x 64 columns, x and A in 64-wide K
//    steps through shared memory.
// Expand: grid (N / 256, tiles); a block sums the splits of its tile's rows (only the parts its
// 256 outputs touch) into shared memory, each thread one output n, 8 rows at a time, B read in
// 16-byte pieces; adds into the base GEMM's bf16 output in place (fp32 sums, one rounding).
// So each merged linear (qkv, o, gate_up, down) costs two launches whatever the mix.
#include <cuda_bf16.h>

#include <algorithm>

#include "backend/cuda/lora.h"
#include "backend/cuda/mma.cuh"

namespace inferd::cuda {

namespace {

constexpr int kSimtMaxRows = 32;  // steps of at most this many rows take the SIMT shrink
constexpr int kSimtPiece = 256;   // K elements of one SIMT pass (32 lanes x 8)
constexpr int kSimtMaxSplits = 64;
constexpr int kSimtCols = 32;  // rank columns a SIMT block computes (8 warps x 4)
constexpr int kMmaCols = 64;   // rank columns an mma block computes
constexpr int kMmaK = 64;      // K elements of one mma pass
constexpr int kMmaMaxSplits = 8;
constexpr int kMmaSplitRows = 4096;  // splits x rows at most (the partial scratch)
constexpr int kExpandThreads = 256;
constexpr int kExpandSmemFloats = 8192;  // 32 KiB of row sums a block

struct Plan {
  bool simt = false;
  int32_t splits = 1;
  int64_t kc = 0;  // K elements a split covers
};

int num_sms() {
  static const int n = [] {
    int dev = 0, v = 132;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      return 132;
    }
    return v;
  }();
  return n;
}

Plan shrink_plan(int32_t num_tokens, int32_t max_tiles, int64_t K, int64_t R) {
  Plan p;
  p.simt = num_tokens <= kSimtMaxRows;
  const int64_t unit = p.simt ? kSimtPiece : kMmaK;
  const int64_t pieces = std::max<int64_t>(1, (K + unit - 1) / unit);
  int64_t want;
  if (p.simt) {
    want = std::min<int64_t>(pieces, kSimtMaxSplits);
  } else {
    const int64_t blocks = int64_t(std::max(max_tiles, 1)) * ((R + kMmaCols - 1) / kMmaCols);
    want = std::clamp<int64_t>((2 * num_sms() + blocks - 1) / blocks, 1, kMmaMaxSplits);
    want = std::min<int64_t>(want, std::max<int64_t>(1, kMmaSplitRows / num_tokens));
    want = std::min(want, pieces);
  }
  p.kc = (pieces + want - 1) / want * unit;
  p.splits = int32_t((K + p.kc - 1) / p.kc);
  return p;
}

struct Tile {
  int32_t n = 0, slot = -1;
  const int32_t* rows = nullptr;
};

// Tile `i` of the step's metadata; n = 0 past the last one.
__device__ __forceinline__ Tile read_tile(const int32_t* tiles, int32_t T, int32_t i) {
  Tile t;
  if (i >= tiles[0]) return t;
  const int32_t* e = tiles + 1 + 3 * i;
  t.rows = tiles + 1 + 3 * T + e[0];
  t.n = e[1];
  t.slot = e[2];
  return t;
}

// Eight bf16 values at p[k..k+8) that lie below `limit` (zeros past it), as one uint4.
__device__ __forceinline__ uint4 load8(const __nv_bfloat16* p, int64_t k, int64_t limit, bool vec) {
  if (vec && k + 8 <= limit) return *reinterpret_cast<const uint4*>(p + k);
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t lo = k + 2 * i < limit ? __bfloat16_as_ushort(p[k + 2 * i]) : 0u;
    const uint32_t hi = k + 2 * i + 1 < limit ? __bfloat16_as_ushort(p[k + 2 * i + 1]) : 0u;
    w[i] = lo | (hi << 16);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

__global__ void __launch_bounds__(256)
    lora_shrink_simt(const __nv_bfloat16* __restrict__ x, int64_t ld_x, int32_t num_rows,
                     const __nv_bfloat16* __restrict__ a, const int32_t* __restrict__ tiles,
                     int32_t T, int64_t K, int64_t R, int64_t kc, float* __restrict__ partial,
                     bool vec) {
  const Tile tl = read_tile(tiles, T, int32_t(blockIdx.y));
  if (tl.n == 0) return;
  __shared__ uint4 xs[kSimtMaxRows][kSimtPiece / 8];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t c0 = int64_t(blockIdx.z) * kSimtCols + warp * 4;
  const int nc = int(c0 >= R ? 0 : (R - c0 < 4 ? R - c0 : 4));
  const int64_t k0 = int64_t(blockIdx.x) * kc, k1 = k0 + kc < K ? k0 + kc : K;
  const __nv_bfloat16* ar = a + (int64_t(tl.slot) * R + c0) * K;
  float res[4] = {0.f, 0.f, 0.f, 0.f};  // lane r: row r's sums of this warp's columns
  for (int64_t kp = k0; kp < k1; kp += kSimtPiece) {
    __syncthreads();
    for (int i = threadIdx.x; i < tl.n * (kSimtPiece / 8); i += blockDim.x) {
      const int r = i / (kSimtPiece / 8), q = i % (kSimtPiece / 8);
      const int32_t t = tl.rows[r];
      xs[r][q] = t < num_rows ? load8(x + int64_t(t) * ld_x, kp + q * 8, k1, vec) : uint4{};
    }
    __syncthreads();
    if (nc == 0) continue;
    float af[4][8];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (j < nc) {
        bf16x8_to_float(load8(ar + j * K, kp + lane * 8, k1, vec), af[j]);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) af[j][e] = 0.f;
      }
    }
    for (int r = 0; r < tl.n; ++r) {
      float xf[8];
      bf16x8_to_float(xs[r][lane], xf);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) s += xf[e] * af[j][e];
#pragma unroll
        for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == r) res[j] += s;
      }
    }
  }
  if (lane < tl.n) {
    const int32_t t = tl.rows[lane];
    float* pr = partial + (int64_t(blockIdx.x) * T + t) * R + c0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (j < nc) pr[j] = res[j];
    }
  }
}

__global__ void __launch_bounds__(128)
    lora_shrink_mma(const __nv_bfloat16* __restrict__ x, int64_t ld_x, int32_t num_rows,
                    const __nv_bfloat16* __restrict__ a, const int32_t* __restrict__ tiles,
                    int32_t T, int64_t K, int64_t R, int64_t kc, float* __restrict__ partial,
                    bool vec) {
  const Tile tl = read_tile(tiles, T, int32_t(blockIdx.y));
  if (tl.n == 0) return;
  constexpr int kLd = kMmaK + 8;  // bf16 row stride: fragment loads without bank conflicts
  __shared__ __align__(16) __nv_bfloat16 xs[kLoraTileRows][kLd];
  __shared__ __align__(16) __nv_bfloat16 as[kMmaCols][kLd];
  __shared__ int32_t row_of[kLoraTileRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  const int64_t c0 = int64_t(blockIdx.z) * kMmaCols;
  const int64_t k0 = int64_t(blockIdx.x) * kc, k1 = k0 + kc < K ? k0 + kc : K;
  for (int i = threadIdx.x; i < kLoraTileRows; i += blockDim.x) {
    const int32_t t = i < tl.n ? tl.rows[i] : -1;
    row_of[i] = t < num_rows ? t : -1;
  }
  const __nv_bfloat16* ab = a + int64_t(tl.slot) * R * K;
  float acc[kMmaCols / 8][4] = {};
  const bool busy = warp * 16 < tl.n;
  for (int64_t kp = k0; kp < k1; kp += kMmaK) {
    __syncthreads();
    for (int i = threadIdx.x; i < kLoraTileRows * (kMmaK / 8); i += blockDim.x) {
      const int r = i / (kMmaK / 8), q = i % (kMmaK / 8);
      const int32_t t = row_of[r];
      *reinterpret_cast<uint4*>(&xs[r][q * 8]) =
          t >= 0 ? load8(x + int64_t(t) * ld_x, kp + q * 8, k1, vec) : uint4{};
      const int64_t c = c0 + r;
      *reinterpret_cast<uint4*>(&as[r][q * 8]) =
          c < R ? load8(ab + c * K, kp + q * 8, k1, vec) : uint4{};
    }
    __syncthreads();
    if (!busy) continue;
#pragma unroll
    for (int ks = 0; ks < kMmaK / 16; ++ks) {
      const int kk = ks * 16 + 2 * tq;
      uint32_t fa[4];
      fa[0] = *reinterpret_cast<const uint32_t*>(&xs[warp * 16 + g][kk]);
      fa[1] = *reinterpret_cast<const uint32_t*>(&xs[warp * 16 + g + 8][kk]);
      fa[2] = *reinterpret_cast<const uint32_t*>(&xs[warp * 16 + g][kk + 8]);
      fa[3] = *reinterpret_cast<const uint32_t*>(&xs[warp * 16 + g + 8][kk + 8]);
#pragma unroll
      for (int j = 0; j < kMmaCols / 8; ++j) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(&as[j * 8 + g][kk]);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(&as[j * 8 + g][kk + 8]);
        mma_m16n8k16(acc[j], fa, b0, b1);
      }
    }
  }
  if (!busy) return;
  const int32_t t_lo = row_of[warp * 16 + g], t_hi = row_of[warp * 16 + g + 8];
  float* base = partial + int64_t(blockIdx.x) * T * R;
#pragma unroll
  for (int j = 0; j < kMmaCols / 8; ++j) {
    const int64_t c = c0 + j * 8 + 2 * tq;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      if (c + e >= R) continue;
      if (t_lo >= 0) base[int64_t(t_lo) * R + c + e] = acc[j][e];
      if (t_hi >= 0) base[int64_t(t_hi) * R + c + e] = acc[j][2 + e];
    }
  }
}

struct PartEnds {
  int64_t end[3];
};

// The part output n belongs to (static indexing: the ends stay in registers).
__device__ __forceinline__ int part_of(int64_t n, int num_parts, const PartEnds& parts) {
  return int(num_parts > 1 && n >= parts.end[0]) + int(num_parts > 2 && n >= parts.end[1]);
}

__global__ void __launch_bounds__(kExpandThreads)
    lora_expand_kernel(const float* __restrict__ partial, int32_t splits,
                       const __nv_bfloat16* __restrict__ b, const int32_t* __restrict__ tiles,
                       int32_t num_rows, int32_t T, int64_t N, int64_t R, int64_t mr, int num_parts,
                       PartEnds parts, __nv_bfloat16* __restrict__ out, int64_t ld_out,
                       int chunk_rows, bool vec) {
  const Tile tl = read_tile(tiles, T, int32_t(blockIdx.y));
  if (tl.n == 0) return;
  // [chunk_rows][ld]: the split sums of this block's columns.
  extern __shared__ __align__(16) float ts[];
  const int64_t n0 = int64_t(blockIdx.x) * kExpandThreads;
  const int64_t n = n0 + threadIdx.x;
  const int64_t n_last = (n0 + kExpandThreads < N ? n0 + kExpandThreads : N) - 1;
  const int64_t cbeg = int64_t(part_of(n0, num_parts, parts)) * mr;
  const int64_t ncols = (int64_t(part_of(n_last, num_parts, parts)) + 1) * mr - cbeg;
  const int64_t ld = ncols + 8;  // reads of a part's last 8 columns may run past it (times 0)
  const int ldi = int(ld);
  const int64_t bcol = n < N ? int64_t(part_of(n, num_parts, parts)) * mr : cbeg;
  const __nv_bfloat16* br = b + (int64_t(tl.slot) * N + (n < N ? n : 0)) * R + bcol;
  const float* tcol = ts + (bcol - cbeg);
  for (int r0 = 0; r0 < tl.n; r0 += chunk_rows) {
    const int rc = tl.n - r0 < chunk_rows ? tl.n - r0 : chunk_rows;
    __syncthreads();
    for (int i = threadIdx.x; i < rc * ldi; i += blockDim.x) {
      const int r = i / ldi, c = i % ldi;
      float s = 0.f;
      if (c < ncols) {
        const float* p = partial + int64_t(tl.rows[r0 + r]) * R + cbeg + c;
        for (int j = 0; j < splits; ++j) s += p[int64_t(j) * T * R];
      }
      ts[i] = s;
    }
    __syncthreads();
    if (n >= N) continue;
    for (int g0 = 0; g0 < rc; g0 += 8) {
      float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      const int gn = rc - g0 < 8 ? rc - g0 : 8;
      for (int64_t c = 0; c < mr; c += 8) {
        float bf[8];
        bf16x8_to_float(load8(br, c, mr, vec), bf);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          if (j >= gn) break;
          const float* tr = tcol + (g0 + j) * ld + c;
          float tv[8];
          if (vec) {  // ld, the part offsets and c are multiples of 8 floats: 16-byte reads
            const float4 u = *reinterpret_cast<const float4*>(tr);
            const float4 v = *reinterpret_cast<const float4*>(tr + 4);
            tv[0] = u.x, tv[1] = u.y, tv[2] = u.z, tv[3] = u.w;
            tv[4] = v.x, tv[5] = v.y, tv[6] = v.z, tv[7] = v.w;
          } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) tv[e] = tr[e];
          }
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[j] += tv[e] * bf[e];
        }
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (j >= gn) break;
        const int32_t t = tl.rows[r0 + g0 + j];
        if (t >= num_rows) continue;
        __nv_bfloat16* o = out + int64_t(t) * ld_out + n;
        *o = __float2bfloat16(__bfloat162float(*o) + acc[j]);
      }
    }
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

void build_lora_tiles(std::span<const int32_t> slots, int32_t* meta, std::span<int64_t> order) {
  const int32_t T = int32_t(slots.size());
  size_t m = 0;
  for (int32_t t = 0; t < T; ++t) {
    if (slots[size_t(t)] >= 0) order[m++] = (int64_t(slots[size_t(t)]) << 32) | int64_t(t);
  }
  std::sort(order.begin(), order.begin() + ptrdiff_t(m));
  int32_t* tiles = meta + 1;
  int32_t* rows = meta + 1 + 3 * size_t(T);
  int32_t nt = 0;
  for (size_t i = 0; i < m; ++i) rows[i] = int32_t(order[i] & 0xffffffff);
  for (size_t i = 0; i < m;) {
    const int64_t slot = order[i] >> 32;
    size_t j = i;
    while (j < m && (order[j] >> 32) == slot && j - i < size_t(kLoraTileRows)) ++j;
    tiles[3 * nt] = int32_t(i);
    tiles[3 * nt + 1] = int32_t(j - i);
    tiles[3 * nt + 2] = int32_t(slot);
    ++nt;
    i = j;
  }
  meta[0] = nt;
}

int32_t lora_max_tiles(int32_t num_tokens, int32_t num_slots) {
  if (num_tokens <= 0 || num_slots <= 0) return 0;
  const int32_t bound =
      (num_tokens + kLoraTileRows - 1) / kLoraTileRows - 1 + std::min(num_tokens, num_slots);
  return std::min(num_tokens, bound);
}

int32_t lora_shrink_splits(int32_t num_tokens, int32_t max_tiles, int64_t in_features,
                           int64_t rank) {
  return shrink_plan(num_tokens, max_tiles, in_features, rank).splits;
}

size_t lora_partial_floats(int32_t max_tokens, int64_t rank) {
  const int64_t rows = std::max<int64_t>(
      {int64_t(kSimtMaxSplits) * kSimtMaxRows, int64_t(kMmaSplitRows), int64_t(max_tokens)});
  return size_t(rows) * size_t(std::max<int64_t>(rank, 0));
}

cudaError_t launch_lora_shrink(const void* x, int64_t ld_x, int32_t num_rows, const void* a,
                               const int32_t* tiles, int32_t num_tokens, int32_t max_tiles,
                               int64_t in_features, int64_t rank, float* partial,
                               cudaStream_t stream) {
  if (num_tokens <= 0 || max_tiles <= 0 || rank <= 0 || in_features <= 0) return cudaSuccess;
  const Plan p = shrink_plan(num_tokens, max_tiles, in_features, rank);
  const bool vec = in_features % 8 == 0 && ld_x % 8 == 0 && aligned16(x) && aligned16(a);
  const auto* xb = static_cast<const __nv_bfloat16*>(x);
  const auto* ab = static_cast<const __nv_bfloat16*>(a);
  if (p.simt) {
    const dim3 grid(unsigned(p.splits), unsigned(max_tiles),
                    unsigned((rank + kSimtCols - 1) / kSimtCols));
    lora_shrink_simt<<<grid, 256, 0, stream>>>(xb, ld_x, num_rows, ab, tiles, num_tokens,
                                               in_features, rank, p.kc, partial, vec);
  } else {
    const dim3 grid(unsigned(p.splits), unsigned(max_tiles),
                    unsigned((rank + kMmaCols - 1) / kMmaCols));
    lora_shrink_mma<<<grid, 128, 0, stream>>>(xb, ld_x, num_rows, ab, tiles, num_tokens,
                                              in_features, rank, p.kc, partial, vec);
  }
  return cudaGetLastError();
}

cudaError_t launch_lora_expand(const float* partial, int32_t splits, const void* b,
                               const int32_t* tiles, int32_t num_rows, int32_t num_tokens,
                               int32_t max_tiles, int64_t out_features, int64_t rank,
                               int64_t max_rank, int32_t num_parts, const int64_t* part_end,
                               void* out, int64_t ld_out, cudaStream_t stream) {
  if (num_tokens <= 0 || max_tiles <= 0 || out_features <= 0 || rank <= 0) return cudaSuccess;
  if (num_parts < 1 || num_parts > 3 || max_rank <= 0 || int64_t(num_parts) * max_rank > rank)
    return cudaErrorInvalidValue;
  const int64_t ld = rank + 8;
  const int64_t chunk = std::min<int64_t>(kLoraTileRows, kExpandSmemFloats / ld / 8 * 8);
  if (chunk < 8) return cudaErrorInvalidValue;  // a rank this wide needs more shared memory
  PartEnds parts{{0, 0, 0}};
  for (int p = 0; p < num_parts; ++p) parts.end[p] = part_end[p];
  const bool vec = max_rank % 8 == 0 && rank % 8 == 0 && aligned16(b);
  const dim3 grid(unsigned((out_features + kExpandThreads - 1) / kExpandThreads),
                  unsigned(max_tiles));
  const size_t smem = size_t(chunk) * size_t(ld) * sizeof(float);
  lora_expand_kernel<<<grid, kExpandThreads, smem, stream>>>(
      partial, splits, static_cast<const __nv_bfloat16*>(b), tiles, num_rows, num_tokens,
      out_features, rank, max_rank, num_parts, parts, static_cast<__nv_bfloat16*>(out), ld_out,
      int(chunk), vec);
  return cudaGetLastError();
}

}  // namespace inferd::cuda
