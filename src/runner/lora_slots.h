// Which LoRA adapter each of the runner's max_loras slots holds (issue 29), and which slot a new
// one takes: its own when it is resident, else a free slot, else the least recently used slot that
// no row of the current step uses (S-LoRA / vLLM's LRU over idle slots). The weights themselves
// live in model/lora/lora_weights.h; this is the bookkeeping, kept apart so it can be tested alone.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace inferd {

class LoraSlotTable {
 public:
  explicit LoraSlotTable(int32_t num_slots)
      : id_(size_t(num_slots), -1), used_(size_t(num_slots)) {}

  int32_t num_slots() const { return int32_t(id_.size()); }
  // The slot holding adapter `id`, or -1.
  int32_t find(int32_t id) const;
  // A slot for adapter `id` that is not in `busy`: the one holding it already (*needs_load false),
  // else a free or the least recently used idle one (*needs_load true; the slot now says `id`).
  // -1 when every slot is busy. Marks the slot used at `tick`.
  int32_t acquire(int32_t id, std::span<const int32_t> busy, uint64_t tick, bool* needs_load);
  // Forgets adapter `id` (unloaded); its slot becomes free.
  void release(int32_t id);
  int32_t id_in(int32_t slot) const { return id_[size_t(slot)]; }

 private:
  std::vector<int32_t> id_;     // adapter id per slot, -1: free
  std::vector<uint64_t> used_;  // tick of the last step that used the slot
};

}  // namespace inferd
