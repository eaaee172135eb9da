// The FP8 KV cache's per-tensor scales a checkpoint may store (vLLM reads the same names), per
// layer i under model.layers.i.self_attn.: k_scale and v_scale (llm-compressor's
// kv_cache_scheme), k_proj.k_scale and v_proj.v_scale (ModelOpt), or kv_scale for both (AutoFP8).
// A stored key is key / k_scale in e4m3, a value value / v_scale.
#pragma once

#include <cstdint>
#include <vector>

namespace inferd {

class SafetensorsIndex;

struct KvCacheScales {
  float k = 1.0f, v = 1.0f;
};

// One entry a layer, or empty when the checkpoint (null: none) has no such tensors. Throws Error
// naming the tensor when a scale is not one positive finite value, or when only some layers
// have scales.
std::vector<KvCacheScales> read_kv_cache_scales(const SafetensorsIndex* st, int64_t num_layers);

}  // namespace inferd
