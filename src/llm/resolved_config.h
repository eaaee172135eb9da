// EngineArgs resolved: defaults filled in, every value checked (the errors name the flag), the
// features inferd does not have yet refused. LLM::load builds the model and the engine from this
// one struct: the scheduler's limits are in `engine` alone, which the model reads too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "inferd/engine.h"
#include "inferd/engine_args.h"

namespace inferd {

enum class DeviceKind : uint8_t { kCpu, kCuda };

struct ResolvedConfig {
  // Model.
  std::string model_dir;
  std::string tokenizer_dir;  // --tokenizer, else the model directory
  bool load_tokenizer = true;
  std::vector<std::string> served_model_names;  // never empty
  std::string load_format;                      // as given (the loader parses it)
  DType dtype = DType::kBF16;                   // of dummy weights
  std::string quantization;
  uint64_t seed = 0;
  DeviceKind device = DeviceKind::kCpu;
  int32_t threads = 1;               // CPU threads, >= 1 (a rank's, under tensor parallelism)
  int32_t tensor_parallel_size = 1;  // ranks (threads of this process, CPU backend)
  bool enforce_eager = false;
  bool enable_sleep_mode = false;
  int64_t inject_device_fault_after_steps = -1;  // test-only (ModelArgs)
  // LoRA (max_loras 0: off).
  int32_t max_loras = 0;
  int32_t max_lora_rank = 16;
  int32_t max_cpu_loras = 0;
  std::vector<std::pair<std::string, std::string>> lora_modules;  // (name, path)
  // KV cache.
  int32_t block_size = 16;
  int32_t num_kv_blocks = 0;  // 0: derived from kv_cache_bytes (CPU) or the GPU's free memory
  int64_t kv_cache_bytes = 0;
  double gpu_memory_utilization = 0.9;
  bool kv_cache_fp8 = false;  // --kv-cache-dtype fp8
  // Scheduler limits, prefix caching and the seed; eos_token_ids is filled at load
  // (default_eos_ids).
  EngineConfig engine;
};

// Throws Error naming the flag of the first bad or unsupported value. `gpu_count` is the number
// of visible CUDA GPUs (for --device auto / cuda); `cuda_built` whether this build has the CUDA
// backend.
ResolvedConfig resolve_engine_args(const EngineArgs& args, int gpu_count, bool cuda_built);
// The same with this build and this machine's GPUs.
ResolvedConfig resolve_engine_args(const EngineArgs& args);

// The engine's default EOS ids, the one rule every command uses: the tokenizer's EOS ids when it
// has any (`tokenizer_eos`, empty without a tokenizer), else the model config's eos_token_id.
std::vector<int32_t> default_eos_ids(const std::vector<int32_t>& tokenizer_eos,
                                     const std::vector<int64_t>& model_eos);

}  // namespace inferd
