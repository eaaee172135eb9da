// The fused mixture-of-experts op on the GPU (fused_moe.h). Five launches, all sized by the row
// count only (graph-safe), nothing read back by the host:
//   route    one warp a row: the top k of the router logits (ties: the lower index) and their
//            weights (softmax over the k, or over all then renormalised, as MoeParams says).
//   group    one block: the (row, slot) entries counted and listed by expert, and the list of the
//            experts that have any (so the next launches spend no blocks on idle experts).
//   gate_up  grid (active expert, tile of F): each warp computes a gate/up pair of output rows for
//            up to 4 entries at a time, reading each weight group (32 inputs: 16 bytes of MXFP4
//            plus one scale, or 64 bytes of bf16) once with 16-byte loads and dequantizing it in
//            registers, the entries' inputs staged in shared memory; bias and the activation
//            (gpt-oss clamped SwiGLU or SiLU) fused; bf16 out.
//   down     the same over the down rows, fp32 out per entry.
//   combine  out[t] = sum_k w_k y[t, k] (bf16).
// Decode reads each active expert's packed weights once: the bandwidth floor is their bytes. The
// products run on CUDA cores (a tensor-core grouped GEMM for long prefills is not written yet).
// Speed: not measured yet (written without a GPU; tests/backend/cuda_gptoss_test.cc checks it
// against the CPU reference).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "backend/cuda/fused_moe.h"

namespace inferd::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kRowsPerWarp = 2;  // output rows (gate_up: pairs) per warp per block
constexpr int kChunk = 4;        // entries staged in shared memory at a time
constexpr int kPre = 4;          // MXFP4 groups a lane fetches ahead (per row)
constexpr int kGroup = 32;
constexpr int kMaxExperts = 256;

struct Scratch {
  int32_t* ids;      // [T * K]
  float* weights;    // [T * K]
  int32_t* offsets;  // [E + 1]
  int32_t* fill;     // [E]
  int32_t* active;   // [E + 1]: active[0] = count, then the experts
  int32_t* order;    // [T * K] entries grouped by expert
  bf16* act;         // [T * K, F]
  float* y;          // [T * K, O]
};

__host__ __device__ inline int64_t align16(int64_t n) {
  return (n + 15) / 16 * 16;
}

__host__ __device__ inline Scratch carve(void* base, int32_t T, int32_t E, int32_t K, int32_t F) {
  auto* b = static_cast<uint8_t*>(base);
  const int64_t n = int64_t(T) * K;
  Scratch s;
  s.ids = reinterpret_cast<int32_t*>(b);
  b += align16(n * 4);
  s.weights = reinterpret_cast<float*>(b);
  b += align16(n * 4);
  s.offsets = reinterpret_cast<int32_t*>(b);
  b += align16((E + 1) * 4);
  s.fill = reinterpret_cast<int32_t*>(b);
  b += align16(E * 4);
  s.active = reinterpret_cast<int32_t*>(b);
  b += align16((E + 1) * 4);
  s.order = reinterpret_cast<int32_t*>(b);
  b += align16(n * 4);
  s.act = reinterpret_cast<bf16*>(b);
  b += align16(n * F * 2);
  s.y = reinterpret_cast<float*>(b);
  return s;
}

