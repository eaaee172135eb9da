// LoRA slot bookkeeping (lora_slots.h).
#include "runner/lora_slots.h"

#include <algorithm>

namespace inferd {

int32_t LoraSlotTable::find(int32_t id) const {
  for (size_t s = 0; s < id_.size(); ++s)
    if (id_[s] == id) return int32_t(s);
  return -1;
}

int32_t LoraSlotTable::acquire(int32_t id, std::span<const int32_t> busy, uint64_t tick,
                               bool* needs_load) {
  int32_t slot = find(id);
  *needs_load = slot < 0;
  if (slot < 0) {
    const auto is_busy = [&](int32_t s) {
      return std::find(busy.begin(), busy.end(), s) != busy.end();
    };
    for (int32_t s = 0; s < num_slots() && slot < 0; ++s)
      if (id_[size_t(s)] < 0 && !is_busy(s)) slot = s;
    if (slot < 0) {
      for (int32_t s = 0; s < num_slots(); ++s) {
        if (is_busy(s)) continue;
        if (slot < 0 || used_[size_t(s)] < used_[size_t(slot)]) slot = s;
      }
    }
    if (slot < 0) return -1;
    id_[size_t(slot)] = id;
  }
  used_[size_t(slot)] = tick;
  return slot;
}

void LoraSlotTable::release(int32_t id) {
  const int32_t s = find(id);
  if (s >= 0) id_[size_t(s)] = -1;
}

}  // namespace inferd
