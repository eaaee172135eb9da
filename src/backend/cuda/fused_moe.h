// The fused mixture-of-experts op on the GPU (fused_moe.cu; KernelOps::fused_moe, the CPU reference
// is backend/cpu/fused_moe.cc): routing, grouping by expert, the experts' gate_up and down products
// with bf16 or MXFP4 weights dequantized as they are loaded, and the weighted combine. Everything
// stays on the device (no host sync): it runs inside CUDA graphs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace inferd::cuda {

struct MoeLaunch {
  const void* x = nullptr;  // bf16 [T, H] rows ld_x apart
  int64_t ld_x = 0;
  const void* logits = nullptr;  // bf16 [T, E] rows ld_logits apart
  int64_t ld_logits = 0;
  void* out = nullptr;  // bf16 [T, O] rows ld_out apart
  int64_t ld_out = 0;
  int32_t T = 0, E = 0, K = 0;
  int32_t H = 0;  // gate_up's inputs
  int32_t F = 0;  // intermediate (gate_up has 2F outputs, down F inputs)
  int32_t O = 0;  // down's outputs
  bool softmax_before_topk = false, renormalize = false;
  bool clamped_swiglu = false;  // else silu(gate) * up
  bool interleaved = false;     // gate 2j, up 2j + 1 (else halves)
  float alpha = 1.702f, limit = 7.0f;
  // Experts [E, rows, in]: bf16 weights (scales null) or MXFP4 (weights: bytes [E, rows, in / 2],
  // scales: e8m0 [E, rows, in / 32]); biases fp32 [E, rows] or null.
  const void* gu_w = nullptr;
  const uint8_t* gu_s = nullptr;
  const float* gu_b = nullptr;
  const void* dn_w = nullptr;
  const uint8_t* dn_s = nullptr;
  const float* dn_b = nullptr;
  // Scratch (moe_scratch_bytes): sized for T rows.
  void* scratch = nullptr;
};

// Bytes of scratch a launch of T rows needs.
int64_t moe_scratch_bytes(int32_t T, int32_t E, int32_t K, int32_t F, int32_t O);
cudaError_t launch_fused_moe(const MoeLaunch& p, cudaStream_t stream);

}  // namespace inferd::cuda
