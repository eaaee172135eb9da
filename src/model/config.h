// ModelConfig: the fields of a Hugging Face config.json that the decoder needs, read from both
// generations of the format (transformers 5's `rope_parameters` / `dtype` and the older
// `rope_theta` + `rope_scaling` / `torch_dtype`). A key that changes the math and that inferd
// does not implement stops the load with an error naming it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace inferd {

enum class RopeType : uint8_t { kDefault, kLinear, kDynamic, kLlama3, kYarn, kLongrope };
const char* rope_type_name(RopeType t);

// One set of rotary-embedding parameters (transformers' `rope_parameters` dict, or one entry of
// it per layer type). Fields that a type does not use keep their defaults.
struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;                        // linear, dynamic, llama3, yarn, longrope
  double low_freq_factor = 1.0;               // llama3
  double high_freq_factor = 4.0;              // llama3
  int64_t original_max_position = 0;          // llama3, yarn, longrope (0: max_position_embeddings)
  double attention_factor = -1.0;             // yarn, longrope: cos/sin scale; < 0: derived
  double beta_fast = 32.0, beta_slow = 1.0;   // yarn
  double mscale = 0.0, mscale_all_dim = 0.0;  // yarn (0: not set)
  bool truncate = true;                       // yarn
  std::vector<double> short_factor, long_factor;  // longrope, head_dim / 2 each
};

// The inverse frequencies [head_dim / 2] (fp32, computed as transformers computes them) and the
// factor applied to cos and sin (yarn, longrope; 1 otherwise). Types that transformers makes
// depend on the sequence length (dynamic, longrope) are fixed for the server's longest
// sequence: `max_model_len` up to max_position_embeddings (dynamic) or the original length
// (longrope) gives exactly transformers' frequencies for every sequence that fits; beyond it, the
// frequencies transformers uses for a sequence of max_model_len tokens (as vLLM does).
struct RopeFrequencies {
  std::vector<float> inv_freq;
  float attention_scaling = 1.0f;
};
RopeFrequencies rope_frequencies(const RopeConfig& r, int64_t head_dim,
                                 int64_t max_position_embeddings, int64_t max_model_len);

// How a checkpoint's linear weights are quantized (config.json's quantization_config).
enum class QuantMethod : uint8_t {
  kNone,
  // compressed-tensors float8 (RedHatAI/...-FP8, -FP8-dynamic): weight_scale per tensor or per
  // output channel, activations per token (dynamic) or per tensor (static input_scale).
  kCompressedTensorsFp8,
  // transformers' "fp8" (Qwen3-FP8, DeepSeek): weight_scale_inv per 128x128 block, activations
  // quantized per token and 128-wide group at run time.
  kFp8Block,
};
struct QuantConfig {
  QuantMethod method = QuantMethod::kNone;
  bool weight_per_tensor = false;   // compressed-tensors: strategy "tensor" (else "channel")
  bool static_activations = false;  // compressed-tensors: input_scale given (strategy "tensor")
  int64_t block_n = 128, block_k = 128;  // kFp8Block: weight_block_size
  std::vector<std::string> ignore;       // modules left unquantized ("lm_head")
};
const char* quant_method_name(QuantMethod m);

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
  double attention_scale = 0;          // 0: 1 / sqrt(head_dim); Gemma 3: query_pre_attn_scalar^-0.5
  double final_logit_softcap = 0;      // > 0: logits = tanh(logits / cap) * cap
  int64_t sliding_window = 0;          // 0: none; else the window of the layers marked sliding
  std::vector<uint8_t> layer_sliding;  // [num_layers]: 1 where the layer uses sliding_window
  std::string dtype;                   // as declared ("bfloat16", ...), may be empty
  QuantConfig quant;                   // quantization_config of the checkpoint
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  // The attention window of layer i (0: full attention).
  int64_t window_of(int64_t layer) const {
    return layer_sliding.empty() || !layer_sliding[size_t(layer)] ? 0 : sliding_window;
  }
};

// Parses config.json text. `source` names the file in error messages. Throws Error for missing or
// invalid fields and for unsupported architectures or features.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::string& model_dir);

}  // namespace inferd
