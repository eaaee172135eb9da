// EngineArgs: everything that configures a model and the engine serving it, in one struct grouped
// as vLLM's EngineArgs groups its flags (model, cache, scheduler, parallel, speculative, lora).
// Each field is the value of the `inferd` flag named beside it, and each limit exists here once:
// LLM::load (inferd/llm.h) resolves these into the one config the model and the engine both
// read. A field inferd cannot honour yet (several GPUs, speculative decoding, LoRA) is an error at
// load naming the flag and the issue that adds it, never ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace inferd {

// What to load and where to run it (vLLM's model, load and device flags).
struct ModelArgs {
  std::string model;                 // the model directory (config.json, *.safetensors)
  std::string tokenizer;             // --tokenizer: its directory; "": the model's
  bool skip_tokenizer_init = false;  // no tokenizer: the engine runs on token ids alone
  // --served-model-name: the names of the model in an API; empty: the model argument.
  std::vector<std::string> served_model_names;
  std::string load_format = "auto";  // --load-format: auto | safetensors | dummy
  std::string dtype = "auto";        // --dtype: dummy weights' dtype (auto: bfloat16)
  std::string quantization;          // --quantization: "" (as stored) | fp8
  uint64_t seed = 0;                 // --seed: dummy weights and unseeded requests' sampling
  std::string device = "auto";       // --device: auto (a GPU when there is one) | cpu | cuda
  int32_t threads = 0;               // --threads: CPU threads (0: one per core)
  bool enforce_eager = false;        // --enforce-eager: no CUDA graphs for decode steps
  // --enable-sleep-mode: the engine can sleep (Engine::sleep; serve's POST /sleep, /wake_up).
  bool enable_sleep_mode = false;
  // Test-only (serve's hidden --debug-inject-device-fault after_steps=N): the device fails after
  // N model steps. Negative: never.
  int64_t debug_inject_device_fault_after_steps = -1;
  // --task: generate | embed | auto (embed when the model directory has a sentence-transformers
  // modules.json, else generate).
  std::string task = "auto";
  // --pooler-config: vLLM's JSON over the model's pooling (embed only):
  // {"pooling_type": "LAST" | "MEAN" | "CLS", "normalize": true | false}. "": the model's.
  std::string pooler_config;
};

// The paged KV cache.
struct CacheArgs {
  int32_t block_size = 16;              // --block-size: tokens per KV block
  int32_t num_kv_blocks = 0;            // --num-kv-blocks (0: derived from the memory below)
  double kv_cache_memory_gib = 1.0;     // --kv-cache-memory: the pool's size on the CPU, GiB
  double gpu_memory_utilization = 0.9;  // --gpu-memory-utilization: GPU share for all of it
  bool enable_prefix_caching = true;    // --enable-prefix-caching / --no-enable-prefix-caching
  // --kv-cache-dtype: auto (the activation dtype) or fp8 / fp8_e4m3 (float8 e4m3 with the
  // checkpoint's per-tensor k_scale / v_scale, else 1; vLLM's flag).
  std::string kv_cache_dtype = "auto";
};

// The scheduler's limits.
struct SchedulerArgs {
  int32_t max_num_seqs = 256;             // --max-num-seqs: sequences running at once
  int32_t max_num_batched_tokens = 2048;  // --max-num-batched-tokens: tokens in one step
  int32_t max_model_len = 0;           // --max-model-len (0: the model's, capped by the KV cache)
  bool enable_chunked_prefill = true;  // off: a prompt runs only when it fits one step
  // Fair chunked prefill (EngineConfig's fields): --long-prefill-token-threshold (0: off),
  // --max-num-partial-prefills, --max-long-partial-prefills.
  int32_t long_prefill_token_threshold = 0;
  int32_t max_num_partial_prefills = 1;
  int32_t max_long_partial_prefills = 1;
  int32_t max_queue = 4096;               // --max-queue: requests waiting (0: no limit)
  double max_queue_wait_ms = 0;           // --max-queue-wait-ms: expected wait bound (0: off)
  int32_t max_logprobs = 20;              // --max-logprobs: largest logprobs / top_logprobs
  double grammar_compile_timeout_s = 10;  // --grammar-compile-timeout (0: no limit)
  // --sleep-wait-seconds: a request arriving while the model sleeps waits this long for a wake
  // (0: 503 at once). Needs --enable-sleep-mode.
  double sleep_wait_seconds = 0;
};

// Several GPUs (issue 33).
struct ParallelArgs {
  int32_t tensor_parallel_size = 1;  // --tensor-parallel-size / -tp
};

// Speculative decoding (issue 26).
struct SpeculativeArgs {
  std::string config;  // --speculative-config: vLLM's JSON ({"method": ..., ...}); "": off
};

// LoRA adapters (issue 29), vLLM's flags.
struct LoraArgs {
  bool enable_lora = false;               // --enable-lora
  std::vector<std::string> lora_modules;  // --lora-modules name=path ... (or vLLM's JSON form)
  int32_t max_loras = 1;                  // --max-loras: adapters one step may mix (GPU slots)
  int32_t max_lora_rank = 16;             // --max-lora-rank: largest rank of any module
  int32_t max_cpu_loras = 0;  // --max-cpu-loras: adapters loaded at once (0: max(max_loras, 64))
};

struct EngineArgs {
  ModelArgs model;
  CacheArgs cache;
  SchedulerArgs scheduler;
  ParallelArgs parallel;
  SpeculativeArgs speculative;
  LoraArgs lora;
};

}  // namespace inferd
