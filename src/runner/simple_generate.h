// Greedy generation of one sequence straight on a ModelExecutor, with its own contiguous block
// table. Used by `inferd run` until the engine (continuous batching) serves it, and by tests.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "runner/executor.h"

namespace inferd {

// Prefills `prompt` in chunks of at most `chunk` tokens, then decodes greedily `max_tokens` tokens
// (stopping early at any id in `stop_ids`). `on_token` (optional) sees each new id as it comes.
// `adapter_id`: the LoRA adapter the sequence runs with (-1: the base model).
std::vector<int32_t> greedy_generate(ModelExecutor& model, const std::vector<int32_t>& prompt,
                                     int32_t max_tokens, int32_t chunk,
                                     const std::vector<int32_t>& stop_ids = {},
                                     const std::function<void(int32_t)>& on_token = nullptr,
                                     int32_t adapter_id = -1);

// Index of the largest logit (the first one on ties).
int32_t argmax(const float* logits, int32_t n);

}  // namespace inferd
