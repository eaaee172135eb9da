// What the decoder-only families share around their layers (decoder_base.h).
#include "model/models/decoder_base.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

#include "model/layers/rope.h"
#include "model/loader/model_loader.h"

namespace inferd {

DecoderBase::DecoderBase(const ModelConfig& c, ModelLoader& loader)
    : CausalLM(c), tp_(loader.options().tp) {
  DeviceRuntime& rt = loader.runtime();
  rope_ =
      make_rope_table(rt, c.rope, c.head_dim, c.max_position_embeddings, loader.max_model_len());
  if (c.has_rope_local) {
    rope_local_ = make_rope_table(rt, c.rope_local, c.head_dim, c.max_position_embeddings,
                                  loader.max_model_len());
  }
  embed_ = VocabEmbedding(loader, "model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  if (c.embedding_scaled) {
    embed_.scale_by_sqrt_hidden();
  } else if (c.embedding_multiplier > 0) {
    embed_.set_scale(float(c.embedding_multiplier));
  }
  final_norm_ =
      RmsNorm(loader, "model.norm.weight", c.hidden_size, c.rms_norm_eps, c.norm_weight_plus_one);
  lm_head_ = LmHead(loader, embed_, c.tie_word_embeddings, c.vocab_size, c.hidden_size);
  lm_head_.set_softcap(c.final_logit_softcap);
  lm_head_.set_divisor(c.logits_scaling);
}

std::vector<int64_t> DecoderBase::workspace_columns() const {
  const int64_t H = cfg_.hidden_size, F = cfg_.intermediate_size / tp_.size;
  const int64_t q = tp_.local_heads(cfg_.num_heads) * cfg_.head_dim;
  const int64_t kv = tp_.local_kv_heads(cfg_.num_kv_heads) * cfg_.head_dim;
  std::vector<int64_t> cols(6);
  cols[kX] = H;
  cols[kResidual] = H;
  cols[kQkv] = q + 2 * kv;
  cols[kAttn] = q;
  cols[kGateUp] = 2 * F;
  cols[kAct] = F;
  return cols;
}

std::vector<KvCacheSpec> DecoderBase::kv_cache_spec() const {
  return std::vector<KvCacheSpec>(size_t(cfg_.num_layers),
                                  {tp_.local_kv_heads(cfg_.num_kv_heads), cfg_.head_dim});
}

AttentionSpec DecoderBase::attention_spec(int64_t i) const {
  const ModelConfig& c = cfg_;
  AttentionSpec s;
  s.prefix = layer_prefix(i) + "self_attn.";
  s.hidden = c.hidden_size;
  s.num_heads = c.num_heads;
  s.num_kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim;
  s.qkv_bias = c.qkv_bias;
  s.o_bias = c.o_bias;
  s.fused_qkv = c.fused_qkv_gate_up;
  s.qk_norm = c.qk_norm ? AttentionSpec::QkNorm::kPerHead : AttentionSpec::QkNorm::kNone;
  s.norm_eps = c.rms_norm_eps;
  s.norm_plus_one = c.norm_weight_plus_one;
  s.scale = c.attention_scale > 0 ? float(c.attention_scale) : 1.0f / std::sqrt(float(c.head_dim));
  s.sliding_window = c.window_of(i);
  s.rope = s.sliding_window > 0 && c.has_rope_local ? &rope_local_ : &rope_;
  return s;
}

void DecoderBase::write_input_rows(const ForwardContext& ctx, Tensor embedded) {
  if (ctx.input_rows.empty()) return;
  if (embedded.device() != Device::kCPU || embedded.dtype() != DType::kF32)
    fail("image embeddings are written on the CPU backend only (issue 34)");
  const int64_t H = embedded.size(1);
  for (const InputRows& r : ctx.input_rows) {
    INFERD_CHECK(r.row >= 0 && r.row + r.num_rows <= embedded.size(0), "input rows [{}, +{})",
                 r.row, r.num_rows);
    for (int32_t j = 0; j < r.num_rows; ++j)
      std::memcpy(static_cast<float*>(embedded.data()) + (r.row + j) * embedded.stride(0),
                  r.data + int64_t(j) * H, size_t(H) * sizeof(float));
  }
}

}  // namespace inferd
