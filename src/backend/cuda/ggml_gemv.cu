// GGUF block weights on the CUDA backend (ggml_gemv.h): the decode GEMV and the dequantization of
// a row range to bf16 for the prefill GEMMs. The GEMV of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL (k a
// multiple of 128) and Q2_K .. Q6_K runs on the tensor cores (ggml_mma.h: the bare quants as exact
// bf16 fragments of mma.sync, the block scales applied to the fp32 sums; 16 rows a block, k split
// over its warps); the 32-element blocks of other k use one warp per weight row, each lane decoding
// whole units of blocks into registers with aligned wide loads, fp32 FMAs against the activation
// rows read 16 bytes at a time, warp-shuffle reduction. Block decoding: ggml_blocks.h.
#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "backend/cuda/ggml_blocks.h"
#include "backend/cuda/ggml_gemv.h"
#include "backend/cuda/ggml_mma.h"
#include "backend/cuda/mma.cuh"

namespace inferd::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kGemvWarps = 4;  // weight rows per block of the GEMV

// The activation rows, 8 bf16 values (16 bytes) at a time, as fp32.
struct XLoad8 {
  const bf16* x;
  int64_t ld;
  __device__ __forceinline__ void operator()(int t, int64_t e, float* f) const {
    bf16x8_to_float(__ldg(reinterpret_cast<const uint4*>(x + int64_t(t) * ld + e)), f);
  }
};

// One warp per kRows weight rows (a last partial group reads its last row twice and writes it
// once); lanes split the units (gg::gemv_lane), then a shuffle reduction.
template <class Q, int kMaxT, int kRows>
__global__ void __launch_bounds__(kGemvWarps * 32)
    ggml_gemv_kernel(const uint8_t* __restrict__ w, int64_t row_stride, int64_t n_rows, int nb,
                     const bf16* __restrict__ x, int64_t ld_x, int T,
                     const float* __restrict__ bias, void* __restrict__ out, int64_t ld_out,
                     bool out_f32) {
  const int lane = threadIdx.x & 31;
  const int64_t n0 = (int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5)) * kRows;
  if (n0 >= n_rows) return;  // whole warps
  const uint8_t* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = w + min(n0 + r, n_rows - 1) * row_stride;
  float acc[kRows][kMaxT];
  gg::gemv_lane<Q, kMaxT, kRows>(rows, nb, lane, T, XLoad8{x, ld_x}, acc);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t n = n0 + r;
    const float b = bias != nullptr && n < n_rows ? bias[n] : 0.0f;
#pragma unroll
    for (int t = 0; t < kMaxT; ++t) {
      if (t < T) {
        float s = acc[r][t];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == t % 32 && n < n_rows) {
          if (out_f32) {
            static_cast<float*>(out)[int64_t(t) * ld_out + n] = s + b;
          } else {
            static_cast<bf16*>(out)[int64_t(t) * ld_out + n] = __float2bfloat16(s + b);
          }
        }
      }
    }
  }
}

// One thread per unit: its runs rounded to bf16, 16 bytes at a time.
template <class Q>
__global__ void ggml_dequantize_kernel(const uint8_t* __restrict__ w, int64_t row_stride,
                                       int64_t rows, int nb, bf16* __restrict__ dst,
                                       int64_t ld_dst) {
  const int64_t per_row = int64_t(nb) * Q::kUnits, total = rows * per_row;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / per_row;
    const int v = int(i % per_row), b = v / Q::kUnits, u = v % Q::kUnits;
    float f[Q::kRuns * Q::kRunLen];
    Q::dequant(w + r * row_stride + int64_t(b) * Q::kSlot, u, f);
#pragma unroll
    for (int run = 0; run < Q::kRuns; ++run) {
      uint4* d = reinterpret_cast<uint4*>(dst + r * ld_dst + int64_t(b) * Q::kBlockElems +
                                          Q::run_start(u, run));
#pragma unroll
      for (int c = 0; c < Q::kRunLen / 8; ++c) {
        const float* p = f + run * Q::kRunLen + c * 8;
        uint4 o;
        __nv_bfloat162 h[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) h[j] = __floats2bfloat162_rn(p[2 * j], p[2 * j + 1]);
        static_assert(sizeof(h) == sizeof(o));
        memcpy(&o, h, sizeof(o));
        d[c] = o;
      }
    }
  }
}

// ---- K-quants and legacy blocks on the tensor cores (ggml_mma.h) ------------------------------

