// Tensor-core and async-copy building blocks shared by the attention kernels (sm_80+ PTX):
// mma.sync m16n8k16 bf16 -> fp32, ldmatrix (transposed), cp.async with zero fill, bf16 packing
// and unpacking (also used by the fp8 and GGUF GEMVs).
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"): lane = 4 * g + tq; A holds rows
// g and g + 8, columns 2 tq, 2 tq + 1 and + 8; B holds columns (n) g, rows (k) 2 tq, 2 tq + 1 and
// + 8; C holds rows g and g + 8, columns 2 tq and 2 tq + 1.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>

namespace inferd::cuda {

// Eight bf16 values (one 16-byte load) as floats.
__device__ __forceinline__ void bf16x8_to_float(const uint4& v, float* f) {
  const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 t = __bfloat1622float2(p[j]);
    f[2 * j] = t.x;
    f[2 * j + 1] = t.y;
  }
}

// Eight float8 e4m3 values (8 bytes) as eight bf16 (exact: every e4m3 value is a bf16 value).
__device__ __forceinline__ uint4 e4m3x8_to_bf16x8(uint2 v) {
  const __nv_fp8x2_storage_t* p = reinterpret_cast<const __nv_fp8x2_storage_t*>(&v);
  uint4 out;
  uint32_t* o = reinterpret_cast<uint32_t*>(&out);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(p[j], __NV_E4M3)));
    const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
    o[j] = *reinterpret_cast<const uint32_t*>(&b);
  }
  return out;
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// d += a * b for one 16x8x16 tile.
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two 8x8 b16 matrices, transposed: rows addressed by lanes 0-7 (matrix 0) and 8-15 (matrix 1).
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t& r0, uint32_t& r1, const void* row) {
  const unsigned addr = unsigned(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r0), "=r"(r1)
               : "r"(addr));
}

// 16 bytes global -> shared without registers; zeros when !ok (the source is not read then).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool ok) {
  const unsigned addr = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src),
               "r"(ok ? 16 : 0));
}

// The running softmax state of this thread's two rows (g and g + 8) of a 16-row tile, in exp2
// units: max m, sum l (this thread's part; the quad's four parts are added at the end).
struct SoftmaxRows {
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.f, l_hi = 0.f;

  // One tile of scores s (kNT n-tiles of 8 keys, C fragments, already scaled to exp2 units and
  // masked with -inf): updates m and l, rescales the output accumulators o, and leaves
  // exp2(s - m) in s. Rows that have seen no key yet keep a zero base (no inf - inf).
  template <int kNT, int kDT>
  __device__ __forceinline__ void update(float (&s)[kNT][4], float (&o)[kDT][4]) {
    float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
      mx_lo = fmaxf(mx_lo, fmaxf(s[n][0], s[n][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[n][2], s[n][3]));
    }
#pragma unroll
    for (int o2 = 1; o2 <= 2; o2 <<= 1) {
      mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, o2));
      mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, o2));
    }
    const float mn_lo = fmaxf(m_lo, mx_lo), mn_hi = fmaxf(m_hi, mx_hi);
    const float base_lo = mn_lo == -INFINITY ? 0.f : mn_lo;
    const float base_hi = mn_hi == -INFINITY ? 0.f : mn_hi;
    const float c_lo = exp2f(m_lo - base_lo), c_hi = exp2f(m_hi - base_hi);
    m_lo = mn_lo;
    m_hi = mn_hi;
    l_lo *= c_lo;
    l_hi *= c_hi;
#pragma unroll
    for (int j = 0; j < kDT; ++j) {
      o[j][0] *= c_lo;
      o[j][1] *= c_lo;
      o[j][2] *= c_hi;
      o[j][3] *= c_hi;
    }
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
      s[n][0] = exp2f(s[n][0] - base_lo);
      s[n][1] = exp2f(s[n][1] - base_lo);
      s[n][2] = exp2f(s[n][2] - base_hi);
      s[n][3] = exp2f(s[n][3] - base_hi);
      l_lo += s[n][0] + s[n][1];
      l_hi += s[n][2] + s[n][3];
    }
  }

  // The quad's full sums (call once, after the last tile).
  __device__ __forceinline__ void finish() {
#pragma unroll
    for (int o2 = 1; o2 <= 2; o2 <<= 1) {
      l_lo += __shfl_xor_sync(0xffffffffu, l_lo, o2);
      l_hi += __shfl_xor_sync(0xffffffffu, l_hi, o2);
    }
  }
};

// The A fragment of P for keys [16 kk, 16 kk + 16) from the probabilities left in s by update().
template <int kNT>
__device__ __forceinline__ void p_fragment(const float (&s)[kNT][4], int kk, uint32_t (&pa)[4]) {
  pa[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
  pa[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
  pa[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  pa[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

}  // namespace inferd::cuda
