// Reading the FP8 KV cache scales of a checkpoint (kv_cache_scales.h).
#include "model/loader/kv_cache_scales.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "model/loader/safetensors.h"
#include "model/quant/fp8_weights.h"

namespace inferd {

namespace {
// The layer's scale of `which` ("k" or "v"): its first name present, or -1 when none is.
float find_scale(const SafetensorsIndex& st, int64_t layer, const char* which) {
  const std::string attn = "model.layers." + std::to_string(layer) + ".self_attn.";
  const std::string w(which);
  for (const std::string& name :
       {attn + w + "_scale", attn + w + "_proj." + w + "_scale", attn + "kv_scale"}) {
    if (!st.contains(name)) continue;
    const std::vector<float> v = float_values(st.get_float(name));
    const float s = v.size() == 1 ? v[0] : 0.0f;
    if (v.size() != 1 || !(s > 0) || !std::isfinite(s))
      fail("tensor '{}' must hold one positive finite value (an FP8 KV cache scale), got {} values",
           name, v.size());
    return s;
  }
  return -1.0f;
}
}  // namespace

std::vector<KvCacheScales> read_kv_cache_scales(const SafetensorsIndex* st, int64_t num_layers) {
  std::vector<KvCacheScales> out;
  if (st == nullptr) return out;
  int64_t found = 0;
  std::vector<KvCacheScales> all(static_cast<size_t>(num_layers));
  for (int64_t i = 0; i < num_layers; ++i) {
    const float k = find_scale(*st, i, "k"), v = find_scale(*st, i, "v");
    if ((k > 0) != (v > 0))
      fail("layer {} of the checkpoint has a {} scale for its KV cache but no {} scale", i,
           k > 0 ? "key" : "value", k > 0 ? "value" : "key");
    if (k > 0) {
      all[size_t(i)] = {k, v};
      ++found;
    }
  }
  if (found == 0) return out;
  if (found != num_layers)
    fail(
        "{} of the checkpoint's {} layers have KV cache scales (self_attn.k_scale / v_scale): "
        "expected every layer or none",
        found, num_layers);
  return all;
}

}  // namespace inferd