__global__ void route_kernel(MoeLaunch p) {
  const Scratch s = carve(p.scratch, p.T, p.E, p.K, p.F);
  const int t = int(blockIdx.x), lane = int(threadIdx.x);
  const bf16* row = static_cast<const bf16*>(p.logits) + int64_t(t) * p.ld_logits;
  constexpr int kPer = kMaxExperts / 32;
  float v[kPer];
  uint32_t taken = 0;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    v[i] = e < p.E ? __bfloat162float(row[e]) : -INFINITY;
  }
  float chosen_v[8];
  int chosen_e[8];
  for (int j = 0; j < p.K; ++j) {
    float bv = -INFINITY;
    int be = 0x7fffffff;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int e = lane + 32 * i;
      if (e < p.E && !(taken & (1u << i)) && (v[i] > bv || (v[i] == bv && e < be))) {
        bv = v[i];
        be = e;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oe = __shfl_xor_sync(0xffffffffu, be, o);
      if (ov > bv || (ov == bv && oe < be)) {
        bv = ov;
        be = oe;
      }
    }
    if ((be & 31) == lane) taken |= 1u << (be / 32);
    if (j < 8) {
      chosen_v[j] = bv;
      chosen_e[j] = be;
    }
  }
  if (lane != 0) return;
  const float mx = chosen_v[0];
  float denom = 0.f;
  if (p.softmax_before_topk) {
    for (int i = 0; i < p.E; ++i) denom += expf(__bfloat162float(row[i]) - mx);
  } else {
    for (int j = 0; j < p.K; ++j) denom += expf(chosen_v[j] - mx);
  }
  float w[8], sum = 0.f;
  for (int j = 0; j < p.K; ++j) {
    w[j] = expf(chosen_v[j] - mx) / denom;
    sum += w[j];
  }
  for (int j = 0; j < p.K; ++j) {
    s.ids[t * p.K + j] = chosen_e[j];
    s.weights[t * p.K + j] = p.softmax_before_topk && p.renormalize ? w[j] / sum : w[j];
  }
}

__global__ void group_kernel(MoeLaunch p) {
  const Scratch s = carve(p.scratch, p.T, p.E, p.K, p.F);
  const int n = p.T * p.K, tid = int(threadIdx.x);
  __shared__ int32_t count[kMaxExperts];
  for (int e = tid; e < p.E; e += blockDim.x) count[e] = 0;
  __syncthreads();
  for (int i = tid; i < n; i += blockDim.x) atomicAdd(&count[s.ids[i]], 1);
  __syncthreads();
  if (tid == 0) {
    int32_t off = 0, na = 0;
    for (int e = 0; e < p.E; ++e) {
      s.offsets[e] = off;
      s.fill[e] = off;
      if (count[e] > 0) s.active[1 + na++] = e;
      off += count[e];
    }
    s.offsets[p.E] = off;
    s.active[0] = na;
  }
  __syncthreads();
  for (int i = tid; i < n; i += blockDim.x) s.order[atomicAdd(&s.fill[s.ids[i]], 1)] = i;
}

__device__ __forceinline__ float e2m1(uint32_t code) {
  constexpr float kV[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float v = kV[code & 7];
  return (code & 8) ? -v : v;
}

// The 32 values of one MXFP4 group: 16 bytes of codes (element 2i in byte i's low nibble) and
// its e8m0 exponent.
__device__ __forceinline__ void decode_mxfp4(uint4 q, uint32_t exponent, float (&out)[kGroup]) {
  const float scale = ldexpf(1.f, int(exponent) - 127);
  const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const uint32_t byte = (words[i] >> (8 * b)) & 0xFF;
      out[8 * i + 2 * b] = e2m1(byte & 0xF) * scale;
      out[8 * i + 2 * b + 1] = e2m1(byte >> 4) * scale;
    }
  }
}

// The 32 weights of group g of row `r` of expert e (in features per row) as floats. Valid
// elements only (k < in); the rest 0.
__device__ __forceinline__ void load_group(const void* w, const uint8_t* sc, int64_t row, int in,
                                           int g, float (&out)[kGroup]) {
  if (sc != nullptr) {
    const int groups = in / kGroup;
    const uint4 q = *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w) +
                                                    (row * groups + g) * (kGroup / 2));
    decode_mxfp4(q, sc[row * groups + g], out);
    return;
  }
  const bf16* src = static_cast<const bf16*>(w) + row * in + int64_t(g) * kGroup;
  if ((g + 1) * kGroup <= in && (in % 8) == 0) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint4 q = reinterpret_cast<const uint4*>(src)[i];
      const bf16* h = reinterpret_cast<const bf16*>(&q);
