// PEFT LoRA adapters (peft_adapter.h). Module matching follows peft's LoraModel: a list of
// target_modules matches a module whose name equals an entry or ends with "." + the entry; a string
// is a regular expression that must match the whole name ("all-linear": every linear but lm_head);
// a rank_pattern / alpha_pattern key matches a name equal to it, or one that the expression
// `(.*\.)?(key)` matches as a whole.
#include "model/lora/peft_adapter.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"
#include "model/loader/safetensors.h"

namespace inferd {

using json = nlohmann::json;

namespace {

constexpr const char* kNames[kNumLoraModules] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("LoRA adapter: cannot read {}", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_array() || v.is_object() || v.is_string()) return !v.empty();
  if (v.is_number()) return v.get<double>() != 0;
  return true;
}

// Keys of LoraConfig that change what the adapter computes and that inferd does not implement:
// set to anything but their default, they stop the load.
void reject_unsupported(const json& j, const std::string& src) {
  struct Rule {
    const char* key;
    const char* what;
  };
  static const Rule kRules[] = {
      {"use_dora", "DoRA (use_dora) is not supported"},
      {"modules_to_save", "modules_to_save (fully trained modules besides LoRA) is not supported"},
      {"fan_in_fan_out", "fan_in_fan_out (Conv1D-style weights) is not supported"},
      {"layers_to_transform", "layers_to_transform is not supported: adapt every layer"},
      {"lora_bias", "lora_bias is not supported"},
      {"target_parameters", "target_parameters (LoRA on parameters) is not supported"},
      {"exclude_modules", "exclude_modules is not supported"},
      {"layer_replication", "layer_replication is not supported"},
      {"trainable_token_indices",
       "trainable_token_indices (trained embedding rows) is not "
       "supported"},
      {"alora_invocation_tokens", "activated LoRA (alora_invocation_tokens) is not supported"},
      {"use_qalora", "QA-LoRA (use_qalora) is not supported"},
      {"arrow_config", "arrow_config is not supported"},
  };
  for (const Rule& r : kRules) {
    if (j.contains(r.key) && truthy(j[r.key])) fail("{}: {}", src, r.what);
  }
  if (j.contains("bias") && !(j["bias"].is_string() && j["bias"] == "none"))
    fail("{}: bias {} is not supported: expected \"none\"", src, j["bias"].dump());
  if (j.contains("peft_type") && !(j["peft_type"].is_string() && j["peft_type"] == "LORA"))
    fail("{}: peft_type {} is not a LoRA adapter: expected \"LORA\"", src, j["peft_type"].dump());
}

bool is_unsupported_target(const std::string& t) {
  return t.find("embed_tokens") != std::string::npos || t.find("lm_head") != std::string::npos ||
         t == "embed" || t.find("wte") != std::string::npos;
}

template <typename T>
std::map<std::string, T> read_pattern(const json& j, const char* key, const std::string& src) {
  std::map<std::string, T> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  if (!j[key].is_object()) fail("{}: {} must be an object", src, key);
  for (const auto& [k, v] : j[key].items()) {
    if (!v.is_number() || v.template get<double>() <= 0)
      fail("{}: {}[\"{}\"] must be a positive number, got {}", src, key, k, v.dump());
    if constexpr (std::is_same_v<T, int32_t>) {
      if (!v.is_number_integer()) fail("{}: {}[\"{}\"] must be an integer", src, key, k);
    }
    out[k] = v.template get<T>();
  }
  return out;
}

bool pattern_matches(const std::string& key, const std::string& name) {
  if (key == name) return true;
  try {
    return std::regex_match(name, std::regex("(.*\\.)?(" + key + ")"));
  } catch (const std::regex_error&) {
    return false;
  }
}

template <typename T>
const T* pattern_value(const std::map<std::string, T>& pat, const std::string& name) {
  for (const auto& [k, v] : pat)
    if (k == name) return &v;
  for (const auto& [k, v] : pat)
    if (pattern_matches(k, name)) return &v;
  return nullptr;
}

bool targeted(const PeftLoraConfig& c, const std::string& name) {
  if (c.all_linear) return true;
  if (!c.target_regex.empty()) return std::regex_match(name, std::regex(c.target_regex));
  for (const std::string& t : c.target_modules) {
    if (name == t || (name.size() > t.size() && name.ends_with("." + t))) return true;
  }
  return false;
}

// "model.layers.<i>.<self_attn|mlp>.<x_proj>" -> (i, module); false for anything else.
bool parse_module_name(const std::string& name, int64_t* layer, LoraModule* m) {
  static const std::regex re(R"(model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+))");
  std::smatch sm;
  if (!std::regex_match(name, sm, re)) return false;
  *layer = std::stoll(sm[1].str());
  const std::string part = sm[2].str(), proj = sm[3].str();
  for (int i = 0; i < kNumLoraModules; ++i) {
    if (proj == kNames[i]) {
      const bool attn = i <= int(LoraModule::kO);
      if (attn != (part == "self_attn")) return false;
      *m = LoraModule(i);
      return true;
    }
  }
  return false;
}

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(size_t(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (t.dtype()) {
      case DType::kF32:
        out[i] = t.data_as<float>()[i];
        break;
      case DType::kBF16:
        out[i] = bf16_to_f32(t.data_as<uint16_t>()[i]);
        break;
      default:
        out[i] = f16_to_f32(t.data_as<uint16_t>()[i]);
        break;
    }
  }
  return out;
}

}  // namespace

