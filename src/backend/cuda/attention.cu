// Paged attention over the KV cache for every kind of row: decode tokens, prefill chunks and
// chunked prefill (a token at position p attends to keys [first, p] of its sequence, first = 0 or
// p - window + 1).
//
// Algorithm (flash-decoding, GQA-aware): one thread block per (token, KV head, split). The block
// reads each K and V row of its key range once, with 16-byte loads, for all the query heads that
// share the KV head (up to 8 at a time, in registers). A "subgroup" of LPK lanes (LPK * 8 >=
// head_dim) holds one key row; each of the block's 128 / LPK subgroups walks every (128/LPK)-th key
// with its own online softmax (exp2 of scores pre-scaled by log2 e); the subgroups merge in shared
// memory at the end. When too few (token, KV head) pairs exist to fill the GPU (decode at small
// batch), the key range is split (splits depend only on the number of rows, so a CUDA graph
// captured for a batch size stays valid) and a second kernel combines the splits' partial results.
// Sequences with no keys (graph padding rows) give zeros. Batches of at most kMaxSeqBlockRows new
// tokens a sequence (speculative verification) run the tensor-core kernel with one block per
// (sequence, KV head, split) for all the sequence's rows (seq_blocks), splits from the sequence
// count.
//
// Speed (H200, commit 3475f50, Llama-3.1-8B shape, ncu): the mma kernel takes 61 us a layer at
// batch 256 and context ~133 (2.3 TB/s, 53 % of the copy bandwidth: too little in flight per SM at
// 3 blocks of 168 registers); at batch 1 and context 512, 6.9 us plus 5.9 us for the combine of 32
// splits (latency). The CUDA-core kernel only serves head dims other than 64/128/256.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "backend/cuda/attention_split.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/pdl.cuh"

namespace inferd::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kAttnThreads = 128;
constexpr float kLog2E = kAttnLog2E;

// gpt-oss's sink of query head qh joins the softmax denominator L (scores in the log2 domain,
// max mx): L + 2^(sink log2 e - mx), once a row (attention_split.h). No sinks: L unchanged.
__device__ __forceinline__ float add_sink(const AttentionParams& p, int32_t qh, float mx, float L) {
  return add_sink_log2(p.sinks, qh, mx, L);
}

