// The LoRA slots of a model (issue 29): for every decoder layer, one LoraLinear
// (backend/backend_types.h) for each of qkv, o, gate_up and down, each with max_loras slots of
// max_lora_rank per part, allocated once at start-up on the backend's device. An adapter is
// written into a slot (padded to max_rank, scale folded into B) by load(); a batch row runs with
// the slot the runner gives it (DeviceBatch::lora_slots), so which adapters a step mixes is data.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backend/device_runtime.h"
#include "model/config.h"
#include "model/lora/peft_adapter.h"

namespace inferd {

class LoraWeights {
 public:
  LoraWeights(DeviceRuntime& rt, const ModelConfig& cfg, int32_t max_loras, int32_t max_rank);

  int32_t max_loras() const { return max_loras_; }
  int32_t max_rank() const { return max_rank_; }
  int64_t device_bytes() const { return bytes_; }
  // Writes `adapter` into `slot` (every module it does not target becomes zero). Throws Error when
  // one of its modules has a rank above max_rank.
  void load(int32_t slot, const LoraAdapter& adapter);
  void clear(int32_t slot);

  enum Target : uint8_t { kQkv, kO, kGateUp, kDown };
  static constexpr int kNumTargets = 4;
  const LoraLinear& linear(int64_t layer, Target t) const {
    return layers_[size_t(layer)][size_t(t)];
  }

 private:
  // Host image of one slot of linear `t` of `layer` (zeros when `adapter` is null).
  void fill(const LoraAdapter* adapter, int64_t layer, Target t, std::vector<float>& a,
            std::vector<float>& b) const;
  void write(int32_t slot, const LoraAdapter* adapter);

  DeviceRuntime& rt_;
  ModelConfig cfg_;
  int32_t max_loras_, max_rank_;
  int64_t bytes_ = 0;
  std::vector<std::array<LoraLinear, kNumTargets>> layers_;
};

// The modules of target t, in the order its merged linear stacks them.
std::vector<LoraModule> lora_target_modules(LoraWeights::Target t);

}  // namespace inferd
