// GGUF models (gguf_model.h).
#include "model/loader/gguf_model.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>

#include "core/error.h"

namespace inferd {

using json = nlohmann::json;

namespace {

struct ArchInfo {
  const char* gguf;
  const char* hf;
  bool permute_qk;    // llama.cpp's converter permutes q/k rows (llama-style rope)
  bool norms_folded;  // the converter stores norm weights as 1 + w
};

constexpr ArchInfo kArchs[] = {
    {"llama", "LlamaForCausalLM", true, false},  {"qwen2", "Qwen2ForCausalLM", false, false},
    {"qwen3", "Qwen3ForCausalLM", false, false}, {"gemma3", "Gemma3ForCausalLM", false, true},
    {"phi3", "Phi3ForCausalLM", false, false},
};

const ArchInfo& arch_info(const GgufFile& f) {
  const std::string a = f.architecture();
  for (const ArchInfo& i : kArchs)
    if (a == i.gguf) return i;
  std::string list;
  for (const ArchInfo& i : kArchs) list += std::string(list.empty() ? "" : ", ") + i.gguf;
  fail("{}: GGUF general.architecture '{}' is not supported (supported: {})", f.path(), a, list);
}

// A key of the architecture's namespace ("<arch>.<key>").
const GgufValue* arch_key(const GgufFile& f, const std::string& key) {
  return f.find(f.architecture() + "." + key);
}

int64_t arch_int(const GgufFile& f, const std::string& key) {
  const std::string full = f.architecture() + "." + key;
  const GgufValue& v = f.get(full);
  if (v.is_array()) {
    // Per-layer arrays (OpenELM-style); the same value everywhere reads as that value.
    if (v.ints.empty()) fail("{}: {} is an empty array", f.path(), full);
    for (int64_t x : v.ints)
      if (x != v.ints[0])
        fail("{}: {} differs between layers, which inferd does not support", f.path(), full);
    return v.ints[0];
  }
  return v.as_int(full);
}

int64_t arch_int_or(const GgufFile& f, const std::string& key, int64_t dflt) {
  return arch_key(f, key) ? arch_int(f, key) : dflt;
}

double arch_float_or(const GgufFile& f, const std::string& key, double dflt) {
  const GgufValue* v = arch_key(f, key);
  return v ? v->as_float(f.architecture() + "." + key) : dflt;
}

// rope.scaling.* (and the older rope.scale_linear) as a Hugging Face rope_scaling dict, or null.
json rope_scaling_json(const GgufFile& f) {
  const std::string arch = f.architecture();
  std::string type = "none";
  if (const GgufValue* t = arch_key(f, "rope.scaling.type"))
    type = t->as_string(arch + ".rope.scaling.type");
  double factor = arch_float_or(f, "rope.scaling.factor", 0.0);
  if (type == "none" && arch_key(f, "rope.scale_linear")) {
    type = "linear";
    factor = arch_float_or(f, "rope.scale_linear", 1.0);
  }
  if (type == "none") return json();
  if (type == "linear") return json{{"rope_type", "linear"}, {"factor", factor}};
  if (type == "yarn") {
    json r{{"rope_type", "yarn"}, {"factor", factor}};
    if (arch_key(f, "rope.scaling.original_context_length"))
      r["original_max_position_embeddings"] = arch_int(f, "rope.scaling.original_context_length");
    if (arch_key(f, "rope.scaling.yarn_log_multiplier"))
      fail("{}: {}.rope.scaling.yarn_log_multiplier is not supported", f.path(), arch);
    return r;
  }
  if (type == "longrope") return json{{"rope_type", "longrope"}};  // factors from tensors
  fail("{}: {}.rope.scaling.type '{}' is not supported (none, linear, yarn, longrope)", f.path(),
       arch, type);
}

int64_t token_id_or(const GgufFile& f, const char* key) {
  const GgufValue* v = f.find(key);
  return v ? v->as_int(key) : -1;
}

}  // namespace

bool is_gguf_model_path(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec) && GgufFile::is_gguf(path);
}