__device__ __forceinline__ void load8(const bf16* p, float (&f)[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __bfloat1622float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

// The sequence of token t: the last s with seq_q_start[s] <= t (sequences with no new tokens share
// their start with the next one).
__device__ __forceinline__ int32_t seq_of_token(const int32_t* seq_q_start, int32_t num_seqs,
                                                int32_t t) {
  int32_t lo = 0, hi = num_seqs - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) >> 1;
    if (seq_q_start[mid] <= t) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// The keys row t attends to in split `split` of `num_splits`: [k0, k1) of its sequence (causal,
// sliding window); padding rows (kv_len 0) get an empty range. skip: the row belongs to a
// multi-token sequence that the prefill kernel computes.
struct KeyRange {
  int32_t seq, k0, k1;
  bool skip;
};
__device__ __forceinline__ KeyRange key_range(const AttentionParams& p, int32_t t, int32_t split,
                                              int32_t num_splits) {
  KeyRange r;
  r.seq = seq_of_token(p.seq_q_start, p.num_seqs, t);
  r.skip = p.single_token_seqs_only && p.seq_q_start[r.seq + 1] - p.seq_q_start[r.seq] > 1;
  const SplitKeys k =
      split_keys(p.positions[t], p.seq_kv_len[r.seq], p.sliding_window, split, num_splits);
  r.k0 = k.k0;
  r.k1 = k.k1;
  return r;
}

// LPK: lanes per key row (8, 16 or 32; head_dim <= 8 * LPK). GC: query heads handled together
// (1, 2, 4 or 8); a KV group larger than GC is walked GC heads at a time.
template <int LPK, int GC>
__global__ void __launch_bounds__(kAttnThreads) paged_attention_kernel(AttentionParams p) {
  constexpr int kSubgroups = kAttnThreads / LPK;
  const int32_t t = int32_t(blockIdx.x);
  const int32_t h = int32_t(blockIdx.y);
  const int32_t split = int32_t(blockIdx.z);
  const int32_t num_splits = int32_t(gridDim.z);
  const int tid = int(threadIdx.x);
  const int sub = tid / LPK, sl = tid % LPK;  // subgroup, lane in subgroup
  const int hd = p.head_dim;
  const bool lane_on = sl * 8 < hd;

  __shared__ float s_m[kSubgroups][GC];
  __shared__ float s_l[kSubgroups][GC];
  extern __shared__ float s_acc[];  // [kSubgroups][GC][hd]

  const KeyRange range = key_range(p, t, split, num_splits);
  if (range.skip) return;
  const int32_t seq = range.seq, k0 = range.k0, k1 = range.k1;

  const int32_t stride = p.header[kHeaderBlockTableStride];
  const int32_t* table = p.block_tables + int64_t(seq) * stride;
  const int64_t row_elems = int64_t(p.num_kv_heads) * hd;
  const bf16* kc = static_cast<const bf16*>(p.k_cache) + int64_t(h) * hd + sl * 8;
  const bf16* vc = static_cast<const bf16*>(p.v_cache) + int64_t(h) * hd + sl * 8;
  const int32_t group = p.num_heads / p.num_kv_heads;
  const int32_t bs = p.block_size;

  for (int32_t g0 = 0; g0 < group; g0 += GC) {
    const int gn = min(GC, int(group - g0));
    // This lane's 8 dims of each query head, pre-scaled so that exp2 gives the softmax.
    float q[GC][8];
#pragma unroll
    for (int g = 0; g < GC; ++g) {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] = 0.f;
      if (g < gn && lane_on) {
        const bf16* qp = static_cast<const bf16*>(p.qkv) + int64_t(t) * p.ld_qkv +
                         int64_t(h * group + g0 + g) * hd + sl * 8;
        load8(qp, q[g]);
#pragma unroll
        for (int i = 0; i < 8; ++i) q[g][i] *= p.scale * kLog2E;
      }
    }
    float m[GC], l[GC], acc[GC][8];
#pragma unroll
    for (int g = 0; g < GC; ++g) {
      m[g] = -INFINITY;
      l[g] = 0.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[g][i] = 0.f;
    }

    // Every lane of a warp runs the same number of iterations (the shuffles need the whole warp);
    // a subgroup whose key is past the range contributes nothing. Two keys a subgroup per
    // iteration: four 16-byte loads in flight per lane before the first use.
    constexpr int kSubPerWarp = 32 / LPK;
    constexpr int kUnroll = 2;
    const int32_t warp_first = k0 + (tid / 32) * kSubPerWarp;
    for (int32_t base = warp_first; base < k1; base += kUnroll * kSubgroups) {
      float kf[kUnroll][8], vf[kUnroll][8];
      bool valid[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int32_t key = base + u * kSubgroups + (sub % kSubPerWarp);
        valid[u] = key < k1;
        if (valid[u] && lane_on) {
          const int64_t slot = int64_t(table[key / bs]) * bs + key % bs;
          load8(kc + slot * row_elems, kf[u]);
          load8(vc + slot * row_elems, vf[u]);
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i) kf[u][i] = vf[u][i] = 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
        for (int g = 0; g < GC; ++g) {
          float s = 0.f;
#pragma unroll
          for (int i = 0; i < 8; ++i) s = fmaf(q[g][i], kf[u][i], s);
#pragma unroll
          for (int o = LPK / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
          if (!valid[u]) continue;
          if (s > m[g]) {                        // uniform within the subgroup
            const float corr = exp2f(m[g] - s);  // 0 on the first key
            l[g] *= corr;
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[g][i] *= corr;
            m[g] = s;
          }
          const float e = exp2f(s - m[g]);
          l[g] += e;
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[g][i] = fmaf(e, vf[u][i], acc[g][i]);
        }
      }
    }

    // Merge the subgroups.
#pragma unroll
    for (int g = 0; g < GC; ++g) {
      if (sl == 0) {
        s_m[sub][g] = m[g];
        s_l[sub][g] = l[g];
      }
      if (lane_on) {
        float* a = s_acc + (size_t(sub) * GC + g) * hd + sl * 8;
#pragma unroll
        for (int i = 0; i < 8; ++i) a[i] = acc[g][i];
      }
    }
    __syncthreads();
    for (int e = tid; e < gn * hd; e += kAttnThreads) {
      const int g = e / hd, d = e % hd;
      float mx = -INFINITY;
#pragma unroll 4
      for (int s = 0; s < kSubgroups; ++s) mx = fmaxf(mx, s_m[s][g]);
      float L = 0.f, A = 0.f;
      if (mx != -INFINITY) {
#pragma unroll 4
        for (int s = 0; s < kSubgroups; ++s) {
          const float w = exp2f(s_m[s][g] - mx);
          L = fmaf(w, s_l[s][g], L);
          A = fmaf(w, s_acc[(size_t(s) * GC + g) * hd + d], A);
        }
      }
      const int32_t qh = h * group + g0 + g;
      if (num_splits == 1) {
        L = add_sink(p, qh, mx, L);
        bf16* o = static_cast<bf16*>(p.out) + int64_t(t) * p.ld_out + int64_t(qh) * hd + d;
        *o = __float2bfloat16_rn(L > 0.f ? A / L : 0.f);
      } else {
        const int64_t pi = (int64_t(t) * p.num_heads + qh) * num_splits + split;
        p.partial_acc[pi * hd + d] = A;
        if (d == 0) {
          p.partial_m[pi] = mx;
          p.partial_l[pi] = L;
        }
      }
    }
    __syncthreads();  // s_m / s_l / s_acc are rewritten by the next head group
  }
}

// ---- tensor-core decode kernel ---------------------------------------------------------------
// Same contract as paged_attention_kernel for head_dim D (64, 128, 256): one block of 4 warps per
// (row, KV head, split), or with p.seq_blocks per (sequence, KV head, split) for all the rows of
// the sequence. The block's query rows x the query heads of the KV group ("virtual rows",
// row-major: v = row * group + head) are the rows of 16-row mma tiles, a tile at a time (zeros past
// the last); every tile reads the split's keys, which the block's rows share. Each warp walks every
// fourth 16-key tile of the split: the tile is gathered from the cache blocks into the warp's own
// shared memory by 16-byte cp.async copies, one tile ahead of the one being computed (double
// buffer), S = Q K^T and O += P V run on tensor cores (m16n8k16, bf16 in, fp32 accumulate) with
// an online softmax in exp2 space (each virtual row masked to the keys its row sees: causal,
// sliding window), and the four warps merge at the end.
template <int D, bool kFp8>
__global__ void __launch_bounds__(kAttnThreads) decode_attention_mma_kernel(AttentionParams p) {
  constexpr int kKT = 16;         // keys per warp tile
  constexpr int kStride = D + 8;  // bf16 per K / V row in shared memory
  constexpr int kKS = D / 16, kDT = D / 8;
  constexpr int kWarps = kAttnThreads / 32;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ float s_m[kWarps][16], s_l[kWarps][16];

  const int32_t h = int32_t(blockIdx.y), split = int32_t(blockIdx.z);
  const int32_t num_splits = int32_t(gridDim.z);
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, tq = lane & 3;
  pdl_wait();
  pdl_launch_dependents();

  // The block's rows [row0, row0 + nrows) of sequence seq, and its split's keys [k0, k1) (the
  // union of the rows' ranges).
  int32_t seq, row0, nrows, k0, k1;
  if (p.seq_blocks) {
    seq = int32_t(blockIdx.x);
    row0 = p.seq_q_start[seq];
    nrows = p.seq_q_start[seq + 1] - row0;
    if (nrows <= 0) return;
    int32_t pmin = p.positions[row0], pmax = pmin;
    for (int32_t j = 1; j < nrows; ++j) {
      const int32_t pj = p.positions[row0 + j];
      pmin = min(pmin, pj);
      pmax = max(pmax, pj);
    }
    const SplitKeys k =
        split_keys_span(pmin, pmax, p.seq_kv_len[seq], p.sliding_window, split, num_splits);
    k0 = k.k0;
    k1 = k.k1;
  } else {
    const KeyRange range = key_range(p, int32_t(blockIdx.x), split, num_splits);
    if (range.skip) return;
    seq = range.seq;
    row0 = int32_t(blockIdx.x);
    nrows = 1;
    k0 = range.k0;
    k1 = range.k1;
  }

  const int32_t stride = p.header[kHeaderBlockTableStride];
  const int32_t* table = p.block_tables + int64_t(seq) * stride;
  const int64_t row_elems = int64_t(p.num_kv_heads) * D;
  // Element offsets (bf16 or, FP8 cache, bytes) of this KV head in a cache row.
  const bf16* kc = static_cast<const bf16*>(p.k_cache) + int64_t(h) * D;
  const bf16* vc = static_cast<const bf16*>(p.v_cache) + int64_t(h) * D;
  const uint8_t* kc8 = static_cast<const uint8_t*>(p.k_cache) + int64_t(h) * D;
  const uint8_t* vc8 = static_cast<const uint8_t*>(p.v_cache) + int64_t(h) * D;
  const int32_t bs = p.block_size;
  const int bs_shift = (bs & (bs - 1)) == 0 ? __ffs(bs) - 1 : -1;  // power-of-two block sizes
  const int32_t group = p.num_heads / p.num_kv_heads;
  const int32_t num_virtual = nrows * group;
  // An FP8 cache holds key / k_scale and value / v_scale: the scores and the output scale back.
  const float sl2 = p.scale * kLog2E * (kFp8 ? p.kv.k_scale : 1.0f);
  const float out_scale = kFp8 ? p.kv.v_scale : 1.0f;
  bf16* tk = reinterpret_cast<bf16*>(smem_raw) + warp * 4 * kKT * kStride;  // 2 x (K, V)
  float* merge = reinterpret_cast<float*>(smem_raw);  // [kWarps][16][D], after the key loop

  for (int32_t v0 = 0; v0 < num_virtual; v0 += 16) {
    const int gn = min(16, int(num_virtual - v0));
    // This thread's two rows of the tile (g and g + 8): their token, query head and position
    // (-1 past the last virtual row: no key).
    const bool lo = g < gn, hi = g + 8 < gn;
    const int32_t t_lo = row0 + (lo ? (v0 + g) / group : 0);
    const int32_t t_hi = row0 + (hi ? (v0 + g + 8) / group : 0);
    const int32_t qh_lo = h * group + (v0 + g) % group;
    const int32_t qh_hi = h * group + (v0 + g + 8) % group;
    const int32_t pos_lo = lo ? p.positions[t_lo] : -1;
    const int32_t pos_hi = hi ? p.positions[t_hi] : -1;
    uint32_t qa[kKS][4];
    {
      const bf16* q_lo =
          static_cast<const bf16*>(p.qkv) + int64_t(t_lo) * p.ld_qkv + int64_t(qh_lo) * D;
      const bf16* q_hi =
          static_cast<const bf16*>(p.qkv) + int64_t(t_hi) * p.ld_qkv + int64_t(qh_hi) * D;
#pragma unroll
      for (int ks = 0; ks < kKS; ++ks) {
        const int d0 = 16 * ks + 2 * tq;
        qa[ks][0] = lo ? *reinterpret_cast<const uint32_t*>(q_lo + d0) : 0u;
        qa[ks][1] = hi ? *reinterpret_cast<const uint32_t*>(q_hi + d0) : 0u;
        qa[ks][2] = lo ? *reinterpret_cast<const uint32_t*>(q_lo + d0 + 8) : 0u;
        qa[ks][3] = hi ? *reinterpret_cast<const uint32_t*>(q_hi + d0 + 8) : 0u;
      }
    }
    float o[kDT][4];
#pragma unroll
    for (int j = 0; j < kDT; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    SoftmaxRows sm;

    // Two tile buffers per warp: the copy engine fills the next tile (cp.async) while the warp
    // computes on this one.
    auto issue = [&](int32_t kt, int buf) {
      bf16* dk = tk + buf * 2 * kKT * kStride;
      bf16* dv = dk + kKT * kStride;
#pragma unroll
      for (int c = lane; c < kKT * (D / 8); c += 32) {
        const int i = c / (D / 8), d8 = (c % (D / 8)) * 8;
        const int32_t key = kt + i;
        const bool ok = key < k1;
        const int64_t slot = !ok ? 0
                             : bs_shift >= 0
                                 ? (int64_t(table[key >> bs_shift]) << bs_shift) + (key & (bs - 1))
                                 : int64_t(table[key / bs]) * bs + key % bs;
        if constexpr (kFp8) {  // 8 bytes a row piece, decoded into the bf16 tile (not async)
          const uint2 zero = make_uint2(0, 0);
          const uint2 k8 = ok ? *reinterpret_cast<const uint2*>(kc8 + slot * row_elems + d8) : zero;
          const uint2 v8 = ok ? *reinterpret_cast<const uint2*>(vc8 + slot * row_elems + d8) : zero;
          *reinterpret_cast<uint4*>(dk + i * kStride + d8) = e4m3x8_to_bf16x8(k8);
          *reinterpret_cast<uint4*>(dv + i * kStride + d8) = e4m3x8_to_bf16x8(v8);
        } else {
          cp_async16(dk + i * kStride + d8, kc + slot * row_elems + d8, ok);
          cp_async16(dv + i * kStride + d8, vc + slot * row_elems + d8, ok);
        }
      }
      asm volatile("cp.async.commit_group;\n" ::);
    };
    int buf = 0;
    if (k0 + warp * kKT < k1) issue(k0 + warp * kKT, 0);
    for (int32_t kt = k0 + warp * kKT; kt < k1; kt += kWarps * kKT, buf ^= 1) {
      const int32_t next = kt + kWarps * kKT;
      if (next < k1) {
        issue(next, buf ^ 1);
        asm volatile("cp.async.wait_group 1;\n" ::);
      } else {
        asm volatile("cp.async.wait_group 0;\n" ::);
      }
      __syncwarp();
      const bf16* ck = tk + buf * 2 * kKT * kStride;
      const bf16* cv = ck + kKT * kStride;
      float sc[2][4];
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kKS; ++ks) {
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const bf16* kr = ck + (nt * 8 + g) * kStride + 16 * ks + 2 * tq;
          mma_m16n8k16(sc[nt], qa[ks], *reinterpret_cast<const uint32_t*>(kr),
                       *reinterpret_cast<const uint32_t*>(kr + 8));
        }
      }
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int32_t key = kt + nt * 8 + 2 * tq + (e & 1);
          const int32_t pos = e < 2 ? pos_lo : pos_hi;
          const bool ok = key < k1 && row_sees_key(pos, p.sliding_window, key);
          sc[nt][e] = ok ? sc[nt][e] * sl2 : -INFINITY;
        }
      }
      sm.update(sc, o);
      uint32_t pa[4];
      p_fragment(sc, 0, pa);
      const bf16* vrow = cv + (lane & 15) * kStride;
#pragma unroll
      for (int j = 0; j < kDT; ++j) {
        uint32_t b0, b1;
        ldmatrix_x2_trans(b0, b1, vrow + j * 8);
        mma_m16n8k16(o[j], pa, b0, b1);
      }
      __syncwarp();  // this buffer is refilled two tiles on
    }
    sm.finish();

    // Merge the warps (the tile buffers become the merge buffer).
    __syncthreads();
    if (tq == 0) {
      s_m[warp][g] = sm.m_lo;
      s_m[warp][g + 8] = sm.m_hi;
      s_l[warp][g] = sm.l_lo;
      s_l[warp][g + 8] = sm.l_hi;
    }
#pragma unroll
    for (int j = 0; j < kDT; ++j) {  // only the tile's virtual rows
      float* r_lo = merge + (size_t(warp) * 16 + g) * D + j * 8 + 2 * tq;
      float* r_hi = r_lo + 8 * D;
      if (lo) {
        r_lo[0] = o[j][0];
        r_lo[1] = o[j][1];
      }
      if (hi) {
        r_hi[0] = o[j][2];
        r_hi[1] = o[j][3];
      }
    }
    __syncthreads();
    for (int e = tid; e < gn * D; e += kAttnThreads) {
      const int r = e / D, d = e % D;
      float mx = -INFINITY;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, s_m[w][r]);
      float L = 0.f, A = 0.f;
      if (mx != -INFINITY) {
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
          const float wt = exp2f(s_m[w][r] - mx);
          L = fmaf(wt, s_l[w][r], L);
          A = fmaf(wt, merge[(size_t(w) * 16 + r) * D + d], A);
        }
      }
      const int32_t t = row0 + (v0 + r) / group;
      const int32_t qh = h * group + (v0 + r) % group;
      A *= out_scale;
      if (num_splits == 1) {
        L = add_sink(p, qh, mx, L);
        static_cast<bf16*>(p.out)[int64_t(t) * p.ld_out + int64_t(qh) * D + d] =
            __float2bfloat16_rn(L > 0.f ? A / L : 0.f);
      } else {
        const int64_t pi = (int64_t(t) * p.num_heads + qh) * num_splits + split;
        p.partial_acc[pi * D + d] = A;
        if (d == 0) {
          p.partial_m[pi] = mx;
          p.partial_l[pi] = L;
        }
      }
    }
    __syncthreads();  // the merge buffer is the next tile's key buffer
  }
}