__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One block b of the warp's 16 rows (r[0]: row g, r[1]: row g + 8) against kNT n-tiles of 8
// activation rows (xt[nt]: token 8 nt + g, clamped to T - 1; the columns of tokens >= T are
// computed and never written).
template <class M, int kNT>
__device__ __forceinline__ void mma_block(const typename M::Rows* r, const bf16* const* xt,
                                          int64_t e0, int tq, float (*acc)[4]) {
  constexpr uint32_t ones[4] = {gg::kBf16x2Ones, gg::kBf16x2Ones, gg::kBf16x2Ones, gg::kBf16x2Ones};
#pragma unroll
  for (int sub = 0; sub < M::kSubs; ++sub) {
    float dg, mg, dg8, mg8;
    M::scale(r[0], sub, &dg, &mg);
    M::scale(r[1], sub, &dg8, &mg8);
    uint32_t a[M::kStepsPerSub][4];
#pragma unroll
    for (int j = 0; j < M::kStepsPerSub; ++j)
      M::a_regs(r[0], r[1], sub * M::kStepsPerSub + j, a[j]);
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      float cq[4] = {0.0f, 0.0f, 0.0f, 0.0f}, cx[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int j = 0; j < M::kStepsPerSub; ++j) {
        const int step = sub * M::kStepsPerSub + j;
        const uint2 xb = __ldg(reinterpret_cast<const uint2*>(xt[nt] + e0 + M::x_elem(step, tq)));
        mma_bf16(cq, a[j], xb.x, xb.y);
        if constexpr (M::kHasMin) mma_bf16(cx, ones, xb.x, xb.y);
      }
      gg::mma_epilogue<M>(dg, mg, dg8, mg8, cq, cx, acc[nt]);
    }
  }
}

// 16 weight rows a block of kWarps warps; warp w takes the blocks w, w + kWarps, ... two at a time
// (all their loads issued before either is used), then the warps' sums meet in shared memory.
// At most 128 registers a thread: 16 warps resident an SM.
template <class M, int kNT, int kWarps>
__global__ void __launch_bounds__(kWarps * 32, 16 / kWarps)
    ggml_mma_gemv_kernel(const uint8_t* __restrict__ w, int64_t row_stride, int64_t n_rows, int nb,
                         const bf16* __restrict__ x, int64_t ld_x, int T,
                         const float* __restrict__ bias, void* __restrict__ out, int64_t ld_out,
                         bool out_f32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
  const int64_t row0 = int64_t(blockIdx.x) * 16;
  const uint8_t* wg = w + min(row0 + g, n_rows - 1) * row_stride;
  const uint8_t* wg8 = w + min(row0 + g + 8, n_rows - 1) * row_stride;
  const bf16* xt[kNT];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) xt[nt] = x + int64_t(min(8 * nt + g, T - 1)) * ld_x;
  float acc[kNT][4];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[nt][i] = 0.0f;
  for (int b = warp; b < nb; b += 2 * kWarps) {
    const int b2 = b + kWarps;
    typename M::Rows r0[2], r1[2];
    M::load(wg + int64_t(b) * M::kBytes, tq, &r0[0]);
    M::load(wg8 + int64_t(b) * M::kBytes, tq, &r0[1]);
    if (b2 < nb) {
      M::load(wg + int64_t(b2) * M::kBytes, tq, &r1[0]);
      M::load(wg8 + int64_t(b2) * M::kBytes, tq, &r1[1]);
    }
    mma_block<M, kNT>(r0, xt, int64_t(b) * M::kElems, tq, acc);
    if (b2 < nb) mma_block<M, kNT>(r1, xt, int64_t(b2) * M::kElems, tq, acc);
  }
  __shared__ float red[kWarps][kNT * 4][32];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) red[warp][nt * 4 + i][lane] = acc[nt][i];
  __syncthreads();
  for (int idx = threadIdx.x; idx < kNT * 4 * 32; idx += kWarps * 32) {
    const int i = idx / 32, l = idx % 32;
    float s = 0.0f;
#pragma unroll
    for (int v = 0; v < kWarps; ++v) s += red[v][i][l];
    const int64_t n = row0 + (l >> 2) + 8 * ((i % 4) >> 1);
    const int t = 8 * (i / 4) + 2 * (l & 3) + (i & 1);
    if (n < n_rows && t < T) {
      if (bias != nullptr) s += bias[n];
      if (out_f32) {
        static_cast<float*>(out)[int64_t(t) * ld_out + n] = s;
      } else {
        static_cast<bf16*>(out)[int64_t(t) * ld_out + n] = __float2bfloat16(s);
      }
    }
  }
}

