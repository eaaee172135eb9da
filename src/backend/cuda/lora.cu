// Batched multi-LoRA on the GPU (lora.h; issue 29), SGMV-style: the rows of a step are grouped by
// adapter slot into tiles of at most 64 rows on the host (build_lora_tiles, in the step's one
// metadata upload), so a slot's A and B are read once per tile, not once per row, and one captured
// CUDA graph serves any mix of adapters and the base model (its grids depend only on the number of
// rows and slots; tiles past the step's count return at once).
// Shrink, x A_s^T over K chunks (split-K: partial sums [splits, T, R] fp32):
//  - steps of at most 8 rows (decode): SIMT, grid (splits, tiles, R / 32), 8 warps of 4 rank
//    columns, x and A read in 16-byte pieces straight into registers, all rows' sums kept in
//    registers over the split and reduced once (one transposing warp reduction); the expand adds
//    the splits.
//  - larger steps (prefill, big decode batches): tensor cores (mma.sync m16n8k16 bf16, fp32
//    sums), grid (splits, tiles, R / 64), 4 warps of 16 rows x 64 columns, x and A in 64-wide K
//    steps through shared memory, double-buffered by cp.async; splits enough for ~4 blocks an SM.
//    The last block of a tile's splits to finish (an atomic ticket a (tile, column block), reset
//    by that block, so graph replays find it zero) adds the splits in a fixed order into split 0.
// Expand: tensor cores too, grid (N / 128, tiles); a block stages its tile's shrink sums (only the
// rank columns of the parts its 128 outputs touch) in shared memory as two bf16 halves (hi + lo:
// about 16 bits of mantissa, so the expand adds no visible rounding), each warp computes all the
// tile's rows x 32 outputs with B fragments read straight from global memory, and adds into the
// base GEMM's bf16 output in place (fp32 sums, one rounding). The output is read and written once,
// which is what bounds the expand of a large step. The expand is the shrink's programmatic
// dependent (griddepcontrol): it launches while the shrink runs and loads its B fragments before
// it waits for the shrink's sums, which hides most of a decode step's launch latency.
// So each merged linear (qkv, o, gate_up, down) costs two launches whatever the mix.
#include <cuda_bf16.h>

#include <algorithm>

#include "backend/cuda/lora.h"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/pdl.cuh"