#pragma unroll
      for (int j = 0; j < 8; ++j) out[8 * i + j] = __bfloat162float(h[j]);
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < kGroup; ++i) out[i] = g * kGroup + i < in ? __bfloat162float(src[i]) : 0.f;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// An item's result (biases added): gate_up: the activation of (gate v0, up v1) into act (bf16);
// down: v0 into y.
template <bool kGated>
__device__ __forceinline__ void store_item(const MoeLaunch& p, const Scratch& s, int entry,
                                           int item, float v0, float v1) {
  if (!kGated) {
    s.y[int64_t(entry) * p.O + item] = v0;
    return;
  }
  float act;
  if (p.clamped_swiglu) {
    const float gate = fminf(v0, p.limit);
    const float up = fminf(fmaxf(v1, -p.limit), p.limit);
    act = (up + 1.f) * (gate / (1.f + expf(-p.alpha * gate)));
  } else {
    act = v0 / (1.f + expf(-v0)) * v1;
  }
  s.act[int64_t(entry) * p.F + item] = __float2bfloat16_rn(act);
}

// One launch for gate_up (kGated: each warp item is a gate/up pair, activation fused, bf16 act out)
// or down (one row an item, fp32 y out).
template <bool kGated>
__global__ void __launch_bounds__(kThreads) experts_kernel(MoeLaunch p) {
  const Scratch s = carve(p.scratch, p.T, p.E, p.K, p.F);
  if (int(blockIdx.x) >= s.active[0]) return;
  const int e = s.active[1 + blockIdx.x];
  const int begin = s.offsets[e], end = s.offsets[e + 1];
  const int in = kGated ? p.H : p.F;
  const int items = kGated ? p.F : p.O;  // pairs or rows
  const int rows = kGated ? 2 * p.F : p.O;
  const void* w = kGated ? p.gu_w : p.dn_w;
  const uint8_t* sc = kGated ? p.gu_s : p.dn_s;
  const float* bias = kGated ? p.gu_b : p.dn_b;
  const int64_t wstride = sc != nullptr ? int64_t(rows) * in / 2 : int64_t(rows) * in * 2;
  const void* we = static_cast<const uint8_t*>(w) + int64_t(e) * wstride;
  const uint8_t* se = sc != nullptr ? sc + int64_t(e) * rows * (in / kGroup) : nullptr;
  extern __shared__ float xs[];  // [kChunk][in]
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int groups = (in + kGroup - 1) / kGroup;
  for (int c0 = begin; c0 < end; c0 += kChunk) {
    const int nc = min(kChunk, end - c0);
    __syncthreads();
    for (int i = int(threadIdx.x); i < nc * in; i += kThreads) {
      const int r = i / in, k = i % in;
      const int entry = s.order[c0 + r];
      xs[r * in + k] =
          kGated
              ? __bfloat162float(static_cast<const bf16*>(p.x)[int64_t(entry / p.K) * p.ld_x + k])
              : __bfloat162float(s.act[int64_t(entry) * p.F + k]);
    }
    __syncthreads();
    for (int it = 0; it < kRowsPerWarp; ++it) {
      const int item = (int(blockIdx.y) * kWarps + warp) * kRowsPerWarp + it;
      if (item >= items) break;
      const int r0 = kGated ? (p.interleaved ? 2 * item : item) : item;
      const int r1 = kGated ? (p.interleaved ? 2 * item + 1 : p.F + item) : item;
      float acc0[kChunk] = {0.f, 0.f, 0.f, 0.f}, acc1[kChunk] = {0.f, 0.f, 0.f, 0.f};
      // acc[r] += this group's 32 weights . entry r's inputs.
      auto dot = [&](const float(&wv)[kGroup], int g, float(&acc)[kChunk]) {
#pragma unroll
        for (int r = 0; r < kChunk; ++r) {
          if (r < nc) {
            const float* xr = xs + r * in + g * kGroup;
            float a = 0.f;
#pragma unroll
            for (int i = 0; i < kGroup; ++i)
              if (g * kGroup + i < in) a = fmaf(wv[i], xr[i], a);
            acc[r] += a;
          }
        }
      };
      int g_rest = lane;  // the groups left to the plain loop
      if (se != nullptr) {
        // MXFP4: the lane's first kPre groups of both rows are fetched before any is used (up to
        // 4096 inputs in flight at once: decode is bound by these loads), then dequantized.
        uint4 q0[kPre], q1[kPre];
        uint32_t e0[kPre], e1[kPre];
        const int64_t rb = in / 2, gs = in / kGroup;
        const uint8_t* wb = static_cast<const uint8_t*>(we);
#pragma unroll
        for (int u = 0; u < kPre; ++u) {
          const int g = lane + 32 * u;
          if (g < groups) {
            q0[u] = *reinterpret_cast<const uint4*>(wb + r0 * rb + g * (kGroup / 2));
            e0[u] = se[r0 * gs + g];
            if (kGated) {
              q1[u] = *reinterpret_cast<const uint4*>(wb + r1 * rb + g * (kGroup / 2));
              e1[u] = se[r1 * gs + g];
            }
          }
        }
#pragma unroll
        for (int u = 0; u < kPre; ++u) {
          const int g = lane + 32 * u;
          if (g < groups) {
            float wv[kGroup];
            decode_mxfp4(q0[u], e0[u], wv);
            dot(wv, g, acc0);
            if (kGated) {
              decode_mxfp4(q1[u], e1[u], wv);
              dot(wv, g, acc1);
            }
          }
        }
        g_rest = lane + 32 * kPre;
      }
      for (int g = g_rest; g < groups; g += 32) {
        float wv[kGroup];
        load_group(we, se, r0, in, g, wv);
        dot(wv, g, acc0);
        if (kGated) {
          load_group(we, se, r1, in, g, wv);
          dot(wv, g, acc1);
        }
      }
#pragma unroll
      for (int r = 0; r < kChunk; ++r) {
        const float a0 = warp_sum(acc0[r]);
        const float a1 = kGated ? warp_sum(acc1[r]) : 0.f;
        if (lane != 0 || r >= nc) continue;
        const float* be = bias != nullptr ? bias + int64_t(e) * rows : nullptr;
        store_item<kGated>(p, s, s.order[c0 + r], item, a0 + (be ? be[r0] : 0.f),
                           a1 + (be ? be[r1] : 0.f));
      }
    }
  }
}