template <int D>
cudaError_t launch_mma_decode(const AttentionParams& p, cudaStream_t stream) {
  constexpr int kWarps = kAttnThreads / 32;
  const size_t tiles = size_t(kWarps) * 4 * 16 * (D + 8) * sizeof(bf16);
  const size_t merge = size_t(kWarps) * 16 * D * sizeof(float);
  const size_t smem = tiles > merge ? tiles : merge;
  auto kernel =
      p.kv.fp8 ? decode_attention_mma_kernel<D, true> : decode_attention_mma_kernel<D, false>;
  if (smem > 48 * 1024) {
    const cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
  }
  const unsigned units = unsigned(p.seq_blocks ? p.num_seqs : p.num_tokens);
  return launch_pdl(kernel, dim3(units, unsigned(p.num_kv_heads), unsigned(p.num_splits)),
                    dim3(kAttnThreads), smem, stream, p);
}

// out[t, qh, :] from the splits' partial (max, sum, unnormalised accumulator).
__global__ void combine_splits_kernel(AttentionParams p, int32_t num_splits) {
  pdl_wait();
  pdl_launch_dependents();
  const int32_t t = int32_t(blockIdx.x), qh = int32_t(blockIdx.y);
  if (p.single_token_seqs_only) {
    const int32_t seq = seq_of_token(p.seq_q_start, p.num_seqs, t);
    if (p.seq_q_start[seq + 1] - p.seq_q_start[seq] > 1) return;
  }
  const int hd = p.head_dim;
  const int64_t base = (int64_t(t) * p.num_heads + qh) * num_splits;
  float mx = -INFINITY;
  for (int s = 0; s < num_splits; ++s) mx = fmaxf(mx, p.partial_m[base + s]);
  for (int d = int(threadIdx.x); d < hd; d += int(blockDim.x)) {
    float L = 0.f, A = 0.f;
    if (mx != -INFINITY) {
      for (int s = 0; s < num_splits; ++s) {
        const float w = exp2f(p.partial_m[base + s] - mx);
        L = fmaf(w, p.partial_l[base + s], L);
        A = fmaf(w, p.partial_acc[(base + s) * hd + d], A);
      }
    }
    L = add_sink(p, qh, mx, L);
    static_cast<bf16*>(p.out)[int64_t(t) * p.ld_out + int64_t(qh) * hd + d] =
        __float2bfloat16_rn(L > 0.f ? A / L : 0.f);
  }
}

