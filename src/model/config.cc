#include "model/config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string_view>

#include "core/error.h"
#include "core/logging.h"
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

bool is_set(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && !it->is_null();
}

// Values that mean the same: 1 and 1.0, "yarn" and "yarn".
bool same_value(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

// transformers 5 writes the rope parameters as `rope_parameters` (with `rope_theta` inside);
// older configs as top-level `rope_theta` plus `rope_scaling`. Merges both into one flat dict;
// a key given in both places with different values is an error.
json merged_rope_dict(const json& j, const json* nested, const std::string& src,
                      const std::string& where) {
  json out = json::object();
  if (nested != nullptr) {
    if (!nested->is_object()) fail("{}: {} must be an object, got {}", src, where, nested->dump());
    out = *nested;
  }
  auto merge = [&](const std::string& key, const json& v, const std::string& from) {
    if (v.is_null()) return;
    auto it = out.find(key);
    if (it != out.end() && !it->is_null() && !same_value(*it, v)) {
      fail("{}: {}.{} is {} but {} is {}: the two places disagree", src, where, key, it->dump(),
           from, v.dump());
    }
    out[key] = v;
  };
  if (auto it = j.find("rope_theta"); it != j.end()) merge("rope_theta", *it, "rope_theta");
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: rope_scaling must be an object, got {}", src, it->dump());
    for (const auto& [k, v] : it->items()) merge(k, v, "rope_scaling." + k);
  }
  if (auto t = out.find("type"); t != out.end()) {  // the old name of rope_type
    json type = *t;
    out.erase(t);
    merge("rope_type", type, where + ".type");
  }
  return out;
}

std::vector<double> get_factor_list(const json& r, const char* key, const std::string& src,
                                    const std::string& where, int64_t n) {
  auto it = r.find(key);
  if (it == r.end() || !it->is_array())
    fail("{}: {}.{} must be a list of {} numbers (longrope)", src, where, key, n);
  std::vector<double> v;
  for (const auto& e : *it) {
    if (!e.is_number()) fail("{}: {}.{} must hold numbers, got {}", src, where, key, e.dump());
    v.push_back(e.get<double>());
  }
  if (int64_t(v.size()) != n)
    fail("{}: {}.{} has {} entries, expected head_dim / 2 = {}", src, where, key, v.size(), n);
  return v;
}

