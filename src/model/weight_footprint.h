// The bytes of weights a model holds, and the bytes one decode token must read (its bandwidth
// floor): every weight of a dense model, but of an MoE layer only the router and the
// num_experts_per_tok experts a token is routed to (issue 27: "the active-weights bandwidth
// floor"). From the config's shapes; norms and biases are left out (they are < 0.1 %).
#pragma once

#include <cstdint>

#include "model/config.h"

namespace inferd {

struct WeightFootprint {
  int64_t total_bytes = 0;
  int64_t active_bytes = 0;  // read by one decode token (one embedding row, not the table)
};

// `linear_bytes`: bytes per element of the linear and expert weights (2 for bf16, 1 for FP8);
// embeddings and lm_head count at `embed_bytes`.
WeightFootprint weight_footprint(const ModelConfig& c, int64_t linear_bytes, int64_t embed_bytes);

}  // namespace inferd