template <int LPK, int GC>
cudaError_t launch_lpk_gc(const AttentionParams& p, int32_t splits, cudaStream_t stream) {
  constexpr int kSubgroups = kAttnThreads / LPK;
  const size_t smem = size_t(kSubgroups) * GC * size_t(p.head_dim) * sizeof(float);
  auto kernel = paged_attention_kernel<LPK, GC>;
  if (smem > 48 * 1024) {
    const cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
  }
  kernel<<<dim3(unsigned(p.num_tokens), unsigned(p.num_kv_heads), unsigned(splits)), kAttnThreads,
           smem, stream>>>(p);
  return cudaGetLastError();
}

template <int LPK>
cudaError_t launch_lpk(const AttentionParams& p, int32_t splits, cudaStream_t stream) {
  const int group = p.num_heads / p.num_kv_heads;
  if (group >= 8) return launch_lpk_gc<LPK, 8>(p, splits, stream);
  if (group >= 4) return launch_lpk_gc<LPK, 4>(p, splits, stream);
  if (group >= 2) return launch_lpk_gc<LPK, 2>(p, splits, stream);
  return launch_lpk_gc<LPK, 1>(p, splits, stream);
}

}  // namespace

bool seq_block_attention_supported(int32_t head_dim) {
  return head_dim == 64 || head_dim == 128 || head_dim == 256;
}