RopeConfig parse_rope(const json& r, const ModelConfig& c, const json& top, double default_theta,
                      const std::string& src, const std::string& where) {
  RopeConfig rc;
  const std::string type = r.contains("rope_type") && r["rope_type"].is_string()
                               ? r["rope_type"].get<std::string>()
                               : std::string("default");
  static const std::set<std::string> kCommon = {"rope_type", "rope_theta"};
  std::set<std::string> allowed = kCommon;
  if (type == "default") {
    rc.type = RopeType::kDefault;
  } else if (type == "linear" || type == "dynamic") {
    rc.type = type == "linear" ? RopeType::kLinear : RopeType::kDynamic;
    allowed.insert("factor");
    if (!is_set(r, "factor")) fail("{}: {} needs 'factor' for rope_type '{}'", src, where, type);
  } else if (type == "llama3") {
    rc.type = RopeType::kLlama3;
    allowed.insert(
        {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"});
    for (const char* k : {"factor", "low_freq_factor", "high_freq_factor"})
      if (!is_set(r, k)) fail("{}: {} needs '{}' for rope_type 'llama3'", src, where, k);
  } else if (type == "yarn") {
    rc.type = RopeType::kYarn;
    allowed.insert({"factor", "original_max_position_embeddings", "attention_factor", "beta_fast",
                    "beta_slow", "mscale", "mscale_all_dim", "truncate"});
  } else if (type == "longrope") {
    rc.type = RopeType::kLongrope;
    allowed.insert({"factor", "original_max_position_embeddings", "attention_factor",
                    "short_factor", "long_factor"});
  } else {
    fail(
        "{}: unsupported rope type '{}' in {}: expected default, linear, dynamic, llama3, yarn "
        "or longrope",
        src, type, where);
  }
  for (const auto& [k, v] : r.items()) {
    if (k == "partial_rotary_factor") {
      if (!v.is_null() && (!v.is_number() || v.get<double>() != 1.0))
        fail("{}: {}.partial_rotary_factor = {} is not supported (only 1.0)", src, where, v.dump());
      continue;
    }
    if (!allowed.contains(k) && !v.is_null())
      fail("{}: {}.{} is not supported for rope_type '{}'", src, where, k, type);
  }
  rc.theta = get_num(r, "rope_theta", src, default_theta);
  if (!(rc.theta > 1.0)) fail("{}: {}.rope_theta must be > 1, got {}", src, where, rc.theta);
  rc.factor = get_num(r, "factor", src, 1.0);
  rc.low_freq_factor = get_num(r, "low_freq_factor", src, 1.0);
  rc.high_freq_factor = get_num(r, "high_freq_factor", src, 4.0);
  if (rc.type == RopeType::kLlama3 || rc.type == RopeType::kYarn ||
      rc.type == RopeType::kLongrope) {
    // transformers: a top-level original_max_position_embeddings (Phi-3) wins; else the one in
    // the rope dict; else max_position_embeddings.
    if (is_set(top, "original_max_position_embeddings")) {
      rc.original_max_position = get_int(top, "original_max_position_embeddings", src);
    } else {
      rc.original_max_position =
          get_int(r, "original_max_position_embeddings", src, c.max_position_embeddings);
    }
    if (rc.original_max_position <= 0)
      fail("{}: original_max_position_embeddings must be positive", src);
  }
  if (rc.type == RopeType::kYarn || rc.type == RopeType::kLongrope) {
    if (!is_set(r, "factor"))  // transformers: the ratio of the two lengths
      rc.factor = double(c.max_position_embeddings) / double(rc.original_max_position);
    rc.attention_factor = get_num(r, "attention_factor", src, -1.0);
  }
  if (rc.type == RopeType::kYarn) {
    rc.beta_fast = get_num(r, "beta_fast", src, 32.0);
    rc.beta_slow = get_num(r, "beta_slow", src, 1.0);
    rc.mscale = get_num(r, "mscale", src, 0.0);
    rc.mscale_all_dim = get_num(r, "mscale_all_dim", src, 0.0);
    rc.truncate = get_bool(r, "truncate", src, true);
  }
  if (rc.type == RopeType::kLongrope) {
    rc.short_factor = get_factor_list(r, "short_factor", src, where, c.head_dim / 2);
    rc.long_factor = get_factor_list(r, "long_factor", src, where, c.head_dim / 2);
  }
  if (!(rc.factor > 0)) fail("{}: {}.factor must be positive, got {}", src, where, rc.factor);
  return rc;
}

// Config keys that change the math and that the decoder does not implement: their presence (with
// a value other than the neutral one) stops the load. Gemma 3 reads the soft-capping keys and
// query_pre_attn_scalar itself.
void reject_unhandled_keys(const json& j, const std::string& src, bool gemma3) {
  for (const char* k :
       {"attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar",
        "embedding_multiplier", "logits_scaling", "residual_multiplier", "attention_multiplier",
        "num_experts", "num_local_experts", "no_rope_layers", "use_qk_norm"}) {
    if (gemma3 && (std::string_view(k) == "attn_logit_softcapping" ||
                   std::string_view(k) == "final_logit_softcapping" ||
                   std::string_view(k) == "query_pre_attn_scalar")) {
      continue;
    }
    if (is_set(j, k)) fail("{}: '{}' is set ({}) but not supported", src, k, j[k].dump());
  }
  if (is_set(j, "partial_rotary_factor") && get_num(j, "partial_rotary_factor", src, 1.0) != 1.0)
    fail("{}: partial_rotary_factor = {} is not supported (only 1.0)", src,
         j["partial_rotary_factor"].dump());
  if (get_bool(j, "use_bidirectional_attention", src, false))
    fail("{}: use_bidirectional_attention=true is not supported", src);
}

// One compressed-tensors quantization args object ("weights" or "input_activations") must be
// 8-bit symmetric float; returns its strategy.
std::string float8_args(const json& a, const std::string& src, const std::string& where) {
  if (!a.is_object()) fail("{}: {} must be an object", src, where);
  if (a.value("num_bits", 0) != 8 || a.value("type", "") != "float")
    fail("{}: {}: only num_bits 8 with type \"float\" (FP8) is supported, got {}", src, where,
         a.dump());
  if (!a.value("symmetric", true)) fail("{}: {}.symmetric = false is not supported", src, where);
  for (const char* k : {"group_size", "block_structure", "actorder"}) {
    if (is_set(a, k))
      fail("{}: {}.{} is not supported (FP8 per tensor / channel / token)", src, where, k);
  }
  return a.value("strategy", "");
}

QuantConfig parse_quantization(const json& q, const std::string& src) {
  QuantConfig qc;
  if (!q.is_object()) fail("{}: quantization_config must be an object", src);
  const std::string method = q.value("quant_method", "");
  if (method == "compressed-tensors") {
    qc.method = QuantMethod::kCompressedTensorsFp8;
    const std::string format = q.value("format", "");
    if (format != "float-quantized" && format != "naive-quantized")
      fail("{}: quantization_config.format '{}' is not supported: expected float-quantized", src,
           format);
    if (is_set(q, "kv_cache_scheme"))
      fail("{}: quantization_config.kv_cache_scheme is not supported yet (FP8 KV cache scales)",
           src);
    const json groups = q.contains("config_groups") ? q["config_groups"] : json();
    if (!groups.is_object() || groups.size() != 1)
      fail("{}: quantization_config.config_groups must hold exactly one group", src);
    const json& g = groups.begin().value();
    const std::string where = "quantization_config.config_groups." + groups.begin().key();
    if (!g.contains("targets") || g["targets"] != json::array({"Linear"}))
      fail("{}: {}.targets must be [\"Linear\"]", src, where);
    if (is_set(g, "output_activations"))
      fail("{}: {}.output_activations is not supported", src, where);
    if (!g.contains("weights")) fail("{}: {}.weights is missing", src, where);
    const std::string ws = float8_args(g["weights"], src, where + ".weights");
    if (ws != "tensor" && ws != "channel")
      fail("{}: {}.weights.strategy '{}' is not supported: expected tensor or channel", src, where,
           ws);
    if (g["weights"].value("dynamic", false))
      fail("{}: {}.weights.dynamic = true is not supported", src, where);
    qc.weight_per_tensor = ws == "tensor";
    if (is_set(g, "input_activations")) {
      const json& a = g["input_activations"];
      const std::string as = float8_args(a, src, where + ".input_activations");
      const bool dynamic = a.value("dynamic", false);
      if (dynamic && as != "token" && as != "tensor")
        fail("{}: {}.input_activations.strategy '{}' is not supported", src, where, as);
      if (!dynamic && as != "tensor")
        fail("{}: {}.input_activations: static scales must be per tensor, got '{}'", src, where,
             as);
      qc.static_activations = !dynamic;
    }
    if (auto it = q.find("ignore"); it != q.end() && it->is_array())
      for (const auto& e : *it)
        if (e.is_string()) qc.ignore.push_back(e.get<std::string>());
  } else if (method == "fp8") {
    qc.method = QuantMethod::kFp8Block;
    if (q.value("activation_scheme", "dynamic") != "dynamic")
      fail("{}: quantization_config.activation_scheme '{}' is not supported: expected dynamic", src,
           q.value("activation_scheme", ""));
    if (is_set(q, "fmt") && q["fmt"] != "e4m3")
      fail("{}: quantization_config.fmt {} is not supported: expected \"e4m3\"", src,
           q["fmt"].dump());
    const json b = q.contains("weight_block_size") ? q["weight_block_size"] : json();
    if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
        b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0)
      fail(
          "{}: quantization_config.weight_block_size must be two positive integers (per-tensor "
          "transformers fp8 is not supported)",
          src);
    qc.block_n = b[0].get<int64_t>();
    qc.block_k = b[1].get<int64_t>();
    for (const char* k : {"modules_to_not_convert", "ignored_layers"}) {
      if (auto it = q.find(k); it != q.end() && it->is_array())
        for (const auto& e : *it)
          if (e.is_string()) qc.ignore.push_back(e.get<std::string>());
    }
  } else {
    fail(
        "{}: quantization_config.quant_method '{}' is not supported: expected "
        "compressed-tensors (FP8) or fp8",
        src, method);
  }
  return qc;
}

}  // namespace

