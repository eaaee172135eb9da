// CPU kernels, compiled once per instruction set (generic x86-64, AVX2+FMA+F16C, AVX-512, AVX-512
// with VNNI) from kernels_impl.inc; `cpu_kernels()` picks the best the running CPU supports.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/ggml_types.h"

namespace inferd::cpu {

struct Kernels {
  const char* isa;
  // out[t * ldo + n] = sum_k x[t * K + k] * W[n * K + k] (+ bias[n]) for t < T, n in [n0, n1).
  // W is `wtype` (f32, bf16 or f16), row-major [N, K]. Each element is computed by the same
  // sequence of operations whatever T is, so results do not depend on the batch.
  void (*gemm)(const float* x, int64_t T, int64_t K, const void* W, DType wtype, const float* bias,
               int64_t n0, int64_t n1, float* out, int64_t ldo);
  // dot product of two fp32 vectors (fixed summation order).
  float (*dot)(const float* a, const float* b, int64_t n);
  // y += a * x
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // Converts n elements of `src` (f32/bf16/f16) to fp32.
  void (*to_f32)(const void* src, DType t, float* dst, int64_t n);

  // ---- GGUF block types (quant_kernels_impl.inc) ----------------------------------------------
  // The activation format a weight type's dot product takes (ggml's vec_dot_type: Q8_0, Q8_1 or
  // Q8_K), or kF32 when the type has no quantized path here.
  ggml::Type (*act_type)(ggml::Type wtype);
  // Quantizes T rows of x [T, K] to act_type(wtype), row after row (row t at
  // dst + t * row_bytes(act_type, K)).
  void (*quantize_act)(ggml::Type wtype, const float* x, int64_t T, int64_t K, void* dst);
  // out[t * ldo + n] = dot(W row n, x row t) (+ bias[n]) for t < T, n in [n0, n1): W is rows of
  // `wtype` blocks (row n at W + n * row_bytes(wtype, K)), xq the rows quantize_act wrote. Each
  // element is computed by the same operations whatever T is (results do not depend on the batch).
  void (*qgemm)(const void* xq, int64_t T, int64_t K, const void* W, ggml::Type wtype,
                const float* bias, int64_t n0, int64_t n1, float* out, int64_t ldo);

  // out[i] = g[i] / (1 + exp(-g[i])) * u[i] for i < n (exp vectorized: about 1 ulp; generic: libm).
  void (*silu_mul)(const float* g, const float* u, float* out, int64_t n);
};

const Kernels& kernels();
// The kernels of one instruction set ("generic", "avx2", "avx512", "avx512vnni"), or nullptr when
// this CPU lacks it.
const Kernels* kernels_for(const char* isa);

}  // namespace inferd::cpu