int32_t attention_splits(int32_t num_tokens, int32_t num_kv_heads, int32_t num_sms) {
  const int64_t blocks = int64_t(num_tokens) * num_kv_heads;
  if (blocks <= 0 || blocks >= num_sms) return 1;
  const int64_t s = (2 * int64_t(num_sms) + blocks - 1) / blocks;
  return int32_t(s < kMaxAttentionSplits ? s : kMaxAttentionSplits);
}

cudaError_t launch_attention(const AttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0) return cudaSuccess;
  if (p.head_dim <= 0 || p.head_dim > kMaxAttentionHeadDim || p.head_dim % 8 != 0 ||
      p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0 || p.num_kv_heads > 65535 ||
      p.block_size <= 0 || p.num_seqs <= 0 || p.num_splits <= 0 ||
      p.num_splits > kMaxAttentionSplits)
    return cudaErrorInvalidValue;
  if (p.num_splits > 1 && (!p.partial_acc || !p.partial_m || !p.partial_l))
    return cudaErrorInvalidValue;
  if (p.seq_blocks && (!seq_block_attention_supported(p.head_dim) || p.single_token_seqs_only))
    return cudaErrorInvalidValue;
  if (p.kv.fp8 && !seq_block_attention_supported(p.head_dim)) return cudaErrorInvalidValue;
  cudaError_t e;
  if (p.head_dim == 64) {
    e = launch_mma_decode<64>(p, stream);
  } else if (p.head_dim == 128) {
    e = launch_mma_decode<128>(p, stream);
  } else if (p.head_dim == 256) {
    e = launch_mma_decode<256>(p, stream);
  } else if (p.head_dim <= 64) {
    e = launch_lpk<8>(p, p.num_splits, stream);
  } else if (p.head_dim <= 128) {
    e = launch_lpk<16>(p, p.num_splits, stream);
  } else {
    e = launch_lpk<32>(p, p.num_splits, stream);
  }
  if (e != cudaSuccess || p.num_splits == 1) return e;
  const int threads = p.head_dim < 32 ? 32 : (p.head_dim + 31) / 32 * 32;
  return launch_pdl(combine_splits_kernel, dim3(unsigned(p.num_tokens), unsigned(p.num_heads)),
                    dim3(unsigned(threads)), 0, stream, p, p.num_splits);
}

}  // namespace inferd::cuda
