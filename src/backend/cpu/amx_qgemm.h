// Prefill GEMM of the GGUF K-quants (Q4_K, Q5_K, Q6_K) with Intel AMX int8 tiles, for batches of
// kAmxMinRows rows or more on CPUs that have AMX (Sapphire Rapids and later). Each output element
// is the same float as the AVX-512 kernels of quant_kernels_x86.inc give (KQuant::tile512, the path
// every AMX CPU takes for decode): per super-block one exact int32 sum of the sub-block dot
// products times their integer scales (and one of the mins against the activations' 16-element
// sums), then acc = fma(d_w * d_x, float(sum), acc) and acc = fma(-(dmin_w * d_x), float(mins),
// acc) in block order, then + bias. So results do not depend on the batch nor on the path.
#pragma once

#include <cstdint>

#include "core/ggml_types.h"

namespace inferd::cpu {

// Batches at least this large take the AMX path (below it the VNNI tiles are as fast).
constexpr int64_t kAmxMinRows = 32;

// Whether this process may run AMX int8 tiles: CPUID (AMX-TILE, AMX-INT8), the OS enabling the tile
// state in XCR0, and Linux granting it (arch_prctl ARCH_REQ_XCOMP_PERM). Checked once per process;
// when not, amx_unavailable_reason() says why (logged once at debug level).
bool amx_available();
const char* amx_unavailable_reason();
// amx_available() and not switched off by INFERD_CPU_AMX=0 (for comparisons).
bool amx_enabled();
// Whether amx_qgemm computes weights of this type.
bool amx_handles(ggml::Type wtype);

// Kernels::qgemm's contract (xq: T rows of Q8_K activations; W: rows of `wtype` blocks; out[t * ldo
// + n] for t < T, n in [n0, n1)) on AMX tiles, any T >= 1. Returns false, writing nothing, when
// AMX is unavailable or the type not handled.
bool amx_qgemm(const void* xq, int64_t T, int64_t K, const void* W, ggml::Type wtype,
               const float* bias, int64_t n0, int64_t n1, float* out, int64_t ldo);

}  // namespace inferd::cpu
