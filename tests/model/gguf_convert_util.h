// Test helper: writes a Hugging Face model directory (config.json + model.safetensors) as a GGUF
// file the way llama.cpp's convert_hf_to_gguf.py writes one (its key names, tensor names, the q/k
// row permutation of llama-style rope, Gemma's (1 + w) norms, Phi-3's fused names and longrope
// factor tensors, Llama 3's rope_freqs), with the linear weights in a chosen ggml type
// (quantized by ggml::quantize_row where their rows allow it, else kept F32, as llama-quantize
// falls back). Tokenizer keys come from the caller (`extra`; the model tests need none).
#pragma once

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ggml_types.h"
#include "model/config.h"
#include "model/loader/gguf.h"
#include "model/loader/safetensors.h"

namespace inferd::testing_util {

inline std::vector<float> tensor_f32(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    v[size_t(i)] = t.dtype() == DType::kF32    ? t.data_as<float>()[i]
                   : t.dtype() == DType::kBF16 ? bf16_to_f32(t.data_as<uint16_t>()[i])
                                               : f16_to_f32(t.data_as<uint16_t>()[i]);
  }
  return v;
}

// `dequantized`: the values quantized to `type` and back, stored as F32 (the exact reference of
// the quantized file's weights).
inline GgufWriteTensor gguf_tensor(const std::string& name, const std::vector<float>& v,
                                   std::vector<int64_t> shape, ggml::Type type,
                                   bool dequantized = false) {
  GgufWriteTensor t;
  t.name = name;
  t.shape = shape;
  const int64_t cols = shape.back(), rows = int64_t(v.size()) / cols;
  const auto& tr = ggml::traits(type);
  if (type != ggml::Type::kF32 && (shape.size() != 2 || cols % tr.block_elems != 0))
    type = ggml::Type::kF32;  // llama-quantize keeps such tensors unquantized
  t.type = type;
  if (type == ggml::Type::kF32) {
    t.bytes.resize(v.size() * 4);
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    return t;
  }
  const int64_t rb = ggml::row_bytes(type, cols);
  t.bytes.resize(size_t(rows * rb));
  for (int64_t r = 0; r < rows; ++r)
    ggml::quantize_row(type, v.data() + r * cols, t.bytes.data() + r * rb, cols);
  if (!dequantized) return t;
  std::vector<float> back(v.size());
  for (int64_t r = 0; r < rows; ++r)
    ggml::dequantize_row(type, t.bytes.data() + r * rb, back.data() + r * cols, cols);
  return gguf_tensor(name, back, shape, ggml::Type::kF32);
}

// convert_hf_to_gguf's LlamaModel.permute: rows of each head reordered so that llama.cpp's rope
// (adjacent pairs) equals the Hugging Face rotate-half one.
inline std::vector<float> permute_qk(const std::vector<float>& w, int64_t heads, int64_t cols) {
  const int64_t rows = int64_t(w.size()) / cols, hd = rows / heads, half = hd / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < half; ++i)
        std::memcpy(&out[size_t((h * hd + 2 * i + j) * cols)],
                    &w[size_t((h * hd + j * half + i) * cols)], size_t(cols) * 4);
  return out;
}

// Llama 3's rope as llama.cpp's converter writes it: a divisor per frequency.
inline std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  const RopeConfig& r = c.rope;
  const double old_len = double(r.original_max_position), lo = r.low_freq_factor,
               hi = r.high_freq_factor;
  const double low_wl = old_len / lo, high_wl = old_len / hi;
  std::vector<float> f;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const float freq = 1.0f / std::pow(float(r.theta), float(2 * i) / float(c.head_dim));
    const double wl = 2 * M_PI / double(freq);
    if (wl < high_wl) {
      f.push_back(1.0f);
    } else if (wl > low_wl) {
      f.push_back(float(r.factor));
    } else {
      const double smooth = (old_len / wl - lo) / (hi - lo);
      f.push_back(float(1.0 / ((1 - smooth) / r.factor + smooth)));
    }
  }
  return f;
}

