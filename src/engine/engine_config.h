// An EngineConfig resolved against the model executor it will drive: limits checked against the
// executor's workspace, KV pool and top-logprobs capacity, max_model_len filled in.
#pragma once

#include "inferd/engine.h"

namespace inferd {

class ModelExecutor;

// Throws Error naming the setting when the config does not fit the executor.
EngineConfig resolve_config(EngineConfig config, const ModelExecutor& exec);

}  // namespace inferd