namespace inferd::cuda {

namespace {

constexpr int kSimtMaxRows = 8;  // steps of at most this many rows take the SIMT shrink
constexpr int kSimtPiece = 256;  // K elements of one SIMT pass (32 lanes x 8)
constexpr int kSimtMaxSplits = 32;
constexpr int kSimtCols = 32;    // rank columns a SIMT block computes (8 warps x 4)
constexpr int kMmaCols = 64;     // rank columns an mma block computes
constexpr int kMmaK = 64;        // K elements of one mma pass
constexpr int kMmaMinSteps = 4;  // K passes a split covers at least
constexpr int kMmaMaxSplits = 32;
constexpr int kMmaSplitRows = 16384;  // splits x rows at most (the partial scratch)
constexpr int kExpandN = 128;         // outputs of an expand block (4 warps x 32)
constexpr int kExpandK = 64;          // rank columns an expand block stages at once

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
    want = std::clamp<int64_t>((4 * num_sms() + blocks - 1) / blocks, 1, kMmaMaxSplits);
    want = std::min<int64_t>(want, std::max<int64_t>(1, kMmaSplitRows / num_tokens));
    want = std::min(want, std::max<int64_t>(1, pieces / kMmaMinSteps));
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

// After a shrink block wrote its split of columns [c0, c0 + ncols) for the tile's rows: the last
// of the tile's `splits` blocks (the ticket `counter`) adds all splits, in split order, into split
// 0 and sets the ticket back to 0. Every thread of the block calls it.
__device__ __forceinline__ void finish_splits(float* partial, int32_t* counter, int32_t splits,
                                              int32_t T, int64_t R, const Tile& tl,
                                              int32_t num_rows, int64_t c0, int ncols) {
  if (splits <= 1) return;
  __shared__ int last;
  __threadfence();  // this block's partial sums are visible before its ticket
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(counter, 1) == splits - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x == 0) *counter = 0;
  const int64_t stride = int64_t(T) * R;
  for (int i = threadIdx.x; i < tl.n * ncols; i += blockDim.x) {
    const int r = i / ncols, c = i % ncols;
    const int32_t t = tl.rows[r];
    if (t >= num_rows) continue;
    float* p = partial + int64_t(t) * R + c0 + c;
    float s = 0.f;
    for (int32_t j0 = 0; j0 < splits; j0 += 8) {  // 8 loads in flight, added in split order
      float l[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) l[u] = j0 + u < splits ? __ldcg(p + (j0 + u) * stride) : 0.f;
#pragma unroll
      for (int u = 0; u < 8; ++u) s += l[u];
    }
    *p = s;
  }
}

// Programmatic dependent launch (pdl.cuh): a shrink lets the expand after it start launching at
// once; the expand does what reads no earlier kernel's output (tile rows, B), then waits for the
// shrink's grid to finish and its memory to be visible.

// One step of a transposing warp reduction of 32 values a lane: the lane whose bit kO is set keeps
// the upper half of its first 2 kO values and sends the lower one, its partner the other way
// round; after the steps 16, 8, 4, 2, 1, v[0] of lane l is the warp's sum of value l.
template <int kO>
__device__ __forceinline__ void reduce_step(float (&v)[32], int lane) {
  const bool up = (lane & kO) != 0;
#pragma unroll
  for (int i = 0; i < kO; ++i) {
    const float send = up ? v[i] : v[i + kO];
    const float keep = up ? v[i + kO] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, kO);
  }
}

// Steps of at most kSimtMaxRows rows: grid (splits, tiles, R / 32), warp w computes columns
// [32 z + 4 w, +4) for every row of its tile over the split's K chunk, each lane 8 K elements of
// each 256 (16-byte loads of x and A straight from global memory, fp32 sums in registers); then
// one transposing warp reduction (31 shuffles for all 8 rows x 4 columns) leaves row l / 4,
// column l % 4 in lane l, which writes it to its split. The expand adds the splits.
__global__ void __launch_bounds__(256)
    lora_shrink_simt(const __nv_bfloat16* __restrict__ x, int64_t ld_x, int32_t num_rows,
                     const __nv_bfloat16* __restrict__ a, const int32_t* __restrict__ tiles,
                     int32_t T, int64_t K, int64_t R, int64_t kc, float* __restrict__ partial,
                     bool vec) {
  pdl_launch_dependents();
  const Tile tl = read_tile(tiles, T, int32_t(blockIdx.y));
  if (tl.n == 0) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t c0 = int64_t(blockIdx.z) * kSimtCols + warp * 4;
  if (c0 >= R) return;  // no block-wide barrier below
  const int nc = int(R - c0 < 4 ? R - c0 : 4);
  const int64_t k0 = int64_t(blockIdx.x) * kc, k1 = k0 + kc < K ? k0 + kc : K;
  const __nv_bfloat16* ar = a + (int64_t(tl.slot) * R + c0) * K;
  const __nv_bfloat16* xr[kSimtMaxRows];
#pragma unroll
  for (int r = 0; r < kSimtMaxRows; ++r) {
    const int32_t t = r < tl.n ? tl.rows[r] : num_rows;
    xr[r] = t < num_rows ? x + int64_t(t) * ld_x : nullptr;
  }
  float acc[kSimtMaxRows][4] = {};
  for (int64_t k = k0 + lane * 8; k < k1; k += kSimtPiece) {
    float af[4][8];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (j < nc) {
        bf16x8_to_float(load8(ar + j * K, k, k1, vec), af[j]);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) af[j][e] = 0.f;
      }
    }
