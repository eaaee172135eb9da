// Gemma 3 text models (Gemma3ForCausalLM): sandwich norms (the attention and MLP outputs pass
// through their own norms before the residual add, the MLP input through pre_feedforward), norms
// that scale by (1 + w), embeddings scaled by sqrt(hidden_size) in the weights' dtype, GELU (tanh)
// gating, per-head q/k norms, interleaved sliding-window and global layers with a rope each, the
// softmax scale from query_pre_attn_scalar, and final logit soft-capping.
// Gemma3ForConditionalGeneration (issue 34) adds the SigLIP vision tower and the multimodal
// projector (model/vision/siglip.h): an image's mm_tokens_per_image soft tokens replace the
// embeddings of its <image_soft_token>s (unscaled: the sqrt(hidden) scaling is the text tokens'),
// and in prefill the soft tokens of one image attend to each other (transformers' token_type_ids
// mask, on sliding and global layers alike).
#include <fmt/ranges.h>

#include <cmath>
#include <fstream>
#include <optional>

#include "core/logging.h"
#include "media/image_processor.h"
#include "model/config_parsing.h"
#include "model/layers/attention.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"
#include "model/loader/model_loader.h"
#include "model/models/decoder_base.h"
#include "model/models/models.h"
#include "model/vision/siglip.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Gemma3Model final : public DecoderBase {
 public:
  Gemma3Model(const ModelConfig& c, ModelLoader& loader) : DecoderBase(c, loader) {
    layers_.resize(size_t(c.num_layers));
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = layer_prefix(i);
      Layer& L = layers_[size_t(i)];
      L.input_norm = norm(loader, p + "input_layernorm.weight");
      L.post_norm = norm(loader, p + "post_attention_layernorm.weight");
      L.pre_ff_norm = norm(loader, p + "pre_feedforward_layernorm.weight");
      L.post_ff_norm = norm(loader, p + "post_feedforward_layernorm.weight");
      L.attn = std::make_unique<Attention>(attention_spec(i), loader);
      L.mlp = std::make_unique<GatedMlp>(p + "mlp.", c.hidden_size, c.intermediate_size,
                                         Activation::kGeluTanh, false, loader);
    }
    if (c.architecture == "Gemma3ForConditionalGeneration") load_vision(loader);
  }

  bool takes_images(std::string* why_not) const override {
    if (tower_) return true;
    if (why_not) *why_not = no_vision_;
    return false;
  }
  int32_t image_tokens(const media::PixelValues& pv) const override {
    (void)pv;  // every image is one image_size x image_size crop (no pan-and-scan)
    return int32_t(projector_->tokens());
  }
  std::vector<float> embed_image(const media::PixelValues& pv) const override {
    const int64_t s = tower_->config().image_size;
    if (pv.shape != std::vector<int64_t>{3, s, s})
      fail("Gemma 3 image: pixel values of shape [{}] where the vision tower takes [3, {}, {}]",
           fmt::join(pv.shape, ", "), s, s);
    return projector_->forward(tower_->forward(pv.data));
  }
  bool image_tokens_attend_each_other() const override { return true; }

  void forward(const ForwardContext& ctx, Tensor h) override {
    KernelOps& ops = ctx.ops;
    const DeviceBatch& b = ctx.batch;
    Tensor x = ctx.buffer(kX), residual = ctx.buffer(kResidual), qkv = ctx.buffer(kQkv);
    Tensor attn = ctx.buffer(kAttn), gate_up = ctx.buffer(kGateUp), act = ctx.buffer(kAct);
    embed_.forward(ops, b, residual);
    write_input_rows(ctx, residual);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& L = layers_[i];
      if (i == 0) {
        ops.rms_norm(residual, L.input_norm.weight, L.input_norm.eps, h);
      } else {
        ops.add_rms_norm(residual, x, L.input_norm.weight, L.input_norm.eps, h);
      }
      L.attn->forward(ops, b, h, qkv, attn, ctx.kv_cache[i], x);
      // The attention output is normed before the residual add, the MLP input by
      // pre_feedforward_layernorm, and the MLP output by post_feedforward_layernorm.
      ops.rms_norm(x, L.post_norm.weight, L.post_norm.eps, h);
      ops.add_rms_norm(residual, h, L.pre_ff_norm.weight, L.pre_ff_norm.eps, x);
      L.mlp->forward(ops, x, gate_up, act, h);
      ops.rms_norm(h, L.post_ff_norm.weight, L.post_ff_norm.eps, x);
    }
    ops.add_rms_norm(residual, x, final_norm_.weight, final_norm_.eps, h);
  }

 private:
  struct Layer {
    RmsNorm input_norm, post_norm, pre_ff_norm, post_ff_norm;
    std::unique_ptr<Attention> attn;
    std::unique_ptr<GatedMlp> mlp;
  };
  RmsNorm norm(ModelLoader& loader, const std::string& name) const {
    return RmsNorm(loader, name, cfg_.hidden_size, cfg_.rms_norm_eps, /*plus_one=*/true);
  }

  // The vision tower and projector of a Gemma3ForConditionalGeneration checkpoint (config.json's
  // vision_config and mm_tokens_per_image; tensors under "vision_tower.vision_model." and
  // "multi_modal_projector.", or the same under "model.").
  void load_vision(ModelLoader& loader) {
    const SafetensorsIndex* st = loader.checkpoint_if_any();
    if (loader.runtime().device() != Device::kCPU) {  // (its host memory would go unused)
      no_vision_ = "images run on the CPU backend only for now (issue 34)";
      return;
    }
    if (st == nullptr) {
      no_vision_ = loader.dummy() ? "its vision tower is not loaded under --load-format dummy"
                                  : "its vision tower is read from safetensors checkpoints only";
      return;
    }
    const std::string patch = "vision_tower.vision_model.embeddings.patch_embedding.weight";
    const std::string m = st->contains("model." + patch) ? "model." : "";
    if (!st->contains(m + patch)) {
      no_vision_ = "its checkpoint holds no vision tower (" + patch + ")";
      LOG_WARN("{}: serving the text model only: {}", loader.model_dir(), no_vision_);
      return;
    }
    const std::string src = loader.model_dir() + "/config.json";
    std::ifstream in(src);
    if (!in) fail("cannot read {}", src);
    const json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("vision_config"))
      fail("{}: Gemma3ForConditionalGeneration needs a vision_config object", src);
    const SiglipVisionConfig vc = SiglipVisionConfig::parse(j["vision_config"], src);
    const int64_t tokens = get_int(j, "mm_tokens_per_image", src, 256);
    tower_.emplace(vc, *st, m + "vision_tower.vision_model.");
    projector_.emplace(vc, tokens, cfg_.hidden_size, *st, m + "multi_modal_projector.");
  }

  std::vector<Layer> layers_;
  std::optional<SiglipVisionTower> tower_;
  std::optional<Gemma3Projector> projector_;
  std::string no_vision_;
};

