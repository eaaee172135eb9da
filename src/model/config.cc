// Parsing config.json (config.h): the keys every architecture shares, then the family's own
// (registry.h), then quantization, dtype and special tokens.
#include "model/config.h"

#include "model/loader/gguf_model.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/mmap_file.h"
#include "model/config_parsing.h"
#include "model/registry.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

const Architecture& architecture_of(const json& j, const std::string& src, ModelConfig& c) {
  if (auto it = j.find("architectures");
      it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string()) {
    c.architecture = (*it)[0].get<std::string>();
  } else {
    fail("{}: missing 'architectures' (expected e.g. [\"LlamaForCausalLM\"])", src);
  }
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) c.model_type = *it;
  const Architecture* arch = find_architecture(c.architecture);
  if (arch == nullptr) {
    fail("{}: unsupported architecture '{}': expected one of {}", src, c.architecture,
         supported_architectures());
  }
  return *arch;
}

// Sizes, heads, head_dim, positions, norm eps and tied embeddings, with the family's defaults.
void parse_common(const json& j, const std::string& src, const ConfigDefaults& d, ModelConfig& c) {
  c.hidden_size = get_int(j, "hidden_size", src);
  c.intermediate_size = get_int(j, "intermediate_size", src);
  c.num_layers = get_int(j, "num_hidden_layers", src);
  c.num_heads = get_int(j, "num_attention_heads", src);
  c.num_kv_heads = get_int(j, "num_key_value_heads", src, c.num_heads);
  c.vocab_size = get_int(j, "vocab_size", src);
  if (c.num_heads <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.vocab_size <= 0 ||
      c.intermediate_size <= 0 || c.num_kv_heads <= 0) {
    fail(
        "{}: sizes must be positive (hidden_size, intermediate_size, num_hidden_layers, "
        "num_attention_heads, num_key_value_heads, vocab_size)",
        src);
  }
  c.head_dim =
      get_int(j, "head_dim", src, d.head_dim > 0 ? d.head_dim : c.hidden_size / c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0) {
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", src,
         c.num_heads, c.num_kv_heads);
  }
  if (c.head_dim <= 2 || c.head_dim % 2 != 0)
    fail("{}: head_dim ({}) must be even and > 2 for RoPE", src, c.head_dim);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", src, d.max_position_embeddings);
  if (c.max_position_embeddings <= 0) fail("{}: max_position_embeddings must be positive", src);
  c.rms_norm_eps = get_num(j, "rms_norm_eps", src, d.rms_norm_eps);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", src, d.tie_word_embeddings);
}

// dtype / torch_dtype and the special tokens.
void parse_dtype_and_tokens(const json& j, const std::string& src, ModelConfig& c) {
  std::string dt, tdt;
  if (auto it = j.find("dtype"); it != j.end() && it->is_string()) dt = *it;
  if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string()) tdt = *it;
  if (!dt.empty() && !tdt.empty() && dt != tdt)
    fail("{}: dtype is \"{}\" but torch_dtype is \"{}\": the two places disagree", src, dt, tdt);
  c.dtype = !dt.empty() ? dt : tdt;
  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer())
    c.bos_token_id = *it;
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    if (it->is_number_integer()) c.eos_token_ids.push_back(*it);
    if (it->is_array())
      for (const auto& e : *it)
        if (e.is_number_integer()) c.eos_token_ids.push_back(e);
  }
}

}  // namespace

ModelConfig parse_model_config(const std::string& text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", src, e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object", src);
  ModelConfig c;
  const Architecture& arch = architecture_of(j, src, c);
  const json tj = arch.text_config(j, src);  // j itself unless a vision-language model
  parse_common(tj, src, arch.defaults(c.architecture), c);
  arch.parse_config(tj, src, c);
  if (c.sliding_window < 0) fail("{}: sliding_window must be positive", src);
  if (is_set(j, "quantization_config")) c.quant = parse_quantization(j["quantization_config"], src);
  parse_dtype_and_tokens(tj, src, c);
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  if (!fs::exists(model_dir)) fail("model path '{}' does not exist", model_dir);
  if (is_gguf_model_path(model_dir)) return load_gguf_model_config(model_dir);
  if (!fs::is_directory(model_dir)) {
    fail(
        "model path '{}' is neither a directory (a Hugging Face model directory with "
        "config.json) nor a GGUF file",
        model_dir);
  }
  const std::string path = (fs::path(model_dir) / "config.json").string();
  if (!fs::exists(path)) fail("'{}' is missing: a model directory needs config.json", path);
  return parse_model_config(read_text_file(path), path);
}

}  // namespace inferd