#pragma unroll
    for (int r = 0; r < kSimtMaxRows; ++r) {
      if (xr[r] == nullptr) continue;
      float xf[8];
      bf16x8_to_float(load8(xr[r], k, k1, vec), xf);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[r][j] += xf[e] * af[j][e];
      }
    }
  }
  // Value i = 4 r + j; reduce_step leaves row l / 4, column l % 4 in lane l.
  float v[4 * kSimtMaxRows];
#pragma unroll
  for (int r = 0; r < kSimtMaxRows; ++r) {
#pragma unroll
    for (int j = 0; j < 4; ++j) v[4 * r + j] = acc[r][j];
  }
  static_assert(4 * kSimtMaxRows == 32, "one value a lane after the reduction");
  reduce_step<16>(v, lane);
  reduce_step<8>(v, lane);
  reduce_step<4>(v, lane);
  reduce_step<2>(v, lane);
  reduce_step<1>(v, lane);
  const int r = lane / 4, j = lane % 4;
  if (r < tl.n && j < nc) partial[(int64_t(blockIdx.x) * T + tl.rows[r]) * R + c0 + j] = v[0];
}

// kVec: K and ld_x multiples of 8, x and a 16-byte aligned (cp.async copies of 16 bytes).
template <bool kVec>
__global__ void __launch_bounds__(128)
    lora_shrink_mma(const __nv_bfloat16* __restrict__ x, int64_t ld_x, int32_t num_rows,
                    const __nv_bfloat16* __restrict__ a, const int32_t* __restrict__ tiles,
                    int32_t T, int64_t K, int64_t R, int64_t kc, float* __restrict__ partial,
                    int32_t* __restrict__ counters, int32_t splits) {
  pdl_launch_dependents();
  const Tile tl = read_tile(tiles, T, int32_t(blockIdx.y));
  if (tl.n == 0) return;
  constexpr int kLd = kMmaK + 8;  // bf16 row stride: fragment loads without bank conflicts
  __shared__ __align__(16) __nv_bfloat16 xs[2][kLoraTileRows][kLd];
  __shared__ __align__(16) __nv_bfloat16 as[2][kMmaCols][kLd];
  __shared__ int32_t row_of[kLoraTileRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  const int64_t c0 = int64_t(blockIdx.z) * kMmaCols;
  const int ncb = int(R - c0 < kMmaCols ? R - c0 : kMmaCols);  // this block's columns
  const int nj = (ncb + 7) / 8;
  const int64_t k0 = int64_t(blockIdx.x) * kc, k1 = k0 + kc < K ? k0 + kc : K;
  for (int i = threadIdx.x; i < kLoraTileRows; i += blockDim.x) {
    const int32_t t = i < tl.n ? tl.rows[i] : -1;
    row_of[i] = t < num_rows ? t : -1;
  }
  __syncthreads();
  const __nv_bfloat16* ab = a + (int64_t(tl.slot) * R + c0) * K;
  // One K pass of x and A into buffer `buf` (zeros past k1, for rows of no tile row, and for
  // columns past R).
  auto stage = [&](int64_t kp, int buf) {
    for (int i = threadIdx.x; i < kLoraTileRows * (kMmaK / 8); i += blockDim.x) {
      const int r = i / (kMmaK / 8), q = i % (kMmaK / 8);
      const int64_t k = kp + q * 8;
      const int32_t t = row_of[r];
      if constexpr (kVec) {
        const bool okx = t >= 0 && k < k1, oka = r < ncb && k < k1;
        cp_async16(&xs[buf][r][q * 8], okx ? x + int64_t(t) * ld_x + k : x, okx);
        cp_async16(&as[buf][r][q * 8], oka ? ab + int64_t(r) * K + k : a, oka);
      } else {
        *reinterpret_cast<uint4*>(&xs[buf][r][q * 8]) =
            t >= 0 ? load8(x + int64_t(t) * ld_x, k, k1, false) : uint4{};
        *reinterpret_cast<uint4*>(&as[buf][r][q * 8]) =
            r < ncb ? load8(ab + int64_t(r) * K, k, k1, false) : uint4{};
      }
    }
    if constexpr (kVec) asm volatile("cp.async.commit_group;\n" ::);
  };
  float acc[kMmaCols / 8][4] = {};
  const bool busy = warp * 16 < tl.n;
  const int64_t steps = (k1 - k0 + kMmaK - 1) / kMmaK;
  if (steps > 0) stage(k0, 0);
  for (int64_t s = 0; s < steps; ++s) {
    const int buf = int(s & 1);
    if (s + 1 < steps) {
      stage(k0 + (s + 1) * kMmaK, buf ^ 1);
      if constexpr (kVec) asm volatile("cp.async.wait_group 1;\n" ::);
    } else {
      if constexpr (kVec) asm volatile("cp.async.wait_group 0;\n" ::);
    }
    __syncthreads();
    if (busy) {
#pragma unroll
      for (int ks = 0; ks < kMmaK / 16; ++ks) {
        const int kk = ks * 16 + 2 * tq;
        uint32_t fa[4];
        fa[0] = *reinterpret_cast<const uint32_t*>(&xs[buf][warp * 16 + g][kk]);
        fa[1] = *reinterpret_cast<const uint32_t*>(&xs[buf][warp * 16 + g + 8][kk]);
        fa[2] = *reinterpret_cast<const uint32_t*>(&xs[buf][warp * 16 + g][kk + 8]);
        fa[3] = *reinterpret_cast<const uint32_t*>(&xs[buf][warp * 16 + g + 8][kk + 8]);
#pragma unroll
        for (int j = 0; j < kMmaCols / 8; ++j) {
          if (j >= nj) break;
          const uint32_t b0 = *reinterpret_cast<const uint32_t*>(&as[buf][j * 8 + g][kk]);
          const uint32_t b1 = *reinterpret_cast<const uint32_t*>(&as[buf][j * 8 + g][kk + 8]);
          mma_m16n8k16(acc[j], fa, b0, b1);
        }
      }
    }
    __syncthreads();  // the buffer is free for the stage after next
  }
  if (busy) {
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
  finish_splits(partial, counters + blockIdx.y * gridDim.z + blockIdx.z, splits, T, R, tl, num_rows,
                c0, ncb);
}

struct PartEnds {
  int64_t end[3];
};

// The part output n belongs to (static indexing: the ends stay in registers).
__device__ __forceinline__ int part_of(int64_t n, int num_parts, const PartEnds& parts) {
  return int(num_parts > 1 && n >= parts.end[0]) + int(num_parts > 2 && n >= parts.end[1]);
}

// Two consecutive bf16 of B (k, k + 1 of row n) as an mma B register; zeros outside the
// columns [c0, c1) of row n's part (each part's outputs read only its own block of the rank
// columns, as the CPU reference does; a block of 128 outputs may span two or three parts).
__device__ __forceinline__ uint32_t load_b2(const __nv_bfloat16* row, int64_t k, int64_t c0,
                                            int64_t c1, bool vec) {
  if (vec && k >= c0 && k + 1 < c1) return __ldg(reinterpret_cast<const unsigned int*>(row + k));
  const uint32_t lo = k >= c0 && k < c1 ? __bfloat16_as_ushort(row[k]) : 0u;
  const uint32_t hi = k + 1 >= c0 && k + 1 < c1 ? __bfloat16_as_ushort(row[k + 1]) : 0u;
  return lo | (hi << 16);
}

// vec_b: R and max_rank even, b 4-byte aligned; vec_out: N and ld_out even, out 4-byte aligned.
// kPrefetch (small steps, latency-bound): the first chunk's B fragments are loaded before the wait
// for the shrink; large steps load them as they go (fewer registers, more blocks an SM for the
// output's read-modify-write).
template <bool kPrefetch>
__global__ void __launch_bounds__(128)
    lora_expand_mma(const float* __restrict__ sums, int32_t splits,
                    const __nv_bfloat16* __restrict__ b, const int32_t* __restrict__ tiles,
                    int32_t num_rows, int32_t T, int64_t N, int64_t R, int64_t mr, int num_parts,
                    PartEnds parts, __nv_bfloat16* __restrict__ out, int64_t ld_out, bool vec_b,
                    bool vec_out) {
  const Tile tl = read_tile(tiles, T, int32_t(blockIdx.y));
  if (tl.n == 0) return;
  constexpr int kLd = kExpandK + 8;
  constexpr int kSteps = kExpandK / 16;
  __shared__ __align__(16) __nv_bfloat16 sh[kLoraTileRows][kLd];  // the sums' bf16 part
  __shared__ __align__(16) __nv_bfloat16 sl[kLoraTileRows][kLd];  // and what it leaves out
  __shared__ int32_t row_of[kLoraTileRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  const int64_t n0 = int64_t(blockIdx.x) * kExpandN;
  const int64_t n_last = (n0 + kExpandN < N ? n0 + kExpandN : N) - 1;
  // Only the rank columns of the parts this block's outputs belong to (B is zero elsewhere).
  const int64_t cbeg = int64_t(part_of(n0, num_parts, parts)) * mr;
  const int64_t cend = (int64_t(part_of(n_last, num_parts, parts)) + 1) * mr;
  for (int i = threadIdx.x; i < kLoraTileRows; i += blockDim.x) {
    const int32_t t = i < tl.n ? tl.rows[i] : -1;
    row_of[i] = t < num_rows ? t : -1;
  }
  const int nmb = (tl.n + 15) / 16;   // 16-row blocks of the tile
  const int64_t nw = n0 + warp * 32;  // this warp's first output
  const __nv_bfloat16* brow[4];
  int64_t bc0[4];  // the rank columns of each row's part: [bc0, bc0 + mr)
#pragma unroll
  for (int nb = 0; nb < 4; ++nb) {
    const int64_t n = nw + nb * 8 + g;
    brow[nb] = n < N ? b + (int64_t(tl.slot) * N + n) * R : nullptr;
    bc0[nb] = int64_t(part_of(n < N ? n : N - 1, num_parts, parts)) * mr;
  }
  // The B fragments of k step ks of the chunk at column cc: [8 outputs][low, high 8 columns].
  auto load_b = [&](int64_t cc, int ks, uint32_t(&f)[4][2]) {
    const int64_t k = cc + ks * 16 + 2 * tq;
#pragma unroll
    for (int nb = 0; nb < 4; ++nb) {
      const bool ok = brow[nb] != nullptr && cc + ks * 16 < cend;
      f[nb][0] = ok ? load_b2(brow[nb], k, bc0[nb], bc0[nb] + mr, vec_b) : 0u;
      f[nb][1] = ok ? load_b2(brow[nb], k + 8, bc0[nb], bc0[nb] + mr, vec_b) : 0u;
    }
  };
  uint32_t first[kPrefetch ? kSteps : 1][4][2];  // the first chunk's, loaded before the wait
  if constexpr (kPrefetch) {
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks) load_b(cbeg, ks, first[ks]);  // weights: no kernel writes
  }
  pdl_wait();
  float acc[4][4][4] = {};  // [row block][8 outputs][C fragment]
  const int64_t stride = int64_t(T) * R;
  for (int64_t cc = cbeg; cc < cend; cc += kExpandK) {
    const int kw = int(cend - cc < kExpandK ? cend - cc : kExpandK);
    const int kw16 = (kw + 15) / 16 * 16;
    __syncthreads();
    for (int i = threadIdx.x; i < nmb * 16 * kw16; i += blockDim.x) {
      const int r = i / kw16, c = i % kw16;
      const int32_t t = row_of[r];
      float v = 0.f;
      if (t >= 0 && c < kw) {  // 16 splits' loads in flight at a time, added in split order
        const float* p = sums + int64_t(t) * R + cc + c;
        for (int32_t j0 = 0; j0 < splits; j0 += 16) {
          float l[16];
#pragma unroll
          for (int u = 0; u < 16; ++u) l[u] = j0 + u < splits ? __ldcg(p + (j0 + u) * stride) : 0.f;
#pragma unroll
          for (int u = 0; u < 16; ++u) v += l[u];
        }
      }
      const __nv_bfloat16 hi = __float2bfloat16(v);
      sh[r][c] = hi;
      sl[r][c] = __float2bfloat16(v - __bfloat162float(hi));
    }
    __syncthreads();
    if (nw >= N) continue;
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks) {
      if (ks * 16 >= kw16) break;
      const int kk = ks * 16 + 2 * tq;
      uint32_t bf[4][2];
      if (kPrefetch && cc == cbeg) {
#pragma unroll
        for (int nb = 0; nb < 4; ++nb) {
          bf[nb][0] = first[kPrefetch ? ks : 0][nb][0];
          bf[nb][1] = first[kPrefetch ? ks : 0][nb][1];
        }
      } else {
        load_b(cc, ks, bf);
      }
#pragma unroll
      for (int mb = 0; mb < 4; ++mb) {
        if (mb >= nmb) break;
        const int r = mb * 16 + g;
        uint32_t fh[4], fl[4];
        fh[0] = *reinterpret_cast<const uint32_t*>(&sh[r][kk]);
        fh[1] = *reinterpret_cast<const uint32_t*>(&sh[r + 8][kk]);
        fh[2] = *reinterpret_cast<const uint32_t*>(&sh[r][kk + 8]);
        fh[3] = *reinterpret_cast<const uint32_t*>(&sh[r + 8][kk + 8]);
        fl[0] = *reinterpret_cast<const uint32_t*>(&sl[r][kk]);
        fl[1] = *reinterpret_cast<const uint32_t*>(&sl[r + 8][kk]);
        fl[2] = *reinterpret_cast<const uint32_t*>(&sl[r][kk + 8]);
        fl[3] = *reinterpret_cast<const uint32_t*>(&sl[r + 8][kk + 8]);
#pragma unroll
        for (int nb = 0; nb < 4; ++nb) {
          mma_m16n8k16(acc[mb][nb], fh, bf[nb][0], bf[nb][1]);
          mma_m16n8k16(acc[mb][nb], fl, bf[nb][0], bf[nb][1]);
        }
      }
    }
  }
  // out += acc: C fragment rows g and g + 8, outputs 2 tq and 2 tq + 1 of each 8.
  if (nw >= N) return;
#pragma unroll
  for (int mb = 0; mb < 4; ++mb) {
    if (mb >= nmb) break;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int32_t t = row_of[mb * 16 + g + 8 * h];
      if (t < 0) continue;
      __nv_bfloat16* orow = out + int64_t(t) * ld_out;
      if (vec_out) {
        __nv_bfloat162 old[4] = {};
#pragma unroll
        for (int nb = 0; nb < 4; ++nb) {
          const int64_t n = nw + nb * 8 + 2 * tq;
          if (n < N) old[nb] = *reinterpret_cast<const __nv_bfloat162*>(orow + n);
        }
#pragma unroll
        for (int nb = 0; nb < 4; ++nb) {
          const int64_t n = nw + nb * 8 + 2 * tq;
          if (n >= N) continue;
          const float2 o = __bfloat1622float2(old[nb]);
          *reinterpret_cast<__nv_bfloat162*>(orow + n) =
              __floats2bfloat162_rn(o.x + acc[mb][nb][2 * h], o.y + acc[mb][nb][2 * h + 1]);
        }
      } else {
#pragma unroll
        for (int nb = 0; nb < 4; ++nb) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int64_t n = nw + nb * 8 + 2 * tq + e;
            if (n >= N) continue;
            orow[n] = __float2bfloat16(__bfloat162float(orow[n]) + acc[mb][nb][2 * h + e]);
          }
        }
      }
    }
  }
}