// Writes `hf_dir` (config parsed as `c`) to `out` with linear weights of `linear_type`
// (`dequantized`: stored as F32 after a round trip through that type).
inline void write_gguf_like_llama_cpp(const std::string& hf_dir, const ModelConfig& c,
                                      const std::string& out, ggml::Type linear_type,
                                      bool dequantized = false, const GgufMetadata& extra = {}) {
  std::string arch;
  if (c.architecture == "LlamaForCausalLM" || c.architecture == "MistralForCausalLM")
    arch = "llama";
  if (c.architecture == "Qwen2ForCausalLM") arch = "qwen2";
  if (c.architecture == "Qwen3ForCausalLM") arch = "qwen3";
  if (c.architecture == "Gemma3ForCausalLM") arch = "gemma3";
  if (c.architecture == "Phi3ForCausalLM") arch = "phi3";
  if (arch.empty()) fail("no GGUF architecture for {}", c.architecture);
  const auto st = SafetensorsIndex::open_dir(hf_dir);
  GgufMetadata kv;
  const auto key = [&](const std::string& k) { return arch + "." + k; };
  kv["general.architecture"] = gguf_string(arch);
  kv["general.name"] = gguf_string("test");
  kv[key("context_length")] = gguf_u32(uint32_t(c.max_position_embeddings));
  kv[key("embedding_length")] = gguf_u32(uint32_t(c.hidden_size));
  kv[key("block_count")] = gguf_u32(uint32_t(c.num_layers));
  kv[key("feed_forward_length")] = gguf_u32(uint32_t(c.intermediate_size));
  kv[key("attention.head_count")] = gguf_u32(uint32_t(c.num_heads));
  kv[key("attention.head_count_kv")] = gguf_u32(uint32_t(c.num_kv_heads));
  kv[key("attention.layer_norm_rms_epsilon")] = gguf_f32(float(c.rms_norm_eps));
  kv[key("rope.freq_base")] = gguf_f32(float(c.rope.theta));
  kv[key("rope.dimension_count")] = gguf_u32(uint32_t(c.head_dim));
  if (c.head_dim != c.hidden_size / c.num_heads) {
    kv[key("attention.key_length")] = gguf_u32(uint32_t(c.head_dim));
    kv[key("attention.value_length")] = gguf_u32(uint32_t(c.head_dim));
  }
  if (c.rope.type == RopeType::kLinear) {
    kv[key("rope.scaling.type")] = gguf_string("linear");
    kv[key("rope.scaling.factor")] = gguf_f32(float(c.rope.factor));
  } else if (c.rope.type == RopeType::kYarn) {
    kv[key("rope.scaling.type")] = gguf_string("yarn");
    kv[key("rope.scaling.factor")] = gguf_f32(float(c.rope.factor));
    kv[key("rope.scaling.original_context_length")] =
        gguf_u32(uint32_t(c.rope.original_max_position));
  }
  if (arch == "gemma3" || arch == "phi3") {
    if (c.sliding_window > 0)
      kv[key("attention.sliding_window")] = gguf_u32(uint32_t(c.sliding_window));
  }
  if (arch == "gemma3" && c.final_logit_softcap > 0)
    kv[key("final_logit_softcapping")] = gguf_f32(float(c.final_logit_softcap));

  std::vector<GgufWriteTensor> ts;
  const auto get = [&](const std::string& n) { return tensor_f32(st.get(n)); };
  const auto shape_of = [&](const std::string& n) { return st.info(n).shape; };
  const bool gemma = arch == "gemma3";
  const auto norm = [&](const std::string& hf, const std::string& g) {
    std::vector<float> v = get(hf);
    if (gemma)
      for (float& x : v) x += 1.0f;
    ts.push_back(gguf_tensor(g, v, shape_of(hf), ggml::Type::kF32));
  };
  const auto lin = [&](const std::string& hf, const std::string& g, int64_t permute_heads = 0) {
    std::vector<float> v = get(hf);
    const auto sh = shape_of(hf);
    if (permute_heads) v = permute_qk(v, permute_heads, sh.size() == 2 ? sh[1] : 1);
    ts.push_back(
        gguf_tensor(g, v, sh, sh.size() == 2 ? linear_type : ggml::Type::kF32, dequantized));
  };
  lin("model.embed_tokens.weight", "token_embd.weight");
  norm("model.norm.weight", "output_norm.weight");
  if (!c.tie_word_embeddings) lin("lm_head.weight", "output.weight");
  if (c.rope.type == RopeType::kLlama3)
    ts.push_back(gguf_tensor("rope_freqs.weight", llama3_rope_factors(c), {c.head_dim / 2},
                             ggml::Type::kF32));
  if (c.rope.type == RopeType::kLongrope) {
    std::vector<float> lf(c.rope.long_factor.begin(), c.rope.long_factor.end());
    std::vector<float> sf(c.rope.short_factor.begin(), c.rope.short_factor.end());
    ts.push_back(
        gguf_tensor("rope_factors_long.weight", lf, {int64_t(lf.size())}, ggml::Type::kF32));
    ts.push_back(
        gguf_tensor("rope_factors_short.weight", sf, {int64_t(sf.size())}, ggml::Type::kF32));
    kv[key("rope.scaling.original_context_length")] =
        gguf_u32(uint32_t(c.rope.original_max_position));
    if (c.rope.attention_factor > 0)
      kv[key("rope.scaling.attn_factor")] = gguf_f32(float(c.rope.attention_factor));
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".",
                      b = "blk." + std::to_string(i) + ".";
    norm(p + "input_layernorm.weight", b + "attn_norm.weight");
    if (arch == "phi3") {
      lin(p + "self_attn.qkv_proj.weight", b + "attn_qkv.weight");
      lin(p + "mlp.gate_up_proj.weight", b + "ffn_up.weight");
    } else {
      const bool perm = arch == "llama";
      lin(p + "self_attn.q_proj.weight", b + "attn_q.weight", perm ? c.num_heads : 0);
      lin(p + "self_attn.k_proj.weight", b + "attn_k.weight", perm ? c.num_kv_heads : 0);
      lin(p + "self_attn.v_proj.weight", b + "attn_v.weight");
      for (const char* t : {"q", "k", "v"})
        if (st.contains(p + "self_attn." + t + "_proj.bias"))
          lin(p + "self_attn." + t + "_proj.bias", b + "attn_" + t + ".bias");
      lin(p + "mlp.gate_proj.weight", b + "ffn_gate.weight");
      lin(p + "mlp.up_proj.weight", b + "ffn_up.weight");
    }
    lin(p + "self_attn.o_proj.weight", b + "attn_output.weight");
    lin(p + "mlp.down_proj.weight", b + "ffn_down.weight");
    if (st.contains(p + "self_attn.q_norm.weight")) {
      norm(p + "self_attn.q_norm.weight", b + "attn_q_norm.weight");
      norm(p + "self_attn.k_norm.weight", b + "attn_k_norm.weight");
    }
    if (gemma) {
      norm(p + "post_attention_layernorm.weight", b + "post_attention_norm.weight");
      norm(p + "pre_feedforward_layernorm.weight", b + "ffn_norm.weight");
      norm(p + "post_feedforward_layernorm.weight", b + "post_ffw_norm.weight");
    } else {
      norm(p + "post_attention_layernorm.weight", b + "ffn_norm.weight");
    }
  }
  for (const auto& [k, v] : extra) kv[k] = v;
  write_gguf(out, kv, ts);
}

