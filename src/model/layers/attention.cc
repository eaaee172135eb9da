// Self-attention (attention.h).
#include "model/layers/attention.h"

#include "core/error.h"
#include "model/loader/model_loader.h"

namespace inferd {

Attention::Attention(const AttentionSpec& s, ModelLoader& loader)
    : nh_(loader.options().tp.local_heads(s.num_heads)),
      nkv_(loader.options().tp.local_kv_heads(s.num_kv_heads)),
      hd_(s.head_dim),
      qk_kind_(s.qk_norm),
      scale_(s.scale),
      window_(s.sliding_window),
      rope_(s.rope) {
  INFERD_CHECK(rope_ != nullptr, "attention {} without a rope table", s.prefix);
  // Tensor parallelism: this rank's query heads and the KV heads they read (parallel.h); what
  // needs all of the heads on one rank is refused.
  const TensorParallel& tp = loader.options().tp;
  if (tp.enabled()) {
    const char* why = s.fused_qkv ? "a fused qkv_proj (Phi-3)"
                      : s.qk_norm == AttentionSpec::QkNorm::kWholeProjection
                          ? "q/k norms over the whole projection (OLMo 2)"
                      : s.sinks ? "attention sinks (gpt-oss)"
                                : nullptr;
    if (why != nullptr)
      fail("--tensor-parallel-size {}: attention with {} is not sharded yet", tp.size, why);
  }
  const int64_t qs = s.num_heads * hd_, kvs = s.num_kv_heads * hd_;  // as stored
  if (s.qk_norm == AttentionSpec::QkNorm::kPerHead) {
    q_norm_ = RmsNorm(loader, s.prefix + "q_norm.weight", hd_, s.norm_eps, s.norm_plus_one);
    k_norm_ = RmsNorm(loader, s.prefix + "k_norm.weight", hd_, s.norm_eps, s.norm_plus_one);
  }
  if (s.fused_qkv) {
    // Phi-3: the checkpoint's qkv_proj rows are q, k, v: the layout the parts of the others are
    // concatenated into.
    qkv_ = LinearLayer(merged_column_linear({{s.prefix + "qkv_proj", qs + 2 * kvs}}, s.hidden),
                       loader);
  } else {
    const Shard kv = tp.kv_shard(s.num_kv_heads);
    qkv_ = LinearLayer(merged_column_linear({{s.prefix + "q_proj", qs},
                                             {s.prefix + "k_proj", kvs, kv},
                                             {s.prefix + "v_proj", kvs, kv}},
                                            s.input > 0 ? s.input : s.hidden, s.qkv_bias),
                       loader);
  }
  o_ = LinearLayer(row_linear(s.prefix + "o_proj", s.hidden, qs, s.o_bias), loader);
  if (s.sinks) sinks_ = loader.norm(s.prefix + "sinks", nh_);
  if (s.qk_norm == AttentionSpec::QkNorm::kWholeProjection) {
    q_norm_ = RmsNorm(loader, s.prefix + "q_norm.weight", qs, s.norm_eps, s.norm_plus_one);
    k_norm_ = RmsNorm(loader, s.prefix + "k_norm.weight", kvs, s.norm_eps, s.norm_plus_one);
  }
}

void Attention::forward(KernelOps& ops, const DeviceBatch& b, const Tensor& x, Tensor qkv,
                        Tensor attn, KvLayer& kv, Tensor out) const {
  qkv_.apply(ops, x, qkv, b);
  const int64_t qs = nh_ * hd_, kvs = nkv_ * hd_;  // this rank's
  switch (qk_kind_) {
    case AttentionSpec::QkNorm::kNone:
      break;
    case AttentionSpec::QkNorm::kPerHead:
      ops.head_rms_norm(qkv.slice_cols(0, qs), hd_, q_norm_.weight, q_norm_.eps);
      ops.head_rms_norm(qkv.slice_cols(qs, qs + kvs), hd_, k_norm_.weight, k_norm_.eps);
      break;
    case AttentionSpec::QkNorm::kWholeProjection: {
      Tensor q = qkv.slice_cols(0, qs), k = qkv.slice_cols(qs, qs + kvs);
      ops.rms_norm(q, q_norm_.weight, q_norm_.eps, q);
      ops.rms_norm(k, k_norm_.weight, k_norm_.eps, k);
      break;
    }
  }
  ops.rope_write_kv(qkv, nh_, nkv_, *rope_, kv, b);
  ops.attention(qkv, nh_, nkv_, kv, scale_, window_, b, attn, sinks_);
  o_.apply(ops, attn, out, b);
}

}  // namespace inferd
