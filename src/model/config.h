// ModelConfig: the fields of a Hugging Face config.json that the model needs, read from both
// generations of the format (transformers 5's `rope_parameters` / `dtype` and the older
// `rope_theta` + `rope_scaling` / `torch_dtype`). Each architecture family reads its own keys
// (models/*.cc, through the registry); a key that changes the math and that inferd does not
// implement stops the load with an error naming it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/quant/quant_config.h"
#include "model/rope_config.h"

namespace inferd {

struct ModelConfig {
  std::string architecture;  // e.g. LlamaForCausalLM
  std::string model_type;    // e.g. llama
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;  // every layer, or the full-attention layers when rope_local is used
  bool has_rope_local = false;
  RopeConfig rope_local;  // sliding-window layers, when the config gives them their own rope
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2, Llama with attention_bias
  bool o_bias = false;    // Llama with attention_bias
  bool qk_norm = false;   // Qwen3, Gemma 3
  // Gemma 3: norms scale by (1 + w) (folded into the weights at load), the embedding is scaled by
  // sqrt(hidden_size), attention and MLP outputs pass through their own norms (post_attention,
  // pre_feedforward, post_feedforward) and the MLP gate uses GELU (tanh approximation).
  bool norm_weight_plus_one = false;
  bool embedding_scaled = false;
  bool sandwich_norms = false;
  bool gelu_tanh = false;  // else SiLU
  // Phi-3: q/k/v as one `qkv_proj` and gate/up as one `gate_up_proj` in the checkpoint.
  bool fused_qkv_gate_up = false;
  double attention_scale = 0;      // 0: 1 / sqrt(head_dim); Gemma 3: query_pre_attn_scalar^-0.5
  double final_logit_softcap = 0;  // > 0: logits = tanh(logits / cap) * cap
  // Granite: embeddings * embedding_multiplier (0: none), each sublayer's output *
  // residual_multiplier before its residual add, logits / logits_scaling (attention_multiplier is
  // attention_scale).
  double embedding_multiplier = 0;
  double residual_multiplier = 1.0;
  double logits_scaling = 1.0;
  // Mixture of experts (issue 27: Qwen3-MoE, Mixtral): num_experts > 0 and layer_sparse[i] = 1
  // where layer i's MLP is the MoE block (num_experts_per_tok of num_experts, each of
  // moe_intermediate_size; the others stay dense with intermediate_size).
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = true;  // renormalise the top-k routing weights
  std::vector<uint8_t> layer_sparse;
  bool is_moe_layer(int64_t layer) const {
    return num_experts > 0 && !layer_sparse.empty() && layer_sparse[size_t(layer)];
  }
  int64_t sliding_window = 0;          // 0: none; else the window of the layers marked sliding
  std::vector<uint8_t> layer_sliding;  // [num_layers]: 1 where the layer uses sliding_window
  std::string dtype;                   // as declared ("bfloat16", ...), may be empty
  QuantConfig quant;                   // quantization_config of the checkpoint
  // gpt-oss (issue 27): attention sinks; its experts' clamped SwiGLU.
  bool attention_sinks = false;
  double swiglu_alpha = 1.702, swiglu_limit = 7.0;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  // EAGLE-3 heads (LlamaForCausalLMEagle3, issue 26): vocab_size is the draft vocabulary (the
  // lm_head's rows, config.json's draft_vocab_size); target_vocab_size is config.json's
  // vocab_size (the target's), target_hidden_size the width of each target state fc fuses, and
  // eagle_aux_layers the target layers whose input states those are (empty: the default
  // (2, L / 2, L - 3) of the target's L layers).
  int64_t target_vocab_size = 0;
  int64_t target_hidden_size = 0;
  std::vector<int32_t> eagle_aux_layers;

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  // The attention window of layer i (0: full attention).
  int64_t window_of(int64_t layer) const {
    return layer_sliding.empty() || !layer_sliding[size_t(layer)] ? 0 : sliding_window;
  }
};

// Parses config.json text. `source` names the file in error messages. Throws Error for missing or
// invalid fields and for unsupported architectures or features (the error for an unknown
// architecture lists the registry's).
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::string& model_dir);

}  // namespace inferd