// A Qwen2-architecture model directory with seeded random weights: `base_config` (a config.json)
// with hidden / intermediate sizes replaced (hidden 256: K-quant rows), 4 heads / 2 kv heads.
inline void write_random_qwen2_dir(const std::string& base_config, const std::string& dir,
                                   int64_t hidden, int64_t intermediate) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(base_config));
  j["hidden_size"] = hidden;
  j["intermediate_size"] = intermediate;
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 2;
  j.erase("head_dim");
  std::ofstream(fs::path(dir) / "config.json") << j.dump(1);
  const ModelConfig c = load_model_config(dir);
  std::vector<std::pair<std::string, Tensor>> ws;
  uint64_t s = 12345;
  const auto rnd = [&](std::vector<int64_t> shape, float stddev, float mean) {
    Tensor t = Tensor::empty_host(DType::kF32, shape);
    for (int64_t i = 0; i < t.numel(); ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      const double u = double(s >> 11) / double(1ull << 53);
      t.data_as<float>()[i] = mean + stddev * float(std::sqrt(12.0) * (u - 0.5));
    }
    return t;
  };
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t q = c.q_size(), kv = c.kv_size();
  ws.push_back({"model.embed_tokens.weight", rnd({V, H}, 0.5f, 0)});
  ws.push_back({"model.norm.weight", rnd({H}, 0.1f, 1)});
  ws.push_back({"lm_head.weight", rnd({V, H}, 0.05f, 0)});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    ws.push_back({p + "input_layernorm.weight", rnd({H}, 0.1f, 1)});
    ws.push_back({p + "post_attention_layernorm.weight", rnd({H}, 0.1f, 1)});
    ws.push_back({p + "self_attn.q_proj.weight", rnd({q, H}, 0.05f, 0)});
    ws.push_back({p + "self_attn.k_proj.weight", rnd({kv, H}, 0.05f, 0)});
    ws.push_back({p + "self_attn.v_proj.weight", rnd({kv, H}, 0.05f, 0)});
    ws.push_back({p + "self_attn.q_proj.bias", rnd({q}, 0.05f, 0)});
    ws.push_back({p + "self_attn.k_proj.bias", rnd({kv}, 0.05f, 0)});
    ws.push_back({p + "self_attn.v_proj.bias", rnd({kv}, 0.05f, 0)});
    ws.push_back({p + "self_attn.o_proj.weight", rnd({H, q}, 0.05f, 0)});
    ws.push_back({p + "mlp.gate_proj.weight", rnd({F, H}, 0.05f, 0)});
    ws.push_back({p + "mlp.up_proj.weight", rnd({F, H}, 0.05f, 0)});
    ws.push_back({p + "mlp.down_proj.weight", rnd({H, F}, 0.05f, 0)});
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), ws);
}

}  // namespace inferd::testing_util
