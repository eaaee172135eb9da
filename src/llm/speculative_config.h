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

// A draft model must share the target's vocabulary: when both directories have a
// tokenizer.json, their vocabularies (model.vocab and added_tokens: token text -> id) must be the
// same; an Error names both files and the first difference. (The sizes of the two models'
// vocabularies are compared when the engine starts.) A GGUF file or a directory without
// tokenizer.json is not checked here.
void check_draft_vocabulary(const std::string& target_dir, const std::string& draft_dir);

}  // namespace inferd
