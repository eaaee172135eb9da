// The LoRA slots of a model (lora_weights.h).
#include "model/lora/lora_weights.h"

#include <algorithm>

#include "core/error.h"

namespace inferd {

std::vector<LoraModule> lora_target_modules(LoraWeights::Target t) {
  switch (t) {
    case LoraWeights::kQkv:
      return {LoraModule::kQ, LoraModule::kK, LoraModule::kV};
    case LoraWeights::kO:
      return {LoraModule::kO};
    case LoraWeights::kGateUp:
      return {LoraModule::kGate, LoraModule::kUp};
    case LoraWeights::kDown:
      return {LoraModule::kDown};
  }
  return {};
}

LoraWeights::LoraWeights(DeviceRuntime& rt, const ModelConfig& cfg, int32_t max_loras,
                         int32_t max_rank)
    : rt_(rt), cfg_(cfg), max_loras_(max_loras), max_rank_(max_rank) {
  if (max_loras <= 0) fail("--max-loras must be positive, got {}", max_loras);
  if (max_rank <= 0) fail("--max-lora-rank must be positive, got {}", max_rank);
  const int64_t before = rt.device_bytes_allocated();
  const DType dt = rt.activation_dtype();
  layers_.resize(size_t(cfg.num_layers));
  for (auto& layer : layers_) {
    for (int t = 0; t < kNumTargets; ++t) {
      LoraLinear& l = layer[size_t(t)];
      const std::vector<LoraModule> mods = lora_target_modules(Target(t));
      l.num_parts = int32_t(mods.size());
      l.max_rank = max_rank;
      l.rank = int64_t(mods.size()) * max_rank;
      l.in_features = lora_module_shape(cfg, mods[0]).second;
      int64_t end = 0;
      for (size_t p = 0; p < mods.size(); ++p) {
        end += lora_module_shape(cfg, mods[p]).first;
        l.part_end[p] = end;
      }
      l.out_features = end;
      l.a = rt.alloc(dt, {max_loras, l.rank, l.in_features});
      l.b = rt.alloc(dt, {max_loras, l.out_features, l.rank});
    }
  }
  bytes_ = rt.device_bytes_allocated() - before;
  for (int32_t s = 0; s < max_loras; ++s) clear(s);
}

void LoraWeights::fill(const LoraAdapter* ad, int64_t layer, Target t, std::vector<float>& a,
                       std::vector<float>& b) const {
  const LoraLinear& l = linear(layer, t);
  const int64_t R = l.rank, K = l.in_features;
  a.assign(size_t(R * K), 0.0f);
  b.assign(size_t(l.out_features * R), 0.0f);
  if (ad == nullptr) return;
  const std::vector<LoraModule> mods = lora_target_modules(t);
  int64_t row0 = 0;
  for (size_t p = 0; p < mods.size(); ++p) {
    const LoraModuleWeights& m = ad->module(layer, mods[p]);
    const int64_t rows = l.part_end[p] - row0, c0 = int64_t(p) * max_rank_;
    if (m.rank > 0) {
      if (m.rank > max_rank_)
        fail("LoRA adapter {}: model.layers.{}.{} has rank {}, more than --max-lora-rank {}",
             ad->path, layer, lora_module_name(mods[p]), m.rank, max_rank_);
      std::copy(m.a.begin(), m.a.end(), a.begin() + c0 * K);
      for (int64_t n = 0; n < rows; ++n)
        for (int64_t k = 0; k < m.rank; ++k)
          b[size_t((row0 + n) * R + c0 + k)] = m.scale * m.b[size_t(n * m.rank + k)];
    }
    row0 += rows;
  }
}

void LoraWeights::write(int32_t slot, const LoraAdapter* ad) {
  INFERD_CHECK(slot >= 0 && slot < max_loras_, "LoRA slot {} of {}", slot, max_loras_);
  if (ad != nullptr) {
    INFERD_CHECK(ad->layers.size() == layers_.size(), "adapter of {} layers for {}",
                 ad->layers.size(), layers_.size());
    if (ad->max_rank > max_rank_)
      fail("LoRA adapter {} has rank {}, more than --max-lora-rank {}", ad->path, ad->max_rank,
           max_rank_);
  }
  std::vector<float> a, b;
  for (int64_t i = 0; i < int64_t(layers_.size()); ++i) {
    for (int t = 0; t < kNumTargets; ++t) {
      fill(ad, i, Target(t), a, b);
      const LoraLinear& l = linear(i, Target(t));
      rt_.upload_f32(l.a.slice_rows(slot, slot + 1), a);
      rt_.upload_f32(l.b.slice_rows(slot, slot + 1), b);
    }
  }
}

void LoraWeights::load(int32_t slot, const LoraAdapter& adapter) {
  write(slot, &adapter);
}

void LoraWeights::clear(int32_t slot) {
  write(slot, nullptr);
}

}  // namespace inferd
