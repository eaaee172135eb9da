// Qwen2 / Qwen2.5 (Qwen2ForCausalLM): the Llama decoder with biases on q, k and v (never on o)
// and Qwen's sliding windows (use_sliding_window, max_window_layers).
// Qwen2.5-VL's language side (Qwen2_5_VLForConditionalGeneration, issue 34): the same decoder
// with M-RoPE (rope_scaling.mrope_section: each frequency section turned by the temporal, height
// or width position; the engine's ForwardBatch::mrope_positions) and the Qwen2.5-VL vision tower
// (model/vision/qwen2_5_vl_vision.h) whose merged patches replace the <|image_pad|> embeddings.
// Text-config layouts: the text fields at the top level (released checkpoints) or under
// text_config (transformers >= 4.52); tensors under model. / visual. or model.language_model. /
// model.visual.
#include <fstream>
#include <numeric>
#include <optional>

#include "core/logging.h"
#include "media/image_processor.h"
#include "model/config_parsing.h"
#include "model/loader/model_loader.h"
#include "model/models/llama.h"
#include "model/models/models.h"
#include "model/vision/qwen2_5_vl_vision.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Qwen2Architecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"Qwen2ForCausalLM"}; }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src);
    c.qkv_bias = true;
    parse_qwen_windows(j, src, c);
    parse_single_rope(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<LlamaModel>(c, loader);
  }
};

class Qwen25VlModel final : public LlamaModel {
 public:
  Qwen25VlModel(const ModelConfig& c, ModelLoader& loader) : LlamaModel(c, loader) {
    const SafetensorsIndex* st = loader.checkpoint_if_any();
    const std::string patch = "visual.patch_embed.proj.weight";
    const std::string m = st && st->contains("model." + patch) ? "model." : "";
    if (loader.runtime().device() != Device::kCPU) {  // (its host memory would go unused)
      no_vision_ = "images run on the CPU backend only for now (issue 34)";
      return;
    }
    if (st == nullptr || !st->contains(m + patch)) {
      no_vision_ = st ? "its checkpoint holds no vision tower (" + patch + ")"
                      : "its vision tower is not loaded without a safetensors checkpoint";
      return;
    }
    const std::string src = loader.model_dir() + "/config.json";
    std::ifstream in(src);
    const json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("vision_config"))
      fail("{}: Qwen2_5_VLForConditionalGeneration needs a vision_config object", src);
    const Qwen25VlVisionConfig vc = Qwen25VlVisionConfig::parse(j["vision_config"], src);
    if (vc.out_hidden_size != c.hidden_size)
      fail("{}: vision_config.out_hidden_size {} is not the text model's hidden_size {}", src,
           vc.out_hidden_size, c.hidden_size);
    merge_ = int32_t(vc.spatial_merge_size);
    tower_.emplace(vc, *st, m + "visual.");
  }
  bool takes_images(std::string* why_not) const override {
    if (tower_) return true;
    if (why_not) *why_not = no_vision_;
    return false;
  }
  int32_t image_tokens(const media::PixelValues& pv) const override {
    const auto& g = pv.grid_thw;
    return g[0] * g[1] * g[2] / (merge_ * merge_);
  }
  std::vector<float> embed_image(const media::PixelValues& pv) const override {
    return tower_->forward(pv.data, pv.grid_thw);
  }

 private:
  std::optional<Qwen25VlVisionTower> tower_;
  int32_t merge_ = 2;
  std::string no_vision_;
};

class Qwen25VlArchitecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"Qwen2_5_VLForConditionalGeneration"}; }
  json text_config(const json& j, const std::string& src) const override {
    auto it = j.find("text_config");
    if (it == j.end() || it->is_null()) return j;  // the text fields at the top level
    if (!it->is_object()) fail("{}: text_config must be an object", src);
    json t = *it;
    for (const char* k : {"torch_dtype", "dtype", "bos_token_id", "eos_token_id",
                          "tie_word_embeddings", "rope_scaling"})
      if (j.contains(k) && !t.contains(k)) t[k] = j[k];
    t["architectures"] = j["architectures"];
    return t;
  }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src);
    c.qkv_bias = true;
    parse_qwen_windows(j, src, c);
    // rope_scaling {"type": "mrope" (or "default"), "mrope_section": [t, h, w]}: the rest of the
    // rope is the default one.
    json plain = j;
    std::array<int32_t, 3> section{};
    if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) {
      const json& rs = *it;
      const std::string type = rs.value("type", rs.value("rope_type", std::string("default")));
      if (type != "mrope" && type != "default")
        fail("{}: rope_scaling type '{}' is not supported for {} (expected mrope)", src, type,
             c.architecture);
      if (!rs.contains("mrope_section") || !rs["mrope_section"].is_array() ||
          rs["mrope_section"].size() != 3)
        fail("{}: rope_scaling.mrope_section must be 3 integers", src);
      for (size_t i = 0; i < 3; ++i) section[i] = rs["mrope_section"][i].get<int32_t>();
      plain.erase("rope_scaling");
    }
    parse_single_rope(plain, src, c);
    const int64_t sum = int64_t(section[0]) + section[1] + section[2];
    if (section[0] <= 0 || section[1] < 0 || section[2] < 0 || 2 * sum != c.head_dim)
      fail(
          "{}: rope_scaling.mrope_section {}, {}, {} must be positive and sum to head_dim / 2 "
          "({})",
          src, section[0], section[1], section[2], c.head_dim / 2);
    c.rope.mrope_section = section;
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<Qwen25VlModel>(c, loader);
  }
};

}  // namespace

const Architecture& qwen2_architecture() {
  static const Qwen2Architecture kArch;
  return kArch;
}

const Architecture& qwen2_5_vl_architecture() {
  static const Qwen25VlArchitecture kArch;
  return kArch;
}

}  // namespace inferd
