#include "model/config.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/error.h"
#include "core/mmap_file.h"

namespace inferd {

namespace {

using json = nlohmann::json;

int64_t get_int(const json& j, const char* key, const std::string& src, int64_t def = -1) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def >= 0) return def;
    fail("{}: missing field '{}' (expected an integer)", src, key);
  }
  if (!it->is_number_integer())
    fail("{}: field '{}' must be an integer, got {}", src, key, it->dump());
  return it->get<int64_t>();
}

double get_num(const json& j, const char* key, const std::string& src, double def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) fail("{}: field '{}' must be a number, got {}", src, key, it->dump());
  return it->get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& src, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail("{}: field '{}' must be true or false, got {}", src, key, it->dump());
  return it->get<bool>();
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
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty()) {
    c.architecture = (*it)[0].get<std::string>();
  } else {
    fail("{}: missing 'architectures' (expected e.g. [\"LlamaForCausalLM\"])", src);
  }
  c.model_type = j.value("model_type", "");
  static const char* kSupported[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                                     "Qwen3ForCausalLM"};
  bool ok = false;
  for (const char* a : kSupported) ok = ok || c.architecture == a;
  if (!ok) {
    fail(
        "{}: unsupported architecture '{}': expected one of LlamaForCausalLM, "
        "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM",
        src, c.architecture);
  }
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
  c.head_dim = get_int(j, "head_dim", src, c.hidden_size / c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0) {
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", src,
         c.num_heads, c.num_kv_heads);
  }
  if (c.head_dim % 2 != 0) fail("{}: head_dim ({}) must be even for RoPE", src, c.head_dim);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", src, 4096);
  c.rms_norm_eps = get_num(j, "rms_norm_eps", src, 1e-6);
  c.rope_theta = get_num(j, "rope_theta", src, 10000.0);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", src, false);
  std::string act = j.value("hidden_act", "silu");
  if (act != "silu") fail("{}: unsupported hidden_act '{}': expected 'silu'", src, act);
  if (get_bool(j, "mlp_bias", src, false)) fail("{}: mlp_bias=true is not supported", src);

  if (c.architecture == "Qwen2ForCausalLM") {
    c.qkv_bias = true;
  } else if (c.architecture == "Qwen3ForCausalLM") {
    c.qk_norm = true;
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
  } else {
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
  }
  // Sliding window: Mistral applies it to every layer whenever it is set. Qwen2/3 use it only
  // with use_sliding_window (and then per layer), which is not supported yet.
  if (c.architecture == "MistralForCausalLM") {
    if (auto it = j.find("sliding_window"); it != j.end() && it->is_number_integer())
      c.sliding_window = it->get<int64_t>();
  } else if (c.model_type.starts_with("qwen") && get_bool(j, "use_sliding_window", src, false)) {
    fail("{}: use_sliding_window=true is not supported", src);
  }

  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    const json& rs = *it;
    std::string type = rs.value("rope_type", rs.value("type", ""));
    if (type == "llama3") {
      c.rope_scaling = RopeScaling::kLlama3;
      c.rope_factor = get_num(rs, "factor", src, 8.0);
      c.rope_low_freq_factor = get_num(rs, "low_freq_factor", src, 1.0);
      c.rope_high_freq_factor = get_num(rs, "high_freq_factor", src, 4.0);
      c.rope_original_max_position = get_int(rs, "original_max_position_embeddings", src, 8192);
    } else if (type == "linear") {
      c.rope_scaling = RopeScaling::kLinear;
      c.rope_factor = get_num(rs, "factor", src, 1.0);
    } else if (type == "default" || type.empty()) {
      c.rope_scaling = RopeScaling::kNone;
    } else {
      fail("{}: unsupported rope_scaling type '{}': expected llama3, linear or default", src, type);
    }
  }
  if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string()) c.torch_dtype = *it;
  if (auto it = j.find("dtype"); it != j.end() && it->is_string()) c.torch_dtype = *it;
  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer())
    c.bos_token_id = *it;
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    if (it->is_number_integer()) c.eos_token_ids.push_back(*it);
    if (it->is_array())
      for (const auto& e : *it)
        if (e.is_number_integer()) c.eos_token_ids.push_back(e);
  }
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  if (!fs::exists(model_dir)) fail("model path '{}' does not exist", model_dir);
  if (!fs::is_directory(model_dir)) {
    fail(
        "model path '{}' is not a directory (expected a Hugging Face model directory with "
        "config.json)",
        model_dir);
  }
  const std::string path = (fs::path(model_dir) / "config.json").string();
  if (!fs::exists(path)) fail("'{}' is missing: a model directory needs config.json", path);
  return parse_model_config(read_text_file(path), path);
}

}  // namespace inferd
