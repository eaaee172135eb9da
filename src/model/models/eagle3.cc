// EAGLE-3 draft heads (issue 26): LlamaForCausalLMEagle3, the layout of vLLM's llama_eagle3.py and
// SpecForge checkpoints (and tools/train_spec_heads.py --out-eagle3, whose PyTorch code is the
// reference this follows). One Llama decoder layer whose attention reads the concatenation
// [input_layernorm(embedding of the next token), hidden_norm(hidden)] (width 2H), where `hidden`
// is fc(three states of the target) in the first draft step and the head's own previous pre-norm
// output in the later ones; then norm and an lm_head over the draft vocabulary. The token
// embedding is the target's (LoadOptions::shared_embedding); d2t maps draft ids to target ids.
//
//   res = hidden                       (fc(aux) [T, 3 H_t] -> [T, H], or the previous output)
//   x   = [rms(embed(t)) * w_in, rms(res) * w_hidden]               [T, 2H]
//   res = res + o_proj(attention(rope(qkv_proj(x))))
//   res = res + mlp(rms(res) * w_post)  -> the step's output (the next step's hidden input)
//   logits = lm_head(rms(res) * w_norm)                             [T, draft_vocab]
#include <cmath>

#include "core/error.h"
#include "model/causal_lm.h"
#include "model/config_parsing.h"
#include "model/layers/attention.h"
#include "model/layers/embedding.h"
#include "model/layers/linear.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"
#include "model/layers/rope.h"
#include "model/loader/model_loader.h"
#include "model/loader/safetensors.h"
#include "model/models/models.h"
#include "model/registry.h"

namespace inferd {

using namespace config;  // NOLINT: config.json field access

namespace {

class Eagle3Head final : public CausalLM {
 public:
  Eagle3Head(const ModelConfig& c, ModelLoader& loader) : CausalLM(c) {
    const int64_t H = c.hidden_size, Ht = c.target_hidden_size;
    table_ = loader.options().shared_embedding;
    if (!table_.defined())
      fail(
          "{}: an EAGLE-3 head embeds its tokens with the target's embedding table, which this "
          "load did not get (load it through --speculative-config method eagle3)",
          loader.model_dir());
    if (table_.ndim() != 2 || table_.size(1) != H || table_.size(0) != c.target_vocab_size)
      fail(
          "{}: the EAGLE-3 head has hidden_size {} and vocab_size {}, the target's embedding table "
          "is {}: the head must be trained for this target",
          loader.model_dir(), H, c.target_vocab_size, table_.shape_str());
    // Published heads name the decoder layer "midlayer."; some exports "layers.0.".
    const SafetensorsIndex* st = loader.checkpoint_if_any();
    const std::string p = st != nullptr && !st->contains("midlayer.hidden_norm.weight") &&
                                  st->contains("layers.0.hidden_norm.weight")
                              ? "layers.0."
                              : "midlayer.";
    rope_ = make_rope_table(loader.runtime(), c.rope, c.head_dim, c.max_position_embeddings,
                            loader.max_model_len());
    fc_ = LinearLayer(plain_linear("fc", H, 3 * Ht), loader);
    input_norm_ = RmsNorm(loader, p + "input_layernorm.weight", H, c.rms_norm_eps);
    hidden_norm_ = RmsNorm(loader, p + "hidden_norm.weight", H, c.rms_norm_eps);
    post_norm_ = RmsNorm(loader, p + "post_attention_layernorm.weight", H, c.rms_norm_eps);
    final_norm_ = RmsNorm(loader, "norm.weight", H, c.rms_norm_eps);
    AttentionSpec s;
    s.prefix = p + "self_attn.";
    s.hidden = H;
    s.input = 2 * H;
    s.num_heads = c.num_heads;
    s.num_kv_heads = c.num_kv_heads;
    s.head_dim = c.head_dim;
    s.norm_eps = c.rms_norm_eps;
    s.scale = 1.0f / std::sqrt(float(c.head_dim));
    s.rope = &rope_;
    attn_ = std::make_unique<Attention>(s, loader);
    mlp_ = std::make_unique<GatedMlp>(p + "mlp.", H, c.intermediate_size, Activation::kSilu, false,
                                      loader);
    lm_head_ = LmHead(loader, VocabEmbedding(), false, c.vocab_size, H);
    read_vocab_map(loader);
  }