json gguf_config_json(const GgufFile& f) {
  const ArchInfo& ai = arch_info(f);
  const std::string arch = ai.gguf;
  json j;
  j["architectures"] = json::array({ai.hf});
  j["model_type"] = arch;
  const int64_t hidden = arch_int(f, "embedding_length");
  const int64_t heads = arch_int(f, "attention.head_count");
  j["hidden_size"] = hidden;
  j["intermediate_size"] = arch_int(f, "feed_forward_length");
  j["num_hidden_layers"] = arch_int(f, "block_count");
  j["num_attention_heads"] = heads;
  j["num_key_value_heads"] = arch_int_or(f, "attention.head_count_kv", heads);
  const int64_t head_dim = arch_int_or(f, "attention.key_length", hidden / heads);
  if (arch_int_or(f, "attention.value_length", head_dim) != head_dim)
    fail("{}: {}.attention.value_length differs from key_length, which inferd does not support",
         f.path(), arch);
  if (arch_int_or(f, "rope.dimension_count", head_dim) != head_dim)
    fail(
        "{}: {}.rope.dimension_count {} is a partial rotary embedding (head_dim {}), which "
        "inferd does not support for GGUF files",
        f.path(), arch, arch_int(f, "rope.dimension_count"), head_dim);
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = arch_int_or(f, "context_length", 4096);
  j["rms_norm_eps"] = arch_float_or(f, "attention.layer_norm_rms_epsilon", 1e-6);
  j["rope_theta"] = arch_float_or(f, "rope.freq_base", 10000.0);
  if (json rs = rope_scaling_json(f); !rs.is_null()) j["rope_scaling"] = rs;
  const GgufTensorInfo& embd = f.tensor("token_embd.weight");
  j["vocab_size"] = embd.shape.at(0);
  j["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  if (int64_t bos = token_id_or(f, "tokenizer.ggml.bos_token_id"); bos >= 0)
    j["bos_token_id"] = bos;
  if (int64_t eos = token_id_or(f, "tokenizer.ggml.eos_token_id"); eos >= 0)
    j["eos_token_id"] = eos;
  if (arch_key(f, "attention.scale"))
    fail("{}: {}.attention.scale is not supported", f.path(), arch);
  if (arch == "llama") {
    j["attention_bias"] = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    if (f.find_tensor("blk.0.ffn_gate_inp.weight"))
      fail("{}: a llama-architecture mixture of experts (Mixtral) is not supported yet", f.path());
  } else if (arch == "gemma3") {
    j["sliding_window"] = arch_int_or(f, "attention.sliding_window", 4096);
    // llama.cpp fixes what the file does not say: every sixth layer global, local rope base 1e4,
    // queries scaled by 1/sqrt(head_dim) (1/sqrt(hidden/heads) for the 27B's 62 layers).
    j["sliding_window_pattern"] = 6;
    j["rope_local_base_freq"] = 10000.0;
    j["query_pre_attn_scalar"] =
        j["num_hidden_layers"] == 62 ? double(hidden / heads) : double(head_dim);
    j["hidden_activation"] = "gelu_pytorch_tanh";
    if (const double cap = arch_float_or(f, "final_logit_softcapping", 0.0); cap > 0)
      j["final_logit_softcapping"] = cap;
  } else if (arch == "phi3") {
    // Phi-3 files from before llama.cpp wrote the key: its defaults by shape.
    int64_t window = arch_int_or(f, "attention.sliding_window", 0);
    const int64_t layers = j["num_hidden_layers"], ctx = j["max_position_embeddings"];
    if (!arch_key(f, "attention.sliding_window")) {
      if ((layers == 32 || layers == 40) && ctx == 4096) window = 2047;
      if (layers == 32 && ctx == 131072) window = 262144;
      if (layers == 40 && ctx == 131072) window = 131072;
    }
    if (window > 0) j["sliding_window"] = window;
    if (f.find_tensor("rope_factors_long.weight")) {
      json r{{"rope_type", "longrope"}};
      auto factors = [&](const char* name) {
        const GgufTensorInfo& t = f.tensor(name);
        if (t.type != ggml::Type::kF32) fail("{}: {} must be F32", f.path(), name);
        std::vector<double> v(size_t(t.nbytes / 4));
        for (size_t i = 0; i < v.size(); ++i) {
          float x;
          std::memcpy(&x, t.data + 4 * i, 4);
          v[i] = x;
        }
        return v;
      };
      r["long_factor"] = factors("rope_factors_long.weight");
      r["short_factor"] = factors("rope_factors_short.weight");
      if (arch_key(f, "rope.scaling.attn_factor"))
        r["attention_factor"] = arch_float_or(f, "rope.scaling.attn_factor", 1.0);
      j["rope_scaling"] = r;
      j["original_max_position_embeddings"] =
          arch_int_or(f, "rope.scaling.original_context_length", 4096);
    } else if (j.contains("rope_scaling")) {
      fail("{}: phi3 rope scaling without rope_factors_long/short tensors", f.path());
    }
  }
  return j;
}

ModelConfig gguf_model_config(const GgufFile& f) {
  const json j = gguf_config_json(f);
  ModelConfig c = parse_model_config(j.dump(), f.path() + " (GGUF metadata)");
  c.quant.method = QuantMethod::kGguf;
  // Llama 3.1 files carry llama3 rope as per-frequency divisors (rope_freqs.weight).
  if (const GgufTensorInfo* t = f.find_tensor("rope_freqs.weight")) {
    if (t->type != ggml::Type::kF32 || t->nbytes / 4 != c.head_dim / 2)
      fail("{}: rope_freqs.weight must be F32 [{}]", f.path(), c.head_dim / 2);
    if (c.rope.type != RopeType::kDefault)
      fail("{}: rope_freqs.weight together with rope scaling is not supported", f.path());
    c.rope.freq_factors.resize(size_t(c.head_dim / 2));
    for (size_t i = 0; i < c.rope.freq_factors.size(); ++i) {
      float x;
      std::memcpy(&x, t->data + 4 * i, 4);
      c.rope.freq_factors[i] = x;
    }
  }
  return c;
}

std::string gguf_summary(const GgufFile& f) {
  std::map<std::string, std::pair<int64_t, int64_t>> by_type;  // count, bytes
  int64_t total = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    auto& e = by_type[std::string(ggml::type_name(uint32_t(t.type)))];
    ++e.first;
    e.second += t.nbytes;
    total += t.nbytes;
  }
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> v(by_type.begin(),
                                                                     by_type.end());
  std::sort(v.begin(), v.end(),
            [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
  std::string types;
  for (const auto& [name, ce] : v)
    types += fmt::format("{}{} {} ({:.2f} GB)", types.empty() ? "" : ", ", name, ce.first,
                         double(ce.second) / 1e9);
  const GgufValue* name = f.find("general.name");
  return fmt::format("GGUF v{} {}{}: {} tensors, {:.2f} GB in {} file{}: {}", f.version(), f.path(),
                     name && !name->is_array() && name->type == GgufValueType::kString
                         ? " (" + name->as_string("general.name") + ")"
                         : "",
                     f.tensors().size(), double(total) / 1e9, f.paths().size(),
                     f.paths().size() == 1 ? "" : "s", types);
}

ModelConfig load_gguf_model_config(const std::string& path) {
  return gguf_model_config(GgufFile::open(path));
}

// ---- tensors ---------------------------------------------------------------------------------

GgufWeights::GgufWeights(std::shared_ptr<const GgufFile> file, const ModelConfig& config)
    : file_(std::move(file)),
      arch_(file_->architecture()),
      num_heads_(config.num_heads),
      num_kv_heads_(config.num_kv_heads) {
  const ArchInfo& ai = arch_info(*file_);
  permute_qk_ = ai.permute_qk;
  norms_folded_ = ai.norms_folded;
}

std::string GgufWeights::gguf_name(const std::string& hf) const {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  static const std::regex kLayer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
  std::smatch m;
  if (!std::regex_match(hf, m, kLayer)) return "";
  const std::string blk = "blk." + m[1].str() + ".", mod = m[2].str(), kind = "." + m[3].str();
  const bool gemma = arch_ == "gemma3";
  static const std::pair<const char*, const char*> kCommon[] = {
      {"input_layernorm", "attn_norm"},
      {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"},
      {"self_attn.qkv_proj", "attn_qkv"},
      {"self_attn.q_norm", "attn_q_norm"},
      {"self_attn.k_norm", "attn_k_norm"},
      {"mlp.gate_proj", "ffn_gate"},
      {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"},
      {"mlp.gate_up_proj", "ffn_up"},  // Phi-3: the fused gate/up is written as ffn_up
      {"pre_feedforward_layernorm", "ffn_norm"},
      {"post_feedforward_layernorm", "post_ffw_norm"},
  };
  if (mod == "post_attention_layernorm")
    return blk + (gemma ? "post_attention_norm" : "ffn_norm") + kind;
  for (const auto& [h, g] : kCommon)
    if (mod == h) return blk + g + kind;
  return "";
}

const GgufTensorInfo* GgufWeights::find(const std::string& hf_name) const {
  const std::string g = gguf_name(hf_name);
  return g.empty() ? nullptr : file_->find_tensor(g);
}

const GgufTensorInfo& GgufWeights::get(const std::string& hf_name) const {
  const std::string g = gguf_name(hf_name);
  if (g.empty())
    fail("{}: the {} architecture of GGUF files has no tensor for '{}'", file_->path(), arch_,
         hf_name);
  const GgufTensorInfo* t = file_->find_tensor(g);
  if (!t) fail("{}: tensor '{}' (for '{}') is missing", file_->path(), g, hf_name);
  return *t;
}

bool GgufWeights::permuted(const std::string& hf_name) const {
  if (!permute_qk_) return false;
  const auto ends = [&](const char* s) {
    const size_t n = std::strlen(s);
    return hf_name.size() >= n && hf_name.compare(hf_name.size() - n, n, s) == 0;
  };
  return ends("self_attn.q_proj.weight") || ends("self_attn.q_proj.bias") ||
         ends("self_attn.k_proj.weight") || ends("self_attn.k_proj.bias");
}

Tensor GgufWeights::raw(const std::string& hf_name, std::span<const int64_t> shape) const {
  const GgufTensorInfo& t = get(hf_name);
  if (!ggml::traits(t.type).supported)
    fail(
        "{}: tensor '{}' has type {}, which inferd does not support (F32, F16, BF16, Q4_0, Q4_1, "
        "Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL)",
        file_->path(), t.name, ggml::type_name(uint32_t(t.type)));
  const std::vector<int64_t> want(shape.begin(), shape.end());
  if (t.shape != want) {
    std::string got, exp;
    for (int64_t d : t.shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
    for (int64_t d : want) exp += (exp.empty() ? "" : ", ") + std::to_string(d);
    fail("{}: tensor '{}' has shape [{}], expected [{}] for '{}'", file_->path(),
         gguf_name(hf_name), got, exp, hf_name);
  }
  const int64_t rows = want.size() == 1 ? 1 : want[0];
  const int64_t cols = want.back();
  DType dt = DType::kU8;
  if (t.type == ggml::Type::kF32) dt = DType::kF32;
  if (t.type == ggml::Type::kF16) dt = DType::kF16;
  if (t.type == ggml::Type::kBF16) dt = DType::kBF16;
  const int64_t rb = ggml::row_bytes(t.type, cols);
  std::vector<int64_t> sh = dt == DType::kU8 ? std::vector<int64_t>{rows, rb} : want;
  Tensor view(const_cast<char*>(t.data), dt, sh, Device::kCPU,
              std::shared_ptr<void>(file_->file_of(t)));
  if (!permuted(hf_name)) return view;
  // Undo the converter's q/k permutation: within each head of hd rows, HF row j*hd/2 + i is
  // GGUF row 2i + j.
  const bool is_q = hf_name.find("q_proj") != std::string::npos;
  const int64_t heads = is_q ? num_heads_ : num_kv_heads_;
  const int64_t n = want.size() == 1 ? want[0] : rows;
  if (heads <= 0 || n % heads != 0 || (n / heads) % 2 != 0)
    fail("{}: cannot un-permute '{}' ({} rows, {} heads)", file_->path(), gguf_name(hf_name), n,
         heads);
  const int64_t hd = n / heads, half = hd / 2;
  const int64_t unit = want.size() == 1 ? int64_t(dtype_size(dt))
                                        : (dt == DType::kU8 ? rb : cols * int64_t(dtype_size(dt)));
  Tensor out = Tensor::empty_host(dt, sh);
  auto* dst = static_cast<char*>(out.data());
  for (int64_t r = 0; r < n; ++r) {
    const int64_t h = r / hd, w = r % hd, j = w / half, i = w % half;
    const int64_t src_row = h * hd + 2 * i + j;
    std::memcpy(dst + r * unit, t.data + src_row * unit, size_t(unit));
  }
  return out;
}

Tensor GgufWeights::get_float(const std::string& hf_name, std::span<const int64_t> shape) const {
  Tensor r = raw(hf_name, shape);
  if (r.dtype() != DType::kU8) return r;
  const GgufTensorInfo& t = get(hf_name);
  const std::vector<int64_t> want(shape.begin(), shape.end());
  Tensor out = Tensor::empty_host(DType::kF32, want);
  const int64_t rows = want.size() == 1 ? 1 : want[0], cols = want.back();
  const int64_t rb = ggml::row_bytes(t.type, cols);
  for (int64_t i = 0; i < rows; ++i)
    ggml::dequantize_row(t.type, static_cast<const char*>(r.data()) + i * rb,
                         out.data_as<float>() + i * cols, cols);
  return out;
}

}  // namespace inferd
