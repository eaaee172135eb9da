// EngineArgs -> ResolvedConfig: defaults, checks naming the flag, and the refusal of what inferd
// cannot do yet (each naming the issue that adds it).
#include <algorithm>
#include <thread>

#include "core/error.h"
#include "llm/lora_registry.h"
#include "llm/pooling_config.h"
#include "llm/resolved_config.h"
#include "llm/speculative_config.h"
#include "model/loader/model_source.h"
#ifdef INFERD_HAVE_CUDA
#include "backend/cuda/cuda_device.h"
#endif

namespace inferd {

namespace {

// Flags of features that exist in vLLM and come to inferd with a later issue: refused by name.
void refuse_unsupported(const EngineArgs& a) {
  const ParallelArgs& p = a.parallel;
  if (p.tensor_parallel_size < 1)
    fail("--tensor-parallel-size must be >= 1, got {}", p.tensor_parallel_size);
}

// --tensor-parallel-size: ranks on the CPU backend (threads of this process); what the ranks
// cannot do yet is refused by name.
void resolve_parallel(const EngineArgs& a, int gpu_count, ResolvedConfig& rc) {
  const int32_t n = a.parallel.tensor_parallel_size;
  if (n > 64) fail("--tensor-parallel-size must be <= 64, got {}", n);
  rc.tensor_parallel_size = n;
  if (n == 1) return;
  if (rc.device == DeviceKind::kCuda) {
    const std::string gpus =
        gpu_count < n ? fmt::format("; this machine has {} GPU(s) for {} ranks", gpu_count, n) : "";
    fail(
        "--tensor-parallel-size {} with --device {}: tensor parallelism runs on the CPU backend "
        "only so far (--device cpu); the GPU communicator (NCCL) is not built yet{}",
        n, a.model.device, gpus);
  }
  if (a.lora.enable_lora)
    fail("--enable-lora with --tensor-parallel-size {}: LoRA adapters are not sharded yet", n);
  if (rc.enable_sleep_mode)
    fail("--enable-sleep-mode with --tensor-parallel-size {}: not supported yet", n);
  // The machine's threads shared among the ranks.
  rc.threads = std::max(1, rc.threads / n);
}

void resolve_lora(const LoraArgs& l, ResolvedConfig& rc) {
  const LoraArgs unset;
  if (!l.enable_lora) {
    if (!l.lora_modules.empty()) fail("--lora-modules needs --enable-lora");
    if (l.max_loras != unset.max_loras) fail("--max-loras needs --enable-lora");
    if (l.max_lora_rank != unset.max_lora_rank) fail("--max-lora-rank needs --enable-lora");
    if (l.max_cpu_loras != unset.max_cpu_loras) fail("--max-cpu-loras needs --enable-lora");
    return;
  }
  if (l.max_loras < 1) fail("--max-loras must be >= 1, got {}", l.max_loras);
  if (l.max_lora_rank < 1 || l.max_lora_rank > 512)
    fail("--max-lora-rank must be in 1..512, got {}", l.max_lora_rank);
  if (l.max_cpu_loras < 0) fail("--max-cpu-loras must be >= 0, got {}", l.max_cpu_loras);
  if (l.max_cpu_loras > 0 && l.max_cpu_loras < l.max_loras)
    fail("--max-cpu-loras ({}) must be >= --max-loras ({})", l.max_cpu_loras, l.max_loras);
  rc.max_loras = l.max_loras;
  rc.max_lora_rank = l.max_lora_rank;
  rc.max_cpu_loras = l.max_cpu_loras > 0 ? l.max_cpu_loras : std::max(l.max_loras, 64);
  for (const std::string& m : l.lora_modules) rc.lora_modules.push_back(parse_lora_module(m));
  if (int32_t(rc.lora_modules.size()) > rc.max_cpu_loras)
    fail("--lora-modules names {} adapters, more than --max-cpu-loras {}", rc.lora_modules.size(),
         rc.max_cpu_loras);
}

DeviceKind resolve_device(const std::string& device, int gpu_count, bool cuda_built) {
  if (device == "cpu") return DeviceKind::kCpu;
  if (device == "auto") return cuda_built && gpu_count > 0 ? DeviceKind::kCuda : DeviceKind::kCpu;
  if (device != "cuda") fail("unknown --device '{}': expected auto, cpu or cuda", device);
  if (!cuda_built)
    fail(
        "--device cuda: this build of inferd has no CUDA backend (nvcc was not found at build "
        "time)");
  if (gpu_count <= 0) fail("--device cuda: no CUDA GPU is visible");
  return DeviceKind::kCuda;
}

void resolve_model(const ModelArgs& m, int gpu_count, bool cuda_built, ResolvedConfig& rc) {
  if (m.model.empty()) fail("no model given: expected a model directory or GGUF file");
  // An Ollama name reads its GGUF blob; the name the user gave stays the served name.
  rc.model_dir = resolve_model_source(m.model);
  rc.tokenizer_dir = m.tokenizer.empty() ? rc.model_dir : resolve_model_source(m.tokenizer);
  rc.load_tokenizer = !m.skip_tokenizer_init;
  rc.served_model_names =
      m.served_model_names.empty() ? std::vector<std::string>{m.model} : m.served_model_names;
  rc.load_format = m.load_format;
  if (m.dtype != "auto") {
    try {
      rc.dtype = parse_dtype(m.dtype);
    } catch (const Error& e) {
      fail("--dtype: {}", e.what());
    }
  }
  rc.quantization = m.quantization;
  rc.seed = m.seed;
  rc.device = resolve_device(m.device, gpu_count, cuda_built);
  if (m.threads < 0) fail("--threads must be >= 0, got {}", m.threads);
  rc.threads =
      m.threads > 0 ? m.threads : int32_t(std::max(1u, std::thread::hardware_concurrency()));
  rc.enforce_eager = m.enforce_eager;
  rc.enable_sleep_mode = m.enable_sleep_mode;
  rc.inject_device_fault_after_steps = m.debug_inject_device_fault_after_steps;
  resolve_task_and_pooling(rc.model_dir, m.task, m.pooler_config, rc.engine);
}

void resolve_cache(const CacheArgs& c, ResolvedConfig& rc) {
  if (c.block_size <= 0 || c.block_size > 1024)
    fail("--block-size {} is out of range: expected 1..1024", c.block_size);
  if (c.num_kv_blocks < 0)
    fail("--num-kv-blocks must be >= 0 (0: derive), got {}", c.num_kv_blocks);
  if (!(c.kv_cache_memory_gib > 0))
    fail("--kv-cache-memory must be positive, got {}", c.kv_cache_memory_gib);
  if (!(c.gpu_memory_utilization > 0 && c.gpu_memory_utilization <= 1))
    fail("--gpu-memory-utilization must be in (0, 1], got {}", c.gpu_memory_utilization);
  rc.block_size = c.block_size;
  rc.num_kv_blocks = c.num_kv_blocks;
  rc.kv_cache_bytes = int64_t(c.kv_cache_memory_gib * double(1ll << 30));
  rc.gpu_memory_utilization = c.gpu_memory_utilization;
  rc.engine.enable_prefix_caching = c.enable_prefix_caching;
  const std::string& kvd = c.kv_cache_dtype;
  if (kvd == "fp8_e5m2")
    fail("--kv-cache-dtype fp8_e5m2 is not supported: the FP8 KV cache is e4m3 (fp8, fp8_e4m3)");
  if (kvd != "auto" && kvd != "fp8" && kvd != "fp8_e4m3")
    fail("--kv-cache-dtype '{}' is not supported: expected auto, fp8 or fp8_e4m3", kvd);
  rc.kv_cache_fp8 = kvd != "auto";
}

void resolve_scheduler(const SchedulerArgs& s, ResolvedConfig& rc) {
  if (s.max_num_seqs < 1) fail("--max-num-seqs must be >= 1, got {}", s.max_num_seqs);
  if (s.max_num_batched_tokens <= 0)
    fail("--max-num-batched-tokens must be positive, got {}", s.max_num_batched_tokens);
  if (s.max_model_len < 0)
    fail("--max-model-len must be >= 0 (0: the model's), got {}", s.max_model_len);
  if (s.long_prefill_token_threshold < 0)
    fail("--long-prefill-token-threshold must be >= 0 (0: off), got {}",
         s.long_prefill_token_threshold);
  if (s.max_num_partial_prefills < 1)
    fail("--max-num-partial-prefills must be >= 1, got {}", s.max_num_partial_prefills);
  if (s.max_long_partial_prefills < 1)
    fail("--max-long-partial-prefills must be >= 1, got {}", s.max_long_partial_prefills);
  if (s.max_long_partial_prefills > s.max_num_partial_prefills)
    fail("--max-long-partial-prefills ({}) must be <= --max-num-partial-prefills ({})",
         s.max_long_partial_prefills, s.max_num_partial_prefills);
  if (s.max_queue < 0) fail("--max-queue must be >= 0, got {}", s.max_queue);
  if (!(s.max_queue_wait_ms >= 0))
    fail("--max-queue-wait-ms must be >= 0 (0: off), got {}", s.max_queue_wait_ms);
  if (s.max_logprobs < 0) fail("--max-logprobs must be >= 0, got {}", s.max_logprobs);
  if (!(s.grammar_compile_timeout_s >= 0))
    fail("--grammar-compile-timeout must be >= 0 seconds, got {}", s.grammar_compile_timeout_s);
  if (!(s.sleep_wait_seconds >= 0))
    fail("--sleep-wait-seconds must be >= 0 (0: 503 at once), got {}", s.sleep_wait_seconds);
  if (s.sleep_wait_seconds > 0 && !rc.enable_sleep_mode)
    fail("--sleep-wait-seconds {} needs --enable-sleep-mode", s.sleep_wait_seconds);
  EngineConfig& e = rc.engine;
  e.max_num_seqs = s.max_num_seqs;
  e.max_num_batched_tokens = s.max_num_batched_tokens;
  e.max_model_len = s.max_model_len;
  e.enable_chunked_prefill = s.enable_chunked_prefill;
  e.long_prefill_token_threshold = s.long_prefill_token_threshold;
  e.max_num_partial_prefills = s.max_num_partial_prefills;
  e.max_long_partial_prefills = s.max_long_partial_prefills;
  e.max_queue = s.max_queue;
  e.max_queue_wait_s = s.max_queue_wait_ms / 1e3;
  e.max_logprobs = s.max_logprobs;
  e.grammar_compile_timeout_s = s.grammar_compile_timeout_s;
  e.sleep_wait_s = s.sleep_wait_seconds;
}

}  // namespace

ResolvedConfig resolve_engine_args(const EngineArgs& args, int gpu_count, bool cuda_built) {
  refuse_unsupported(args);
  ResolvedConfig rc;
  resolve_model(args.model, gpu_count, cuda_built, rc);
  resolve_cache(args.cache, rc);
  resolve_scheduler(args.scheduler, rc);
  resolve_lora(args.lora, rc);
  resolve_parallel(args, gpu_count, rc);
  rc.engine.seed = args.model.seed;
  rc.engine.speculative = parse_speculative_config(args.speculative.config);
  return rc;
}

ResolvedConfig resolve_engine_args(const EngineArgs& args) {
#ifdef INFERD_HAVE_CUDA
  // Asked only when a GPU may be wanted: counting devices initializes the CUDA driver.
  const bool may_use_gpu = args.model.device == "auto" || args.model.device == "cuda";
  const int gpu_count = may_use_gpu ? cuda::device_count() : 0;
  if (args.model.device == "cuda" && gpu_count <= 0)
    fail("--device cuda: no CUDA GPU is visible ({})", cuda::device_count_problem());
  return resolve_engine_args(args, gpu_count, true);
#else
  return resolve_engine_args(args, 0, false);
#endif
}

std::vector<int32_t> default_eos_ids(const std::vector<int32_t>& tokenizer_eos,
                                     const std::vector<int64_t>& model_eos) {
  if (!tokenizer_eos.empty()) return tokenizer_eos;
  std::vector<int32_t> out;
  for (int64_t e : model_eos) out.push_back(int32_t(e));
  return out;
}

}  // namespace inferd