  std::vector<int64_t> workspace_columns() const override {
    const int64_t H = cfg_.hidden_size, F = cfg_.intermediate_size;
    std::vector<int64_t> cols(kNumBuffers);
    cols[kEmb] = H;
    cols[kRes] = H;
    cols[kCat] = 2 * H;
    cols[kH] = H;
    cols[kQkv] = cfg_.q_size() + 2 * cfg_.kv_size();
    cols[kAttn] = cfg_.q_size();
    cols[kX] = H;
    cols[kGateUp] = 2 * F;
    cols[kAct] = F;
    return cols;
  }

  void forward(const ForwardContext& ctx, Tensor hidden) override {
    KernelOps& ops = ctx.ops;
    const DeviceBatch& b = ctx.batch;
    const int64_t H = cfg_.hidden_size;
    Tensor emb = ctx.buffer(kEmb), res = ctx.buffer(kRes), cat = ctx.buffer(kCat);
    Tensor h = ctx.buffer(kH), qkv = ctx.buffer(kQkv), attn = ctx.buffer(kAttn);
    Tensor x = ctx.buffer(kX), gate_up = ctx.buffer(kGateUp), act = ctx.buffer(kAct);
    ops.embedding(table_, b, 1.0f, emb);
    const Tensor& in = ctx.hidden_inputs;
    if (in.defined() && in.size(1) == 3 * cfg_.target_hidden_size) {
      fc_.apply(ops, in, res);  // the first draft step: the target's three states fused
    } else if (in.defined()) {
      INFERD_CHECK(in.size(1) == H, "EAGLE-3 head: hidden inputs of width {} (expected {} or {})",
                   in.size(1), 3 * cfg_.target_hidden_size, H);
      ops.copy_rows(in, res);  // later steps: the head's own previous output
    }                          // (undefined: a padding-only step; its rows are never read)
    ops.rms_norm(emb, input_norm_.weight, input_norm_.eps, cat.slice_cols(0, H));
    ops.rms_norm(res, hidden_norm_.weight, hidden_norm_.eps, cat.slice_cols(H, 2 * H));
    attn_->forward(ops, b, cat, qkv, attn, ctx.kv_cache[0], x);
    ops.add_rms_norm(res, x, post_norm_.weight, post_norm_.eps, h);
    mlp_->forward(ops, b, h, gate_up, act, x);
    ops.add_rms_norm(res, x, final_norm_.weight, final_norm_.eps, hidden);
  }

  void compute_logits(KernelOps& ops, const Tensor& rows, Tensor logits) const override {
    lm_head_.forward(ops, rows, logits);
  }
  std::vector<int64_t> hidden_input_widths() const override {
    return {3 * cfg_.target_hidden_size, cfg_.hidden_size};
  }
  int32_t recurrent_buffer() const override { return int32_t(kRes); }
  std::vector<int32_t> draft_to_target() const override { return d2t_; }

 private:
  enum Buffer : size_t { kEmb, kRes, kCat, kH, kQkv, kAttn, kX, kGateUp, kAct, kNumBuffers };

