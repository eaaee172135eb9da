// --speculative-config: vLLM's JSON for speculative decoding (vLLM's SpeculativeConfig:
// "method", "model", "num_speculative_tokens", "prompt_lookup_min", "prompt_lookup_max",
// "draft_tensor_parallel_size", "disable_by_batch_size") read into EngineConfig::speculative.
// Every key inferd does not know, every bad value and every method it cannot run yet is an Error
// naming --speculative-config and the field.
#pragma once

#include <string>

#include "inferd/engine.h"

namespace inferd {

// "" -> speculation off. Throws Error naming the field.
SpeculativeConfig parse_speculative_config(const std::string& json_text);

}  // namespace inferd
