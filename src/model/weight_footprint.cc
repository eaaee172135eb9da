// Weight bytes, total and read per decode token (weight_footprint.h).
#include "model/weight_footprint.h"

#include <cmath>

namespace inferd {

WeightBits weight_bits(const QuantConfig& q, const std::string& flag) {
  WeightBits b;
  const bool fp8 = flag == "fp8";
  if (fp8) b.linear = b.experts = 8;
  switch (q.method) {
    case QuantMethod::kNone:
    case QuantMethod::kGguf:
      break;
    case QuantMethod::kCompressedTensorsFp8:
    case QuantMethod::kFp8Block:
      b.linear = 8;
      break;
    case QuantMethod::kMxfp4:
      b.experts = 4.0 + 8.0 / 32.0;
      break;
    case QuantMethod::kAwq:
    case QuantMethod::kGptq:
    case QuantMethod::kCompressedTensorsInt: {
      const double zero_bits = q.symmetric ? 0.0 : double(q.bits);
      b.linear = double(q.bits);
      if (q.group_size > 0) b.linear += (16.0 + zero_bits) / double(q.group_size);
      break;
    }
  }
  return b;
}

WeightFootprint weight_footprint(const ModelConfig& c, const WeightBits& bits) {
  const double H = double(c.hidden_size);
  const double attn = H * double(c.q_size() + 2 * c.kv_size()) + double(c.q_size()) * H;
  double total = 0, active = 0;  // bits
  for (int64_t i = 0; i < c.num_layers; ++i) {
    double linear = attn, experts_total = 0, experts_active = 0;
    if (c.is_moe_layer(i)) {
      const double expert = 3.0 * H * double(c.moe_intermediate_size);
      linear += double(c.num_experts) * H;  // the router
      experts_total = double(c.num_experts) * expert;
      experts_active = double(c.num_experts_per_tok) * expert;
    } else {
      linear += 3.0 * H * double(c.intermediate_size);
    }
    total += linear * bits.linear + experts_total * bits.experts;
    active += linear * bits.linear + experts_active * bits.experts;
  }
  const double table = double(c.vocab_size) * H * bits.embed;
  total += c.tie_word_embeddings ? table : 2 * table;
  active += table + H * bits.embed;  // the lm_head, one embedding row
  return {int64_t(std::llround(total / 8)), int64_t(std::llround(active / 8))};
}

}  // namespace inferd
