// ModelConfig: the fields of a Hugging Face config.json that the decoder needs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace inferd {

enum class RopeScaling : uint8_t { kNone, kLinear, kLlama3 };

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
  double rope_theta = 10000.0;
  RopeScaling rope_scaling = RopeScaling::kNone;
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position = 8192;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;       // Qwen2, Llama with attention_bias
  bool o_bias = false;         // Llama with attention_bias
  bool qk_norm = false;        // Qwen3
  int64_t sliding_window = 0;  // 0: full attention
  std::string torch_dtype;     // as declared ("bfloat16", ...), may be empty
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
};

// Parses config.json text. `source` names the file in error messages. Throws Error for missing or
// invalid fields and for unsupported architectures or features.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::string& model_dir);

}  // namespace inferd
