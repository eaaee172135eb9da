// Mixture-of-experts kernels of the CUDA backend (issue 27; moe.cu). Plain C++ header (see
// kernels.h): every pointer is a device pointer, bf16 buffers are void*. Nothing here synchronises
// or reads device values on the host, so every launch can be captured in a CUDA graph.
//
//  - routing: launch_moe_topk (softmax / top-k / renormalisation as MoeRouting says).
//  - decode (T <= kMoeGemvMaxTokens): launch_moe_gemv: one GEMV per (token, choice) over its
//    expert's gate+up rows with the activation fused, then down fused with the weighted sum of the
//    token's choices. Reads only the active experts' rows, 16 bytes a lane a load.
//  - larger batches: launch_moe_grouped: the (token, choice) slots permuted by expert on the
//    device (counts, offsets, per-expert tile offsets), one grouped GEMM launch over every active
//    expert's row tiles for gate+up (the token rows gathered in the A load, the activation in the
//    epilogue), one for down, then the weighted un-permute / combine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace inferd::cuda {

constexpr int kMoeMaxExperts = 512;
constexpr int kMoeMaxTopK = 32;
constexpr int kMoeGemvMaxTokens = 8;
constexpr int kMoeTileM = 64;  // rows (token slots) per grouped-GEMM tile

// How one layer's expert weights are stored (each load stage converts them to bf16 / fp32).
enum class MoeWeightFormat : uint8_t {
  kBf16,
  kFp8,    // float8 e4m3, fp32 scale per expert and output row (applied in the epilogue)
  kMxfp4,  // e2m1 pairs a byte (low nibble first), e8m0 scale per 32 inputs of a row
};

// One layer's experts on the device: w13 [E, 2F, H] (gate rows then up rows, or interleaved
// pairs), w2 [E, H, F]; bf16, float8 e4m3 with fp32 scales per expert and output row, or MXFP4
// (w13 / w2 the packed bytes [E, rows, cols / 2], w13_mx / w2_mx the e8m0 scales
// [E, rows, cols / 32]).
struct MoeWeightsView {
  const void* w13 = nullptr;
  const void* w2 = nullptr;
  const float* w13_scale = nullptr;  // [E, 2F] (fp8 only)
  const float* w2_scale = nullptr;   // [E, H] (fp8 only)
  const uint8_t* w13_mx = nullptr;   // [E, 2F, H / 32] (mxfp4 only)
  const uint8_t* w2_mx = nullptr;    // [E, H, F / 32] (mxfp4 only)
  const float* w13_bias = nullptr;   // [E, 2F] or null
  const float* w2_bias = nullptr;    // [E, H] or null
  int32_t num_experts = 0;
  int64_t hidden = 0, inter = 0;  // H, F (multiples of 8; of 16 for fp8; of 32 for mxfp4)
  MoeWeightFormat format = MoeWeightFormat::kBf16;
  bool interleaved = false;
  bool swiglu_clamp = false;  // gpt-oss's activation, else SiLU(gate) * up
  float alpha = 1.702f, limit = 7.0f;
};

// ids [T, K] int32 and weights [T, K] fp32 from bf16 logits [T, E] (row stride ld): softmax over
// all E then the K largest (renormalised when `renormalize`), or the K largest logits then a
// softmax over them. E <= kMoeMaxExperts, K <= min(E, kMoeMaxTopK). One warp a token.
cudaError_t launch_moe_topk(const void* logits, int64_t ld, int32_t num_tokens, int32_t num_experts,
                            int32_t top_k, bool softmax_before_topk, bool renormalize, int32_t* ids,
                            float* weights, cudaStream_t stream);

// The decode path, T <= kMoeGemvMaxTokens: out [T, H] (bf16, row stride ld_out) for x [T, H]
// (ld_x). `act`: scratch of T * K * F bf16. `expert_counts` ([E] int32, or null) gets += the
// tokens of each expert (counted in the gate+up launch, no launch of its own).
cudaError_t launch_moe_gemv(const void* x, int64_t ld_x, int32_t num_tokens, int32_t top_k,
                            const int32_t* ids, const float* weights, const MoeWeightsView& w,
                            void* act, int32_t* expert_counts, void* out, int64_t ld_out,
                            cudaStream_t stream);

// Scratch bytes launch_moe_grouped needs for T tokens.
size_t moe_grouped_scratch_bytes(int32_t num_tokens, int32_t top_k, const MoeWeightsView& w);
// The batched path (any T): as launch_moe_gemv, through the device permutation and the grouped
// GEMMs. `expert_counts` ([E] int32, or null) gets += the tokens of each expert.
cudaError_t launch_moe_grouped(const void* x, int64_t ld_x, int32_t num_tokens, int32_t top_k,
                               const int32_t* ids, const float* weights, const MoeWeightsView& w,
                               void* scratch, size_t scratch_bytes, int32_t* expert_counts,
                               void* out, int64_t ld_out, cudaStream_t stream);

}  // namespace inferd::cuda