const char* quant_method_name(QuantMethod m) {
  switch (m) {
    case QuantMethod::kNone:
      return "none";
    case QuantMethod::kCompressedTensorsFp8:
      return "compressed-tensors fp8";
    case QuantMethod::kFp8Block:
      return "fp8 (128x128 blocks)";
  }
  return "?";
}

const char* rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::kDefault:
      return "default";
    case RopeType::kLinear:
      return "linear";
    case RopeType::kDynamic:
      return "dynamic";
    case RopeType::kLlama3:
      return "llama3";
    case RopeType::kYarn:
      return "yarn";
    case RopeType::kLongrope:
      return "longrope";
  }
  return "?";
}

RopeFrequencies rope_frequencies(const RopeConfig& r, int64_t head_dim,
                                 int64_t max_position_embeddings, int64_t max_model_len) {
  const int64_t half = head_dim / 2;
  RopeFrequencies out;
  std::vector<float>& inv = out.inv_freq;
  inv.resize(size_t(half));
  // transformers: base ** (arange(0, dim, 2).float() / dim), in fp32.
  auto pos_freq = [&](double base, int64_t i) {
    return std::pow(float(base), float(2 * i) / float(head_dim));
  };
  double base = r.theta;
  if (r.type == RopeType::kDynamic) {
    // transformers recomputes the base for the current length once it exceeds
    // max_position_embeddings; here for the longest sequence the server allows.
    const double len = double(std::max(max_model_len, max_position_embeddings));
    base = base * std::pow(r.factor * len / double(max_position_embeddings) - (r.factor - 1.0),
                           double(head_dim) / double(head_dim - 2));
  }
  for (int64_t i = 0; i < half; ++i) inv[size_t(i)] = 1.0f / pos_freq(base, i);

  switch (r.type) {
    case RopeType::kDefault:
    case RopeType::kDynamic:
      break;
    case RopeType::kLinear:
      for (auto& f : inv) f = f / float(r.factor);
      break;
    case RopeType::kLlama3: {
      const float factor = float(r.factor);
      const float lo = float(r.low_freq_factor), hi = float(r.high_freq_factor);
      const float old_len = float(r.original_max_position);
      const float low_wavelen = old_len / lo, high_wavelen = old_len / hi;
      constexpr float kPi = 3.14159265358979323846f;
      for (auto& f : inv) {
        const float wavelen = 2.0f * kPi / f;
        const float scaled = wavelen > low_wavelen ? f / factor : f;
        const float smooth = (old_len / wavelen - lo) / (hi - lo);
        const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
        const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
        f = medium ? smoothed : scaled;
      }
      break;
    }
    case RopeType::kYarn: {
      auto get_mscale = [](double scale, double m) {
        return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
      };
      double att = r.attention_factor;
      if (att < 0) {
        att = r.mscale != 0 && r.mscale_all_dim != 0
                  ? get_mscale(r.factor, r.mscale) / get_mscale(r.factor, r.mscale_all_dim)
                  : get_mscale(r.factor, 1.0);
      }
      out.attention_scaling = float(att);
      const double dim = double(head_dim), omax = double(r.original_max_position);
      auto correction_dim = [&](double rotations) {
        return dim * std::log(omax / (rotations * 2.0 * 3.14159265358979323846)) /
               (2.0 * std::log(r.theta));
      };
      double low = correction_dim(r.beta_fast), high = correction_dim(r.beta_slow);
      if (r.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1);
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        const float pf = pos_freq(r.theta, i);
        const float extrapolation = 1.0f / pf;
        const float interpolation = 1.0f / (float(r.factor) * pf);
        const float ramp =
            std::clamp((float(i) - float(low)) / (float(high) - float(low)), 0.0f, 1.0f);
        const float extra_factor = 1.0f - ramp;
        inv[size_t(i)] = interpolation * (1.0f - extra_factor) + extrapolation * extra_factor;
      }
      break;
    }
    case RopeType::kLongrope: {
      double att = r.attention_factor;
      if (att < 0) {
        att = r.factor <= 1.0
                  ? 1.0
                  : std::sqrt(1.0 + std::log(r.factor) / std::log(double(r.original_max_position)));
      }
      out.attention_scaling = float(att);
      const bool use_long = max_model_len > r.original_max_position;
      const std::vector<double>& ext = use_long ? r.long_factor : r.short_factor;
      for (int64_t i = 0; i < half; ++i)
        inv[size_t(i)] = 1.0f / (float(ext[size_t(i)]) * pos_freq(r.theta, i));
      break;
    }
  }
  return out;
}