__global__ void combine_kernel(MoeLaunch p) {
  const Scratch s = carve(p.scratch, p.T, p.E, p.K, p.F);
  const int t = int(blockIdx.x);
  for (int n = int(threadIdx.x); n < p.O; n += int(blockDim.x)) {
    float v = 0.f;
    for (int j = 0; j < p.K; ++j)
      v = fmaf(s.weights[t * p.K + j], s.y[int64_t(t * p.K + j) * p.O + n], v);
    static_cast<bf16*>(p.out)[int64_t(t) * p.ld_out + n] = __float2bfloat16_rn(v);
  }
}

}  // namespace

int64_t moe_scratch_bytes(int32_t T, int32_t E, int32_t K, int32_t F, int32_t O) {
  const Scratch s = carve(nullptr, T, E, K, F);
  return int64_t(reinterpret_cast<uintptr_t>(s.y)) + align16(int64_t(T) * K * O * 4);
}

cudaError_t launch_fused_moe(const MoeLaunch& p, cudaStream_t stream) {
  if (p.T <= 0) return cudaSuccess;
  if (p.E > kMaxExperts || p.K > 8 || p.K > p.E || p.scratch == nullptr)
    return cudaErrorInvalidValue;
  route_kernel<<<unsigned(p.T), 32, 0, stream>>>(p);
  group_kernel<<<1, 1024, 0, stream>>>(p);
  const unsigned experts = unsigned(p.T * p.K < p.E ? p.T * p.K : p.E);
  const int per_block = kWarps * kRowsPerWarp;
  auto smem = [](int in) { return size_t(kChunk) * size_t(in) * sizeof(float); };
  if (smem(p.H) > 48 * 1024 || smem(p.F) > 48 * 1024) {
    const int most = int(smem(p.H > p.F ? p.H : p.F));
    cudaError_t e = cudaFuncSetAttribute(experts_kernel<true>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, most);
    if (e == cudaSuccess)
      e = cudaFuncSetAttribute(experts_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               most);
    if (e != cudaSuccess) return e;
  }
  experts_kernel<true>
      <<<dim3(experts, unsigned((p.F + per_block - 1) / per_block)), kThreads, smem(p.H), stream>>>(
          p);
  experts_kernel<false>
      <<<dim3(experts, unsigned((p.O + per_block - 1) / per_block)), kThreads, smem(p.F), stream>>>(
          p);
  combine_kernel<<<unsigned(p.T), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace inferd::cuda