  // d2t [draft_vocab] (target id = draft id + d2t[draft id]), int64 or int32; absent (dummy
  // weights, or a head over the whole vocabulary): the same ids.
  void read_vocab_map(ModelLoader& loader) {
    const int64_t Vd = cfg_.vocab_size, V = cfg_.target_vocab_size;
    d2t_.resize(size_t(Vd));
    for (int64_t i = 0; i < Vd; ++i) d2t_[size_t(i)] = int32_t(i);
    const SafetensorsIndex* st = loader.checkpoint_if_any();
    if (st == nullptr || !st->contains("d2t")) {
      if (Vd != V && !loader.dummy())
        fail("{}: the EAGLE-3 head has draft_vocab_size {} < vocab_size {} but no d2t tensor",
             loader.model_dir(), Vd, V);
      return;
    }
    const int64_t shape[] = {Vd};
    const Tensor t = st->get("d2t", shape);
    if (t.dtype() != DType::kI64 && t.dtype() != DType::kI32)
      fail("{}: d2t must be int64 or int32, got {}", loader.model_dir(), dtype_name(t.dtype()));
    for (int64_t i = 0; i < Vd; ++i) {
      const int64_t off =
          t.dtype() == DType::kI64 ? t.data_as<int64_t>()[i] : int64_t(t.data_as<int32_t>()[i]);
      const int64_t id = i + off;
      if (id < 0 || id >= V)
        fail("{}: d2t maps draft id {} to target id {}, outside the vocabulary of {}",
             loader.model_dir(), i, id, V);
      d2t_[size_t(i)] = int32_t(id);
    }
  }

  Tensor table_;  // the target's
  RopeTable rope_;
  LinearLayer fc_;
  RmsNorm input_norm_, hidden_norm_, post_norm_, final_norm_;
  std::unique_ptr<Attention> attn_;
  std::unique_ptr<GatedMlp> mlp_;
  LmHead lm_head_;
  std::vector<int32_t> d2t_;
};

class Eagle3Architecture final : public Architecture {
 public:
  std::vector<std::string> names() const override { return {"LlamaForCausalLMEagle3"}; }
  void parse_config(const json& j, const std::string& src, ModelConfig& c) const override {
    check_silu_activation(j, src);
    reject_mlp_bias(j, src);
    reject_unhandled_keys(j, src);
    if (c.num_layers != 1)
      fail("{}: an EAGLE-3 head with num_hidden_layers {} is not supported (expected 1)", src,
           c.num_layers);
    if (get_bool(j, "attention_bias", src, false))
      fail("{}: attention_bias is not supported for EAGLE-3 heads", src);
    if (get_bool(j, "norm_before_residual", src, false))
      fail("{}: norm_before_residual = true is not supported (the residual is the un-normed input)",
           src);
    parse_no_sliding_window(j, src, c);
    parse_single_rope(j, src, c);
    c.target_vocab_size = c.vocab_size;
    c.vocab_size = get_int(j, "draft_vocab_size", src, c.vocab_size);
    if (c.vocab_size <= 0 || c.vocab_size > c.target_vocab_size)
      fail("{}: draft_vocab_size {} must be in 1..vocab_size ({})", src, c.vocab_size,
           c.target_vocab_size);
    c.target_hidden_size = get_int(j, "target_hidden_size", src, c.hidden_size);
    if (c.target_hidden_size <= 0) fail("{}: target_hidden_size must be positive", src);
    if (auto e = j.find("eagle_config"); e != j.end() && e->is_object()) {
      if (get_bool(*e, "use_aux_hidden_state", src, true) == false)
        fail("{}: eagle_config.use_aux_hidden_state = false (EAGLE-1/2 heads) is not supported",
             src);
      if (auto ids = e->find("eagle_aux_hidden_state_layer_ids");
          ids != e->end() && !ids->is_null()) {
        if (!ids->is_array() || ids->size() != 3)
          fail("{}: eagle_config.eagle_aux_hidden_state_layer_ids must be a list of 3 layers", src);
        for (const json& v : *ids) {
          if (!v.is_number_integer() || v.get<int64_t>() < 0)
            fail("{}: eagle_config.eagle_aux_hidden_state_layer_ids: {} is not a layer index", src,
                 v.dump());
          c.eagle_aux_layers.push_back(v.get<int32_t>());
        }
      }
    }
  }
  std::unique_ptr<CausalLM> create(const ModelConfig& c, ModelLoader& loader) const override {
    return std::make_unique<Eagle3Head>(c, loader);
  }
};

}  // namespace

const Architecture& eagle3_architecture() {
  static const Eagle3Architecture kArch;
  return kArch;
}

}  // namespace inferd