ModelConfig parse_model_config(const std::string& text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", src, e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object", src);
  ModelConfig c;
  if (auto it = j.find("architectures");
      it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string()) {
    c.architecture = (*it)[0].get<std::string>();
  } else {
    fail("{}: missing 'architectures' (expected e.g. [\"LlamaForCausalLM\"])", src);
  }
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) c.model_type = *it;
  static const char* kSupported[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                                     "Qwen3ForCausalLM", "Gemma3ForCausalLM",  "Phi3ForCausalLM"};
  bool ok = false;
  for (const char* a : kSupported) ok = ok || c.architecture == a;
  if (!ok) {
    fail(
        "{}: unsupported architecture '{}': expected one of LlamaForCausalLM, "
        "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, "
        "Phi3ForCausalLM",
        src, c.architecture);
  }
  const bool gemma3 = c.architecture == "Gemma3ForCausalLM";
  const bool phi3 = c.architecture == "Phi3ForCausalLM";
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
  // transformers' defaults where the config leaves a field out: Gemma3TextConfig's head_dim 256,
  // max_position_embeddings 131072 and tied embeddings; Phi3Config's rms_norm_eps 1e-5.
  c.head_dim = get_int(j, "head_dim", src, gemma3 ? 256 : c.hidden_size / c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0) {
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", src,
         c.num_heads, c.num_kv_heads);
  }
  if (c.head_dim <= 2 || c.head_dim % 2 != 0)
    fail("{}: head_dim ({}) must be even and > 2 for RoPE", src, c.head_dim);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", src, gemma3 ? 131072 : 4096);
  if (c.max_position_embeddings <= 0) fail("{}: max_position_embeddings must be positive", src);
  c.rms_norm_eps = get_num(j, "rms_norm_eps", src, phi3 ? 1e-5 : 1e-6);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", src, gemma3);
  if (gemma3) {
    // Gemma 3 reads `hidden_activation` (hidden_act is not used); these names are all GELU with
    // the tanh approximation.
    const json act = j.contains("hidden_activation") ? j["hidden_activation"] : json();
    if (!act.is_null() && (!act.is_string() || (act != "gelu_pytorch_tanh" &&
                                                act != "gelu_python_tanh" && act != "gelu_new"))) {
      fail("{}: unsupported hidden_activation {}: expected \"gelu_pytorch_tanh\"", src, act.dump());
    }
  } else if (auto it = j.find("hidden_act"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || *it != "silu")
      fail("{}: unsupported hidden_act {}: expected \"silu\"", src, it->dump());
  }
  if (get_bool(j, "mlp_bias", src, false)) fail("{}: mlp_bias=true is not supported", src);
  reject_unhandled_keys(j, src, gemma3);

  if (gemma3) {
    c.qk_norm = true;
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
    c.norm_weight_plus_one = c.embedding_scaled = c.sandwich_norms = c.gelu_tanh = true;
    const double scalar = get_num(j, "query_pre_attn_scalar", src, 256.0);
    if (!(scalar > 0)) fail("{}: query_pre_attn_scalar must be positive, got {}", src, scalar);
    c.attention_scale = 1.0 / std::sqrt(scalar);
    c.final_logit_softcap = get_num(j, "final_logit_softcapping", src, 0.0);
    if (c.final_logit_softcap < 0)
      fail("{}: final_logit_softcapping must be positive, got {}", src, c.final_logit_softcap);
    // transformers' Gemma3Attention keeps attn_logit_softcapping but never passes it to the
    // attention function (Gemma 3 replaced Gemma 2's soft-capping by q/k norms), so a value here
    // does not change its outputs; neither does it change ours.
    if (is_set(j, "attn_logit_softcapping")) {
      LOG_WARN(
          "{}: attn_logit_softcapping = {} is ignored: Gemma 3 does not soft-cap attention scores "
          "(as transformers' Gemma3ForCausalLM)",
          src, j["attn_logit_softcapping"].dump());
    }
  } else if (phi3) {
    // Phi3Attention and Phi3MLP have no biases whatever the config says.
    c.fused_qkv_gate_up = true;
  } else if (c.architecture == "Qwen2ForCausalLM") {
    c.qkv_bias = true;
  } else if (c.architecture == "Qwen3ForCausalLM") {
    c.qk_norm = true;
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
  } else {
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", src, false);
  }

  // ---- attention windows: which layers slide, and by how much ----
  c.layer_sliding.assign(size_t(c.num_layers), 0);
  std::vector<std::string> types;
  if (auto it = j.find("layer_types"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || int64_t(it->size()) != c.num_layers)
      fail("{}: layer_types must be a list of num_hidden_layers ({}) strings", src, c.num_layers);
    for (const auto& t : *it) {
      if (!t.is_string() || (t != "full_attention" && t != "sliding_attention")) {
        fail(
            "{}: unsupported layer type {} in layer_types: expected \"full_attention\" or "
            "\"sliding_attention\"",
            src, t.dump());
      }
      types.push_back(t.get<std::string>());
    }
  }
  const bool any_sliding_type =
      std::find(types.begin(), types.end(), "sliding_attention") != types.end();
  if (gemma3) {
    // Gemma3TextConfig: without layer_types, every sliding_window_pattern-th layer (default 6) is
    // global and the rest slide; sliding_window defaults to 4096.
    if (types.empty()) {
      const int64_t pattern = get_int(j, "sliding_window_pattern", src, 6);
      if (pattern <= 0) fail("{}: sliding_window_pattern must be positive", src);
      for (int64_t i = 0; i < c.num_layers; ++i)
        types.push_back((i + 1) % pattern != 0 ? "sliding_attention" : "full_attention");
    }
    for (size_t i = 0; i < types.size(); ++i) c.layer_sliding[i] = types[i] == "sliding_attention";
    auto it = j.find("sliding_window");
    c.sliding_window = it == j.end() ? 4096 : get_int(j, "sliding_window", src, 0);
    if (c.sliding_window <= 0 &&
        std::find(types.begin(), types.end(), "sliding_attention") != types.end())
      fail("{}: sliding_window must be a positive integer for the sliding_attention layers", src);
  } else if (phi3) {
    // Phi-3: sliding_window (default none) applies to every layer; layer_types is not read.
    if (any_sliding_type)
      fail("{}: layer_types marks sliding_attention layers, which {} does not have", src,
           c.architecture);
    c.sliding_window = get_int(j, "sliding_window", src, 0);
    if (c.sliding_window > 0) c.layer_sliding.assign(size_t(c.num_layers), 1);
  } else if (c.architecture == "MistralForCausalLM") {
    // transformers: sliding_window defaults to 4096 when absent; null turns it off; it applies
    // to every layer (Mistral ignores layer_types).
    auto it = j.find("sliding_window");
    c.sliding_window = it == j.end() ? 4096 : get_int(j, "sliding_window", src, 0);
    if (c.sliding_window > 0) c.layer_sliding.assign(size_t(c.num_layers), 1);
  } else if (c.model_type.starts_with("qwen") || c.architecture.starts_with("Qwen")) {
    // transformers: the window is used only with use_sliding_window, by the layers at or above
    // max_window_layers (or those layer_types marks).
    if (get_bool(j, "use_sliding_window", src, false)) {
      c.sliding_window = get_int(j, "sliding_window", src, 4096);
      if (c.sliding_window <= 0) fail("{}: sliding_window must be positive", src);
      if (!types.empty()) {
        for (size_t i = 0; i < types.size(); ++i)
          c.layer_sliding[i] = types[i] == "sliding_attention";
      } else {
        const int64_t from = get_int(j, "max_window_layers", src, 28);
        for (int64_t i = from; i < c.num_layers; ++i) c.layer_sliding[size_t(i)] = 1;
      }
    } else if (any_sliding_type) {
      fail("{}: layer_types marks sliding_attention layers but use_sliding_window is false", src);
    }
  } else {
    if (any_sliding_type)
      fail("{}: layer_types marks sliding_attention layers, which {} does not have", src,
           c.architecture);
    if (is_set(j, "sliding_window"))
      fail("{}: sliding_window is set but {} has no sliding-window attention", src, c.architecture);
  }
  if (c.sliding_window < 0) fail("{}: sliding_window must be positive", src);

  // ---- rotary embeddings ----
  const json* rp = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && !it->is_null()) rp = &*it;
  const bool per_layer_type = rp != nullptr && rp->is_object() &&
                              (rp->contains("full_attention") || rp->contains("sliding_attention"));
  if (gemma3) {
    // Gemma 3: one rope per layer type. transformers 5: rope_parameters = {"full_attention":
    // {...}, "sliding_attention": {...}}; older configs: rope_theta (+ rope_scaling) for the
    // global layers and rope_local_base_freq for the sliding ones. Defaults 1e6 and 1e4.
    if (rp != nullptr && !per_layer_type) {
      fail(
          "{}: rope_parameters must hold one entry per layer type (\"full_attention\", "
          "\"sliding_attention\") for {}",
          src, c.architecture);
    }
    if (rp != nullptr) {
      for (const auto& [k, v] : rp->items()) {
        if (k != "full_attention" && k != "sliding_attention")
          fail("{}: rope_parameters.{}: unknown layer type for {}", src, k, c.architecture);
      }
    }
    auto entry = [&](const char* type) -> const json* {
      if (rp == nullptr) return nullptr;
      auto it = rp->find(type);
      return it == rp->end() || it->is_null() ? nullptr : &*it;
    };
    json global_top = json::object();
    if (j.contains("rope_theta")) global_top["rope_theta"] = j["rope_theta"];
    if (j.contains("rope_scaling")) global_top["rope_scaling"] = j["rope_scaling"];
    const json global = merged_rope_dict(global_top, entry("full_attention"), src,
                                         "rope_parameters.full_attention");
    json local = merged_rope_dict(json::object(), entry("sliding_attention"), src,
                                  "rope_parameters.sliding_attention");
    if (is_set(j, "rope_local_base_freq")) {
      const json& f = j["rope_local_base_freq"];
      if (local.contains("rope_theta") && !local["rope_theta"].is_null() &&
          !same_value(local["rope_theta"], f)) {
        fail(
            "{}: rope_parameters.sliding_attention.rope_theta is {} but rope_local_base_freq is "
            "{}: the two places disagree",
            src, local["rope_theta"].dump(), f.dump());
      }
      local["rope_theta"] = f;
    }
    c.rope = parse_rope(global, c, json::object(), 1e6, src, "rope_parameters.full_attention");
    c.rope_local =
        parse_rope(local, c, json::object(), 1e4, src, "rope_parameters.sliding_attention");
    c.has_rope_local = true;
  } else {
    if (per_layer_type)
      fail("{}: rope_parameters per layer type is not supported for {}", src, c.architecture);
    json rope = merged_rope_dict(j, rp, src, rp ? "rope_parameters" : "rope_scaling");
    // Phi3Config: older configs name longrope "su" (or "yarn").
    if (phi3 && rope.contains("rope_type") &&
        (rope["rope_type"] == "su" || rope["rope_type"] == "yarn"))
      rope["rope_type"] = "longrope";
    // Phi3Config's original_max_position_embeddings (default 4096) always replaces the rope
    // dict's.
    json top = j;
    if (phi3 && !is_set(top, "original_max_position_embeddings"))
      top["original_max_position_embeddings"] = 4096;
    c.rope = parse_rope(rope, c, top, 10000.0, src, rp ? "rope_parameters" : "rope_scaling");
  }

  if (is_set(j, "quantization_config")) c.quant = parse_quantization(j["quantization_config"], src);

  // ---- dtype, special tokens ----
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
