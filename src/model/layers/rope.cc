// Rotary embedding tables (rope.h).
#include "model/layers/rope.h"

#include <algorithm>

#include "core/logging.h"

namespace inferd {

RopeTable make_rope_table(DeviceRuntime& runtime, const RopeConfig& rc, int64_t head_dim,
                          int64_t max_position_embeddings, int64_t max_model_len) {
  const RopeFrequencies f = rope_frequencies(rc, head_dim, max_position_embeddings, max_model_len);
  RopeTable t;
  Tensor own = Tensor::empty_host(DType::kF32, {int64_t(f.inv_freq.size())});
  std::copy(f.inv_freq.begin(), f.inv_freq.end(), own.data_as<float>());
  t.inv_freq = runtime.make_param(own);
  t.head_dim = head_dim;
  t.attention_scaling = f.attention_scaling;
  t.mrope_section = rc.mrope_section;
  if (rc.type != RopeType::kDefault) {
    LOG_INFO("rope: {} (theta {}, factor {}, attention scaling {})", rope_type_name(rc.type),
             rc.theta, rc.factor, f.attention_scaling);
  }
  return t;
}

}  // namespace inferd
