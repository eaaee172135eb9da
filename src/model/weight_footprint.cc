// Weight bytes, total and read per decode token (weight_footprint.h).
#include "model/weight_footprint.h"

namespace inferd {

WeightFootprint weight_footprint(const ModelConfig& c, int64_t linear_bytes, int64_t embed_bytes) {
  const int64_t H = c.hidden_size;
  const int64_t attn = H * (c.q_size() + 2 * c.kv_size()) + c.q_size() * H;
  int64_t total = 0, active = 0;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    int64_t layer_total = attn, layer_active = attn;
    if (c.is_moe_layer(i)) {
      const int64_t expert = 3 * H * c.moe_intermediate_size;
      layer_total += c.num_experts * H + c.num_experts * expert;
      layer_active += c.num_experts * H + c.num_experts_per_tok * expert;
    } else {
      layer_total += 3 * H * c.intermediate_size;
      layer_active += 3 * H * c.intermediate_size;
    }
    total += layer_total * linear_bytes;
    active += layer_active * linear_bytes;
  }
  const int64_t table = c.vocab_size * H * embed_bytes;
  total += c.tie_word_embeddings ? table : 2 * table;
  active += table + H * embed_bytes;  // the lm_head, one embedding row
  return {total, active};
}

}  // namespace inferd