bool aligned(const void* p, uintptr_t n) {
  return reinterpret_cast<uintptr_t>(p) % n == 0;
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

int32_t lora_expand_splits(int32_t num_tokens, int32_t max_tiles, int64_t in_features,
                           int64_t rank) {
  const Plan p = shrink_plan(num_tokens, max_tiles, in_features, rank);
  return p.simt ? p.splits : 1;
}

bool lora_fork_shrink(int32_t num_tokens) {
  return num_tokens > kSimtMaxRows;
}

size_t lora_ticket_ints(int32_t max_tokens, int64_t rank) {
  return size_t(std::max(max_tokens, 1)) * size_t(std::max<int64_t>(1, (rank + 31) / 32));
}

cudaError_t launch_lora_shrink(const void* x, int64_t ld_x, int32_t num_rows, const void* a,
                               const int32_t* tiles, int32_t num_tokens, int32_t max_tiles,
                               int64_t in_features, int64_t rank, float* partial, int32_t* tickets,
                               cudaStream_t stream) {
  if (num_tokens <= 0 || max_tiles <= 0 || rank <= 0 || in_features <= 0) return cudaSuccess;
  const Plan p = shrink_plan(num_tokens, max_tiles, in_features, rank);
  const bool vec = in_features % 8 == 0 && ld_x % 8 == 0 && aligned(x, 16) && aligned(a, 16);
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
    if (vec) {
      lora_shrink_mma<true><<<grid, 128, 0, stream>>>(xb, ld_x, num_rows, ab, tiles, num_tokens,
                                                      in_features, rank, p.kc, partial, tickets,
                                                      p.splits);
    } else {
      lora_shrink_mma<false><<<grid, 128, 0, stream>>>(xb, ld_x, num_rows, ab, tiles, num_tokens,
                                                       in_features, rank, p.kc, partial, tickets,
                                                       p.splits);
    }
  }
  return cudaGetLastError();
}

