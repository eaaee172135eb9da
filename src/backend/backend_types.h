// The values that cross the backend interfaces: weights as a backend places them (Linear,
// Fp8Linear), rotary tables, one layer's paged KV cache, the per-step batch metadata on the
// device (DeviceBatch) and the sizes a device backend reserves for its per-step buffers.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backend/forward_batch.h"
#include "backend/sampling.h"
#include "core/ggml_types.h"
#include "core/tensor.h"

namespace inferd {

// What an allocation holds, for sleep mode (DeviceRuntime::set_memory_tag): the weights and the
// KV cache can leave the device and come back; everything else (workspace, per-step buffers)
// stays.
enum class MemoryTag : uint8_t { kOther, kWeights, kKvCache };

// A dense linear weight y = x W^T (+ b). W may be stored as several row blocks ("parts": q/k/v or
// gate/up) that together form [out_features, in_features]; the CUDA backend concatenates them at
// placement, the CPU backend reads them in place from the mmap'd file.
struct Linear {
  std::vector<Tensor> parts;  // each [rows_i, in_features], on the backend's device
  Tensor bias;                // [out_features] fp32, or undefined
  int64_t in_features = 0;
  int64_t out_features = 0;
};

// An FP8 linear weight: w[n, k] = f8(weight[n, k]) * weight_scale[n]. The input rows are
// quantized to FP8 before the GEMM, per row (dynamic) or with act_scale when it is > 0 (a
// checkpoint's static input_scale). Only backends whose fp8_gemm_supported() says so place these.
struct Fp8Linear {
  Tensor weight;        // float8 e4m3fn [out_features, in_features] on the device
  Tensor weight_scale;  // fp32 [out_features] on the device
  Tensor bias;          // [out_features] fp32, or undefined
  float act_scale = 0.0f;
  int64_t in_features = 0;
  int64_t out_features = 0;
};

// A 4-bit integer linear weight with group scales and zero points (issue 28): AWQ, GPTQ and
// compressed-tensors W4A16 checkpoints are all repacked to this form at load
// (model/quant/int_weights.h):
//   w[n, perm[j]] = (q[n, j] - zeros[j / group_size, n]) * scales[j / group_size, n]
// j runs over the input features in the order `perm` gives (act-order: the inputs sorted by
// group, so that every group is contiguous; identity when perm is undefined), so a kernel gathers
// x's columns by perm once and then reads the groups in order. As make_linear_int4 takes it (the
// host form): qweight kI32 [N, K/8], bits 4i..4i+3 of word w holding q[n, 8w + i] (0..15);
// scales and zeros kF32 [K/group_size, N]; perm kI32 [K] or undefined. A device backend places it
// in its own kernel layout (cuda/int4_gemm.h documents the CUDA one).
struct Int4Linear {
  Tensor qweight, scales, zeros, perm;
  Tensor bias;  // [out_features] fp32, or undefined
  int64_t in_features = 0;
  int64_t out_features = 0;
  int64_t group_size = 0;
};

// A linear weight in GGUF block formats (issue 35): row blocks (q/k/v, gate/up) each in the ggml
// type the file stores it in (Q4_K_M files mix Q4_K and Q6_K, for instance). The CPU backend reads
// the blocks in place from the mapping and quantizes the input rows to the type's 8-bit partner.
struct GgmlLinear {
  struct Part {
    Tensor data;  // kU8 [rows, row_bytes(type, in_features)]; or F32/F16/BF16 [rows, in_features]
    ggml::Type type = ggml::Type::kF32;
    int64_t rows = 0;
  };
  std::vector<Part> parts;
  Tensor bias;  // [out_features] fp32, or undefined
  int64_t in_features = 0;
  int64_t out_features = 0;
};

// The LoRA slots of one linear (issue 29): up to max_loras adapters resident at once, slot s
// holding A [rank, in] and B [out, rank]. A merged linear (q/k/v, gate/up) stacks its parts: part p
// owns A's rows and B's columns [p * max_rank, p * max_rank + r_p) and B's rows of its own outputs,
// B is zero elsewhere (and past each part's rank), and B already holds scale_p * B_p. So one shrink
// (x A^T, [T, rank]) and one expand (+= (x A^T) B^T) serve every part; kernels may skip B's zero
// blocks through part_end. Stored in the activation dtype, allocated once at start-up.
struct LoraLinear {
  static constexpr int kMaxParts = 3;
  Tensor a;  // [max_loras, rank, in_features]
  Tensor b;  // [max_loras, out_features, rank]
  int64_t in_features = 0, out_features = 0;
  int64_t rank = 0;                         // num_parts * max_rank
  int64_t max_rank = 0;                     // columns per part
  int32_t num_parts = 1;                    // 3 for qkv, 2 for gate_up
  int64_t part_end[kMaxParts] = {0, 0, 0};  // end of each part's output rows
};

struct RopeTable {
  Tensor inv_freq;  // [head_dim / 2] fp32 on the device
  int64_t head_dim = 0;
  float attention_scaling = 1.0f;  // cos and sin are multiplied by it (yarn, longrope)
  // M-RoPE (Qwen2-VL, Qwen2.5-VL): frequencies [0, s0) turn by the temporal position, [s0, s0 +
  // s1) by the height one, the rest by the width one (DeviceBatch::mrope_positions); all zero:
  // one position a row.
  std::array<int32_t, 3> mrope_section{};
};

// One layer's paged KV cache: [num_blocks, block_size, num_kv_heads, head_dim] each.
struct KvLayer {
  Tensor k, v;
  // An FP8 cache (k, v of dtype kF8E4M3, --kv-cache-dtype fp8): a stored value is the key or
  // value divided by its scale, saturated to +-448 (per tensor: the checkpoint's k_scale /
  // v_scale, else 1). Ignored by caches in the activation dtype.
  float k_scale = 1.0f, v_scale = 1.0f;
};

// Batch metadata prepared on the device once per step (see backend/forward_batch.h).
struct DeviceBatch {
  int32_t num_tokens = 0;
  int32_t num_seqs = 0;
  int32_t num_logit_rows = 0;
  int32_t max_q_len = 0;
  int32_t max_kv_len = 0;
  const int32_t* token_ids = nullptr;     // [T]
  const int32_t* positions = nullptr;     // [T]
  const int32_t* slot_mapping = nullptr;  // [T] KV slot (block * block_size + offset)
  const int32_t* seq_q_start = nullptr;   // [S + 1] (prefix sums of q_len)
  const int32_t* seq_kv_len = nullptr;    // [S]
  const int32_t* block_tables = nullptr;  // [S, max_blocks_per_seq] padded
  int32_t max_blocks_per_seq = 0;
  const int32_t* logit_rows = nullptr;  // [R]
  // Device backends: the metadata header kernels read on the device (block-table stride, edits
  // offset), the base of the metadata buffer, and the sampling rows [R] when they were uploaded.
  const int32_t* header = nullptr;
  int32_t* meta = nullptr;
  const SamplingRow* sampling_rows = nullptr;
  int32_t num_real_rows = 0;          // logit rows before padding (R counts the padding rows too)
  int32_t num_single_token_seqs = 0;  // sequences with exactly one new token (padding included)
  // [T] the LoRA slot of each row (-1: the base model), from DeviceRuntime::set_lora_rows; null
  // when LoRA is off. Device backends keep it in device memory, so graphs replay any mix.
  const int32_t* lora_slots = nullptr;
  // Device backends: the same rows grouped by slot into tiles (backend/cuda/lora.h's layout), built
  // on the host in the step's metadata upload; null when LoRA is off.
  const int32_t* lora_tiles = nullptr;
  // [T, 2] or null: row t also attends to positions [lo, hi) of its sequence (the tokens of its
  // image, issue 34; (pos, pos + 1) for the others), beyond causal (and window) attention. Host
  // memory, the CPU backend's attention only; every position below hi is in the cache.
  const int32_t* attend_ranges = nullptr;
  // [3, T] or null: M-RoPE positions (ForwardBatch::mrope_positions; host memory, the CPU rope).
  const int32_t* mrope_positions = nullptr;
};

// The largest step the model will run, so a device backend can size its per-step buffers once at
// start-up (nothing is allocated per step).
struct StepCapacity {
  int32_t max_tokens = 0;          // rows per step (also sequences and logit rows per step)
  int32_t max_blocks_per_seq = 0;  // block-table row length
  int32_t max_top_logprobs = 0;    // SamplingRow::num_logprobs at most
  int64_t max_edits = 0;           // LogitEdit entries per step (more grows the buffer once)
  int64_t max_mask_words = 0;      // bitmask words per step (structured outputs; rows x words)
  // fp32 values of the draft distributions per step (SamplingBatch::draft_probs: rows x vocab;
  // speculative decoding with sampled drafts; more grows the buffer once)
  int64_t max_draft_floats = 0;
  int32_t max_lora_columns = 0;  // widest LoraLinear::rank (0: LoRA off): the shrink's scratch
};

}  // namespace inferd