// The current device's SM count (looked up once a device; 0 on an error).
int sm_count() {
  static std::atomic<int> cache[64];
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (device < 64 && (sms = cache[device].load(std::memory_order_relaxed)) > 0) return sms;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) return 0;
  if (device < 64) cache[device].store(sms, std::memory_order_relaxed);
  return sms;
}

template <class M>
cudaError_t launch_mma_gemv(const uint8_t* w, int64_t row_stride, int64_t rows, int64_t k,
                            const bf16* x, int64_t ld_x, int T, const float* bias, void* out,
                            int64_t ld_out, bool out_f32, cudaStream_t stream) {
  const unsigned grid = unsigned((rows + 15) / 16);
  const int nb = int(k / M::kElems);
  // Blocks of 8 warps (two an SM) unless there are fewer blocks than SMs: then 16 warps split k
  // more finely (1024 rows of k 4096: one ggml block a warp).
  const int sms = sm_count();
  if (sms <= 0) return cudaGetLastError();
  auto go = [&](auto nt, auto warps) {
    ggml_mma_gemv_kernel<M, decltype(nt)::value, decltype(warps)::value>
        <<<grid, decltype(warps)::value * 32, 0, stream>>>(w, row_stride, rows, nb, x, ld_x, T,
                                                           bias, out, ld_out, out_f32);
  };
  using N1 = std::integral_constant<int, 1>;
  using N2 = std::integral_constant<int, 2>;
  using W8 = std::integral_constant<int, 8>;
  using W16 = std::integral_constant<int, 16>;
  const bool wide = grid < unsigned(sms);
  if (T <= 8) {
    wide ? go(N1{}, W16{}) : go(N1{}, W8{});
  } else {
    wide ? go(N2{}, W16{}) : go(N2{}, W8{});
  }
  return cudaGetLastError();
}

// The lane kernel (the 32-element blocks for k not a multiple of 128): two rows a warp for
// 2..4 tokens (each activation load serves both rows); one row otherwise (one token: more loads in
// flight; 5..16 tokens: two rows would take ~250 registers).
template <class Q>
cudaError_t launch_lane_gemv(const uint8_t* w, int64_t row_stride, int64_t rows, int nb,
                             const bf16* xb, int64_t ld_x, int num_tokens, const float* bias,
                             void* out, int64_t ld_out, bool out_f32, cudaStream_t stream) {
  auto grid = [&](int rows_per_warp) {
    const int64_t per_block = int64_t(kGemvWarps) * rows_per_warp;
    return unsigned((rows + per_block - 1) / per_block);
  };
  if (num_tokens == 1) {
    ggml_gemv_kernel<Q, 1, 1><<<grid(1), kGemvWarps * 32, 0, stream>>>(
        w, row_stride, rows, nb, xb, ld_x, num_tokens, bias, out, ld_out, out_f32);
  } else if (num_tokens <= 4) {
    ggml_gemv_kernel<Q, 4, 2><<<grid(2), kGemvWarps * 32, 0, stream>>>(
        w, row_stride, rows, nb, xb, ld_x, num_tokens, bias, out, ld_out, out_f32);
  } else {
    ggml_gemv_kernel<Q, kGgmlGemvMaxTokens, 1><<<grid(1), kGemvWarps * 32, 0, stream>>>(
        w, row_stride, rows, nb, xb, ld_x, num_tokens, bias, out, ld_out, out_f32);
  }
  return cudaGetLastError();
}