const char* lora_module_name(LoraModule m) {
  return kNames[int(m)];
}

std::pair<int64_t, int64_t> lora_module_shape(const ModelConfig& c, LoraModule m) {
  switch (m) {
    case LoraModule::kQ:
      return {c.q_size(), c.hidden_size};
    case LoraModule::kK:
    case LoraModule::kV:
      return {c.kv_size(), c.hidden_size};
    case LoraModule::kO:
      return {c.hidden_size, c.q_size()};
    case LoraModule::kGate:
    case LoraModule::kUp:
      return {c.intermediate_size, c.hidden_size};
    case LoraModule::kDown:
      return {c.hidden_size, c.intermediate_size};
  }
  return {0, 0};
}

int64_t LoraAdapter::host_bytes() const {
  int64_t n = 0;
  for (const auto& l : layers)
    for (const auto& m : l) n += int64_t(m.a.size() + m.b.size()) * 4;
  return n;
}

PeftLoraConfig parse_peft_lora_config(const std::string& text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", src, e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object", src);
  reject_unsupported(j, src);
  PeftLoraConfig c;
  if (j.contains("r")) {
    if (!j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0)
      fail("{}: r must be a positive integer, got {}", src, j["r"].dump());
    c.r = j["r"].get<int32_t>();
  }
  c.lora_alpha = 8;  // LoraConfig's defaults: r 8, lora_alpha 8
  if (j.contains("lora_alpha")) {
    if (!j["lora_alpha"].is_number() || j["lora_alpha"].get<double>() <= 0)
      fail("{}: lora_alpha must be a positive number, got {}", src, j["lora_alpha"].dump());
    c.lora_alpha = j["lora_alpha"].get<double>();
  }
  if (j.contains("use_rslora") && !j["use_rslora"].is_null()) {
    if (!j["use_rslora"].is_boolean()) fail("{}: use_rslora must be true or false", src);
    c.use_rslora = j["use_rslora"].get<bool>();
  }
  const json t = j.value("target_modules", json());
  if (t.is_string()) {
    const std::string s = t.get<std::string>();
    if (s == "all-linear") {
      c.all_linear = true;
    } else {
      if (is_unsupported_target(s))
        fail("{}: target_modules \"{}\" targets embeddings or lm_head: not supported", src, s);
      try {
        (void)std::regex(s);
      } catch (const std::regex_error&) {
        fail("{}: target_modules \"{}\" is not a valid regular expression", src, s);
      }
      c.target_regex = s;
    }
  } else if (t.is_array()) {
    for (const json& e : t) {
      if (!e.is_string()) fail("{}: target_modules entries must be strings", src);
      const std::string s = e.get<std::string>();
      if (is_unsupported_target(s))
        fail("{}: target_modules names \"{}\": LoRA on embeddings or lm_head is not supported", src,
             s);
      c.target_modules.push_back(s);
    }
  } else {
    fail("{}: target_modules must be a list of module names or a string, got {}", src, t.dump());
  }
  c.rank_pattern = read_pattern<int32_t>(j, "rank_pattern", src);
  c.alpha_pattern = read_pattern<double>(j, "alpha_pattern", src);
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    c.base_model_name_or_path = j["base_model_name_or_path"].get<std::string>();
  return c;
}

namespace {

// Rank and scale of module `name` as the config gives them.
std::pair<int32_t, float> rank_and_scale(const PeftLoraConfig& c, const std::string& name) {
  const int32_t* r = pattern_value(c.rank_pattern, name);
  const double* a = pattern_value(c.alpha_pattern, name);
  const int32_t rank = r ? *r : c.r;
  const double alpha = a ? *a : c.lora_alpha;
  const double scale = c.use_rslora ? alpha / std::sqrt(double(rank)) : alpha / rank;
  return {rank, float(scale)};
}

}  // namespace

