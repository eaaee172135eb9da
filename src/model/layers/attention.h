// Self-attention over the paged KV cache: the qkv projection (one merged GEMM), optional q/k
// norms (per head: Qwen3, Gemma 3; over the whole projection: OLMo 2), RoPE fused with the KV-cache
// write, causal paged attention (GQA, an optional sliding window, optional per-head sinks:
// gpt-oss), the output projection. A MoE
// or multi-modal model reuses it as it is.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "model/layers/linear.h"
#include "model/layers/norm.h"

namespace inferd {

class ModelLoader;

struct AttentionSpec {
  std::string prefix;  // "model.layers.<i>.self_attn."
  int64_t hidden = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t input = 0;  // width of the qkv projection's input (0: hidden; EAGLE-3 heads: 2 hidden)
  bool qkv_bias = false, o_bias = false;
  bool fused_qkv = false;  // the checkpoint holds one qkv_proj (Phi-3)
  enum class QkNorm : uint8_t { kNone, kPerHead, kWholeProjection } qk_norm = QkNorm::kNone;
  double norm_eps = 1e-6;
  bool norm_plus_one = false;  // Gemma's (1 + w) norms
  float scale = 1.0f;          // softmax scale of the scores
  int64_t sliding_window = 0;  // 0: full attention
  const RopeTable* rope = nullptr;
  bool sinks = false;  // gpt-oss: `<prefix>sinks` [num_heads], a logit per head in the softmax
};

class Attention {
 public:
  Attention(const AttentionSpec& spec, ModelLoader& loader);
  // out [T, hidden] = o_proj(attention(rope(qkv_proj(x)))); `qkv` [T, q + 2 kv] and `attn` [T, q]
  // are workspace; k and v are written to `kv` at the batch's slots.
  void forward(KernelOps& ops, const DeviceBatch& b, const Tensor& x, Tensor qkv, Tensor attn,
               KvLayer& kv, Tensor out) const;
  // Each row's LoRA adapter on qkv and o (null: none).
  void set_lora(const LoraLinear* qkv, const LoraLinear* o) {
    qkv_.set_lora(qkv);
    o_.set_lora(o);
  }

 private:
  int64_t nh_, nkv_, hd_;
  AttentionSpec::QkNorm qk_kind_;
  float scale_;
  int64_t window_;
  const RopeTable* rope_;
  LinearLayer qkv_, o_;
  RmsNorm q_norm_, k_norm_;
  Tensor sinks_;  // fp32 [num_heads], or undefined
};

}  // namespace inferd