// Calls f(Q{}) with the decoder of `t`; cudaErrorInvalidValue for a type without one.
template <class F>
cudaError_t with_type(ggml::Type t, F&& f) {
  switch (t) {
    case ggml::Type::kQ4_0:
      return f(gg::Q4_0{});
    case ggml::Type::kQ4_1:
      return f(gg::Q4_1{});
    case ggml::Type::kQ5_0:
      return f(gg::Q5_0{});
    case ggml::Type::kQ5_1:
      return f(gg::Q5_1{});
    case ggml::Type::kQ8_0:
      return f(gg::Q8_0{});
    case ggml::Type::kIQ4_NL:
      return f(gg::IQ4_NL{});
    case ggml::Type::kQ2_K:
      return f(gg::Q2_K{});
    case ggml::Type::kQ3_K:
      return f(gg::Q3_K{});
    case ggml::Type::kQ4_K:
      return f(gg::Q4_K{});
    case ggml::Type::kQ5_K:
      return f(gg::Q5_K{});
    case ggml::Type::kQ6_K:
      return f(gg::Q6_K{});
    default:
      return cudaErrorInvalidValue;
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

bool ggml_kernel_supported(ggml::Type t) {
  return gg::slot_layout(t).slot != 0;
}

bool ggml_gemv_preferred(ggml::Type type, int64_t k, int32_t num_tokens) {
  if (num_tokens <= 8) return true;
  if (num_tokens > kGgmlGemvMaxTokens) return false;
  switch (type) {
    case ggml::Type::kQ2_K:
    case ggml::Type::kQ3_K:
    case ggml::Type::kQ4_K:
    case ggml::Type::kQ5_K:
    case ggml::Type::kQ6_K:
      return true;
    case ggml::Type::kQ4_0:
    case ggml::Type::kQ4_1:
    case ggml::Type::kQ5_0:
    case ggml::Type::kQ5_1:
    case ggml::Type::kQ8_0:
    case ggml::Type::kIQ4_NL:
      return k % 128 == 0;  // gg::LegacyMma<>::kElems
    default:
      return false;
  }
}

cudaError_t launch_ggml_gemv(ggml::Type type, const uint8_t* w, int64_t row_stride, int64_t rows,
                             int64_t k, const void* x, int64_t ld_x, int32_t num_tokens,
                             const float* bias, void* out, int64_t ld_out, bool out_f32,
                             cudaStream_t stream) {
  if (num_tokens <= 0 || rows <= 0) return cudaSuccess;
  if (num_tokens > kGgmlGemvMaxTokens || ld_x % 8 != 0 || !aligned16(x) || !aligned16(w) ||
      row_stride % 16 != 0)
    return cudaErrorInvalidValue;
  return with_type(type, [&](auto q) {
    using Q = decltype(q);
    if (k % Q::kBlockElems != 0 || row_stride < k / Q::kBlockElems * Q::kSlot)
      return cudaErrorInvalidValue;
    const bf16* xb = static_cast<const bf16*>(x);
    auto mma = [&](auto m) {
      return launch_mma_gemv<decltype(m)>(w, row_stride, rows, k, xb, ld_x, num_tokens, bias, out,
                                          ld_out, out_f32, stream);
    };
    auto lanes = [&](auto qq) {  // instantiated only where called
      return launch_lane_gemv<decltype(qq)>(w, row_stride, rows, int(k / Q::kBlockElems), xb, ld_x,
                                            num_tokens, bias, out, ld_out, out_f32, stream);
    };
    if constexpr (std::is_same_v<Q, gg::Q2_K>) {
      return mma(gg::Q2KMma{});
    } else if constexpr (std::is_same_v<Q, gg::Q3_K>) {
      return mma(gg::Q3KMma{});
    } else if constexpr (std::is_same_v<Q, gg::Q4_K>) {
      return mma(gg::Q4KMma{});
    } else if constexpr (std::is_same_v<Q, gg::Q5_K>) {
      return mma(gg::Q5KMma{});
    } else if constexpr (std::is_same_v<Q, gg::Q6_K>) {
      return mma(gg::Q6KMma{});
    } else {  // the 32-element blocks: the tensor cores for k a multiple of 128
      return k % gg::LegacyMma<Q>::kElems == 0 ? mma(gg::LegacyMma<Q>{}) : lanes(q);
    }
  });
}

cudaError_t launch_ggml_dequantize_bf16(ggml::Type type, const uint8_t* w, int64_t row_stride,
                                        int64_t rows, int64_t k, void* dst, int64_t ld_dst,
                                        cudaStream_t stream) {
  if (rows <= 0 || k <= 0) return cudaSuccess;
  if (ld_dst % 8 != 0 || !aligned16(dst) || !aligned16(w) || row_stride % 16 != 0)
    return cudaErrorInvalidValue;
  return with_type(type, [&](auto q) {
    using Q = decltype(q);
    if (k % Q::kBlockElems != 0 || row_stride < k / Q::kBlockElems * Q::kSlot)
      return cudaErrorInvalidValue;
    const int nb = int(k / Q::kBlockElems);
    const int64_t units = rows * nb * Q::kUnits;
    const int threads = 256;
    const unsigned blocks = unsigned(std::min<int64_t>((units + threads - 1) / threads, 65535));
    ggml_dequantize_kernel<Q>
        <<<blocks, threads, 0, stream>>>(w, row_stride, rows, nb, static_cast<bf16*>(dst), ld_dst);
    return cudaGetLastError();
  });
}

}  // namespace inferd::cuda