cudaError_t launch_lora_expand(const float* partial, int32_t splits, const void* b,
                               const int32_t* tiles, int32_t num_rows, int32_t num_tokens,
                               int32_t max_tiles, int64_t out_features, int64_t rank,
                               int64_t max_rank, int32_t num_parts, const int64_t* part_end,
                               void* out, int64_t ld_out, bool after_shrink, cudaStream_t stream) {
  if (num_tokens <= 0 || max_tiles <= 0 || out_features <= 0 || rank <= 0) return cudaSuccess;
  if (num_parts < 1 || num_parts > 3 || max_rank <= 0 || int64_t(num_parts) * max_rank > rank ||
      splits < 1)
    return cudaErrorInvalidValue;
  PartEnds parts{{0, 0, 0}};
  for (int p = 0; p < num_parts; ++p) parts.end[p] = part_end[p];
  const bool vec_b = max_rank % 2 == 0 && rank % 2 == 0 && aligned(b, 4);
  const bool vec_out = out_features % 2 == 0 && ld_out % 2 == 0 && aligned(out, 4);
  // A programmatic dependent of the shrink: its launch and its B loads overlap the shrink (the
  // kernel waits for the shrink's grid before it reads the sums).
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned((out_features + kExpandN - 1) / kExpandN), unsigned(max_tiles));
  cfg.blockDim = dim3(128);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = after_shrink ? 1 : 0;  // else an ordinary launch (the wait is a no-op then)
  return cudaLaunchKernelEx(
      &cfg, num_tokens <= kLoraTileRows ? lora_expand_mma<true> : lora_expand_mma<false>, partial,
      splits, static_cast<const __nv_bfloat16*>(b), tiles, num_rows, num_tokens, out_features, rank,
      max_rank, int(num_parts), parts, static_cast<__nv_bfloat16*>(out), ld_out, vec_b, vec_out);
}

}  // namespace inferd::cuda
