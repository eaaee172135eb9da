// The architecture families inferd serves, one file each in this folder; registry.cc lists them.
#pragma once

#include <string>

#include "model/layers/moe.h"
#include "model/registry.h"

namespace inferd {

const Architecture& llama_architecture();       // LlamaForCausalLM, MistralForCausalLM
const Architecture& qwen2_architecture();       // Qwen2ForCausalLM
const Architecture& qwen2_5_vl_architecture();  // Qwen2_5_VLForConditionalGeneration
const Architecture& qwen3_architecture();       // Qwen3ForCausalLM
const Architecture& gemma3_architecture();      // Gemma3ForCausalLM
const Architecture& phi3_architecture();        // Phi3ForCausalLM
const Architecture& olmo2_architecture();       // Olmo2ForCausalLM
const Architecture& granite_architecture();     // GraniteForCausalLM
const Architecture& qwen3_moe_architecture();   // Qwen3MoeForCausalLM
const Architecture& mixtral_architecture();     // MixtralForCausalLM
const Architecture& gpt_oss_architecture();     // GptOssForCausalLM
const Architecture& eagle3_architecture();      // LlamaForCausalLMEagle3 (speculative heads)

// gpt-oss's MLP at `prefix` ("model.layers.<i>.mlp.") as the shared MoE layer (tests build its
// experts alone from it, through moe_experts_spec).
MoeSpec gpt_oss_moe_spec(const std::string& prefix, const ModelConfig& c);

}  // namespace inferd