class Gemma3Architecture final : public Architecture {
 public:
  // Gemma3ForConditionalGeneration: the text model with the vision tower (Gemma3Model above).
  std::vector<std::string> names() const override {
    return {"Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"};
  }
  json text_config(const json& j, const std::string& src) const override {
    if (j.value("architectures", json::array()).at(0) != "Gemma3ForConditionalGeneration") return j;
    auto it = j.find("text_config");
    if (it == j.end() || !it->is_object())
      fail("{}: Gemma3ForConditionalGeneration needs a text_config object", src);
    // Gemma3TextConfig's defaults for what released checkpoints leave out of text_config.
    json t = {{"vocab_size", 262208},
              {"hidden_size", 2304},
              {"intermediate_size", 9216},
              {"num_hidden_layers", 26},
              {"num_attention_heads", 8},
              {"num_key_value_heads", 4},
              {"head_dim", 256},
              {"rms_norm_eps", 1e-6},
              {"query_pre_attn_scalar", 256},
              {"sliding_window", 4096},
              {"max_position_embeddings", 131072},
              {"rope_theta", 1e6},
              {"rope_local_base_freq", 1e4},
              {"tie_word_embeddings", true}};
    for (const auto& [k, v] : it->items()) t[k] = v;
    if (t.contains("rope_parameters")) {  // transformers 5 style: no top-level rope keys
      t.erase("rope_theta");
      t.erase("rope_local_base_freq");
    }
    // The top level holds the dtype and the special tokens of the whole model.
    for (const char* k : {"torch_dtype", "dtype", "bos_token_id", "eos_token_id", "pad_token_id",
                          "tie_word_embeddings"})
      if (j.contains(k) && !it->contains(k)) t[k] = j[k];
    t["architectures"] = j["architectures"];
    return t;
  }
  // Gemma3TextConfig: head_dim 256, max_position_embeddings 131072, tied embeddings.
  ConfigDefaults defaults(const std::string& architecture) const override {
    (void)architecture;
    ConfigDefaults d;
    d.head_dim = 256;
    d.max_position_embeddings = 131072;
    d.tie_word_embeddings = true;
    return d;
  }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    // Gemma 3 reads `hidden_activation` (hidden_act is not used); these names are all GELU with
    // the tanh approximation.
    const json act = j.contains("hidden_activation") ? j["hidden_activation"] : json();
    if (!act.is_null() && (!act.is_string() || (act != "gelu_pytorch_tanh" &&
                                                act != "gelu_python_tanh" && act != "gelu_new"))) {
      fail("{}: unsupported hidden_activation {}: expected \"gelu_pytorch_tanh\"", src, act.dump());
    }
    reject_mlp_bias(j, src);
    reject_unhandled_keys(
        j, src, {"attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar"});
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
    parse_windows(j, src, c);
    parse_ropes(j, src, c);
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<Gemma3Model>(c, loader);
  }

 private:
  // Gemma3TextConfig: without layer_types, every sliding_window_pattern-th layer (default 6) is
  // global and the rest slide; sliding_window defaults to 4096.
  static void parse_windows(const json& j, const std::string& src, ModelConfig& c) {
    c.layer_sliding.assign(size_t(c.num_layers), 0);
    std::vector<std::string> types = layer_types(j, src, c);
    if (types.empty()) {
      const int64_t pattern = get_int(j, "sliding_window_pattern", src, 6);
      if (pattern <= 0) fail("{}: sliding_window_pattern must be positive", src);
      for (int64_t i = 0; i < c.num_layers; ++i)
        types.push_back((i + 1) % pattern != 0 ? "sliding_attention" : "full_attention");
    }
    for (size_t i = 0; i < types.size(); ++i) c.layer_sliding[i] = types[i] == "sliding_attention";
    auto it = j.find("sliding_window");
    c.sliding_window = it == j.end() ? 4096 : get_int(j, "sliding_window", src, 0);
    if (c.sliding_window <= 0 && any_sliding(types))
      fail("{}: sliding_window must be a positive integer for the sliding_attention layers", src);
  }

  // One rope per layer type. transformers 5: rope_parameters = {"full_attention": {...},
  // "sliding_attention": {...}}; older configs: rope_theta (+ rope_scaling) for the global layers
  // and rope_local_base_freq for the sliding ones. Defaults 1e6 and 1e4.
  static void parse_ropes(const json& j, const std::string& src, ModelConfig& c) {
    const json* rp = rope_parameters(j);
    if (rp != nullptr && !rope_per_layer_type(rp)) {
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
  }
};

}  // namespace

const Architecture& gemma3_architecture() {
  static const Gemma3Architecture kArch;
  return kArch;
}

}  // namespace inferd
