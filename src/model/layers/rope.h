// Rotary embedding tables for the backend: the inverse frequencies of a RopeConfig
// (model/rope_config.h, every rope type transformers implements) placed on the device with the
// cos/sin scale. The kernels rotate q and k (rotate-half) as they write the KV cache.
#pragma once

#include "backend/backend.h"
#include "model/rope_config.h"

namespace inferd {

// `max_model_len`: the runner's longest sequence (dynamic and longrope depend on it).
RopeTable make_rope_table(DeviceRuntime& runtime, const RopeConfig& rope, int64_t head_dim,
                          int64_t max_position_embeddings, int64_t max_model_len);

}  // namespace inferd
