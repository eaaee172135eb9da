// Tensor-core and async-copy building blocks shared by the attention kernels (sm_80+ PTX):
// mma.sync m16n8k16 bf16 -> fp32, ldmatrix (transposed), cp.async with zero fill, bf16 packing.
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"): lane = 4 * g + tq; A holds rows
// g and g + 8, columns 2 tq, 2 tq + 1 and + 8; B holds columns (n) g, rows (k) 2 tq, 2 tq + 1 and
// + 8; C holds rows g and g + 8, columns 2 tq and 2 tq + 1.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace inferd::cuda {

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

}  // namespace inferd::cuda