LoraAdapter random_lora_adapter(const ModelConfig& cfg, int32_t rank, uint64_t seed) {
  LoraAdapter ad;
  ad.path = "<random rank " + std::to_string(rank) + ">";
  ad.config.r = rank;
  ad.config.lora_alpha = rank;
  ad.config.all_linear = true;
  ad.max_rank = rank;
  ad.layers.resize(size_t(cfg.num_layers));
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  auto uniform = [&x] {  // xorshift64*: in [-1, 1)
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return float(double((x * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-52 - 1.0);
  };
  for (auto& layer : ad.layers) {
    for (int i = 0; i < kNumLoraModules; ++i) {
      const auto [out_f, in_f] = lora_module_shape(cfg, LoraModule(i));
      LoraModuleWeights& w = layer[size_t(i)];
      w.rank = rank;
      w.scale = 1.0f;
      w.a.resize(size_t(rank * in_f));
      w.b.resize(size_t(out_f * rank));
      const float sa = 1.7f / std::sqrt(float(in_f)), sb = 0.02f;
      for (float& v : w.a) v = uniform() * sa;
      for (float& v : w.b) v = uniform() * sb;
    }
  }
  return ad;
}

LoraAdapter load_peft_adapter(const std::string& dir, const ModelConfig& cfg,
                              int32_t max_lora_rank) {
  namespace fs = std::filesystem;
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string st_path = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::is_directory(dir)) fail("LoRA adapter {}: not a directory", dir);
  if (!fs::exists(cfg_path)) fail("LoRA adapter {}: no adapter_config.json", dir);
  if (!fs::exists(st_path)) {
    if (fs::exists(fs::path(dir) / "adapter_model.bin"))
      fail("LoRA adapter {}: adapter_model.bin (pickle) is not read: save it as safetensors", dir);
    fail("LoRA adapter {}: no adapter_model.safetensors", dir);
  }
  LoraAdapter ad;
  ad.path = dir;
  ad.config = parse_peft_lora_config(read_text(cfg_path), cfg_path);
  ad.layers.resize(size_t(cfg.num_layers));
  const SafetensorsIndex st = SafetensorsIndex::open_file(st_path);
  static const std::string kPrefix = "base_model.model.";
  for (const auto& [tname, info] : st.tensors()) {
    const bool is_a = tname.ends_with(".lora_A.weight"), is_b = tname.ends_with(".lora_B.weight");
    if (tname.find("lora_magnitude_vector") != std::string::npos)
      fail("{}: tensor {}: DoRA is not supported", st_path, tname);
    if (tname.find("lora_embedding") != std::string::npos || is_unsupported_target(tname))
      fail("{}: tensor {}: LoRA on embeddings or lm_head is not supported", st_path, tname);
    if (!(is_a || is_b) || !tname.starts_with(kPrefix))
      fail(
          "{}: unexpected tensor {}: expected base_model.model.<module>.lora_A.weight / "
          ".lora_B.weight",
          st_path, tname);
    const std::string module = tname.substr(kPrefix.size(), tname.size() - kPrefix.size() - 14);
    int64_t layer = 0;
    LoraModule m{};
    if (!parse_module_name(module, &layer, &m))
      fail(
          "{}: tensor {}: module {} is not supported: expected model.layers.<i>.self_attn."
          "{{q,k,v,o}}_proj or model.layers.<i>.mlp.{{gate,up,down}}_proj",
          st_path, tname, module);
    if (layer >= cfg.num_layers)
      fail("{}: tensor {}: layer {} but the base model has {} layers", st_path, tname, layer,
           cfg.num_layers);
    if (!targeted(ad.config, module))
      fail("{}: tensor {}: module {} is not in adapter_config.json's target_modules", st_path,
           tname, module);
    const auto [rank, scale] = rank_and_scale(ad.config, module);
    if (max_lora_rank > 0 && rank > max_lora_rank)
      fail("LoRA adapter {}: module {} has rank {}, more than --max-lora-rank {}", dir, module,
           rank, max_lora_rank);
    const auto [out_f, in_f] = lora_module_shape(cfg, m);
    const std::vector<int64_t> want =
        is_a ? std::vector<int64_t>{rank, in_f} : std::vector<int64_t>{out_f, rank};
    if (info.shape != want)
      fail(
          "{}: tensor {} has shape [{}], expected [{}] (rank {} from adapter_config.json; the "
          "base model's {} is [{}, {}]): an adapter of another base model?",
          st_path, tname, fmt::join(info.shape, ", "), fmt::join(want, ", "), rank, module, out_f,
          in_f);
    LoraModuleWeights& w = ad.layers[size_t(layer)][size_t(m)];
    w.rank = rank;
    w.scale = scale;
    (is_a ? w.a : w.b) = to_f32(st.get_float(tname));
    ad.max_rank = std::max(ad.max_rank, rank);
  }
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    for (int i = 0; i < kNumLoraModules; ++i) {
      const LoraModuleWeights& w = ad.layers[size_t(l)][size_t(i)];
      if (w.rank > 0 && (w.a.empty() || w.b.empty()))
        fail("{}: model.layers.{}.*.{} has lora_{} but no lora_{}", st_path, l, kNames[i],
             w.a.empty() ? "B" : "A", w.a.empty() ? "A" : "B");
    }
  }
  if (ad.max_rank == 0) fail("{}: no LoRA weights", st_path);
  return ad;
}

}  // namespace inferd
