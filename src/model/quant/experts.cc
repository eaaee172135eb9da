// Dense expert weights of a mixture-of-experts layer (experts.h).
#include "model/quant/experts.h"

#include <cstring>

#include "core/error.h"
#include "model/loader/model_loader.h"
#include "model/loader/safetensors.h"

namespace inferd {

Tensor load_expert_bias(const ExpertSpec& s, ModelLoader& loader) {
  if (!s.bias) return Tensor();
  if (loader.dummy()) {  // fp32, as every backend keeps expert biases
    const int64_t shape[2] = {s.num_experts, s.out_features};
    return loader.runtime().random_tensor(
        DType::kF32, shape, dummy_seed_of(loader.options().dummy_seed, s.name + "_bias"), 0.02f,
        0.f);
  }
  return loader.weight(s.name + "_bias", {s.num_experts, s.out_features});
}

ExpertLinear load_fused_experts(const ExpertSpec& s, ModelLoader& loader) {
  const SafetensorsIndex* st = loader.checkpoint_if_any();
  if (loader.config().quant.method == QuantMethod::kMxfp4 ||
      (st != nullptr && st->contains(s.name + "_blocks")))
    return load_mxfp4_experts(s, loader);
  ExpertLinear host;
  host.num_experts = s.num_experts;
  host.out_features = s.out_features;
  host.in_features = s.in_features;
  host.bias = load_expert_bias(s, loader);
  if (loader.dummy()) {
    host.weight = loader.weight(s.name, {s.num_experts, s.out_features, s.in_features});
    return loader.runtime().make_experts(host);
  }
  // The checkpoint stores each expert input-major ([in, out]: x @ W): transposed to [out, in].
  const Tensor w = loader.weight(s.name, {s.num_experts, s.in_features, s.out_features});
  Tensor t = Tensor::empty_host(w.dtype(), {s.num_experts, s.out_features, s.in_features});
  const size_t es = dtype_size(w.dtype());
  const int64_t I = s.in_features, O = s.out_features;
  const auto* src = static_cast<const uint8_t*>(w.data());
  auto* dst = static_cast<uint8_t*>(t.data());
  for (int64_t e = 0; e < s.num_experts; ++e) {
    const int64_t base = e * I * O;
    for (int64_t i = 0; i < I; ++i)
      for (int64_t o = 0; o < O; ++o)
        std::memcpy(dst + (base + o * I + i) * es, src + (base + i * O + o) * es, es);
  }
  host.weight = t;
  return loader.runtime().make_experts(host);
}

}  // namespace inferd
