#include <cstdlib>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "core/logging.h"
#ifdef INFERD_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_device.h"
#endif

#ifndef INFERD_DEFAULT_MODEL_DIR
#define INFERD_DEFAULT_MODEL_DIR "models/demo"
#endif

namespace inferd::cli {

std::vector<std::string> split_commas(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = s.find(',', i);
      if (j == std::string::npos) j = s.size();
      std::string part = s.substr(i, j - i);
      while (!part.empty() && part.front() == ' ') part.erase(part.begin());
      while (!part.empty() && part.back() == ' ') part.pop_back();
      if (!part.empty()) out.push_back(part);
      i = j + 1;
    }
  }
  return out;
}

void HttpFlags::add_to(CLI::App* app) {
  app->add_option("--max-request-body-bytes", max_request_body_bytes,
                  "Largest request body; beyond, 413")
      ->capture_default_str();
  app->add_option("--io-threads", io_threads, "HTTP io threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app->add_option("--drain-timeout", drain_timeout,
                  "On SIGTERM, seconds in-flight requests get to finish")
      ->capture_default_str();
  app->add_option("--keep-alive-timeout", keep_alive_timeout,
                  "Seconds an idle keep-alive connection stays open")
      ->capture_default_str();
}

std::string default_model_dir() {
  if (const char* env = std::getenv("INFERD_DEFAULT_MODEL"); env != nullptr && *env != '\0')
    return env;
  return INFERD_DEFAULT_MODEL_DIR;
}

void ModelFlags::add_to(CLI::App* app, bool batching, bool model_optional) {
  model_opt_ = app->add_option("model", model,
                               "Model directory (Hugging Face layout: config.json, *.safetensors)");
  if (model_optional) {
    model_opt_->description(
        "Model directory (Hugging Face layout: config.json, *.safetensors); default: the "
        "project's demo model (" +
        default_model_dir() + ", or $INFERD_DEFAULT_MODEL)");
    model_opt_->default_val(default_model_dir());
  } else {
    model_opt_->required();
  }
  app->add_option("--device", device, "auto (a GPU when there is one), cpu or cuda")
      ->capture_default_str();
  app->add_option("--gpu-memory-utilization", gpu_memory_utilization,
                  "Fraction of GPU memory for weights, activations and the KV cache")
      ->capture_default_str();
  app->add_option("--load-format", load_format,
                  "auto|safetensors|dummy (dummy: seeded random weights from config.json alone)")
      ->capture_default_str();
  app->add_option("--dtype", dtype,
                  "Weight dtype for dummy weights: auto (bfloat16), bfloat16, float16, float32. "
                  "Loaded weights keep their stored dtype on the CPU")
      ->capture_default_str();
  app->add_option("--max-model-len", max_model_len,
                  "Longest context (prompt + output); 0 = the model's max_position_embeddings")
      ->capture_default_str();
  app->add_option("--block-size", block_size, "Tokens per KV-cache block")->capture_default_str();
  app->add_option("--num-kv-blocks", num_kv_blocks,
                  "KV-cache blocks (overrides --kv-cache-memory; 0 = derive)")
      ->capture_default_str();
  app->add_option("--kv-cache-memory", kv_cache_memory_gib, "KV-cache size on the CPU, in GiB")
      ->capture_default_str();
  app->add_option("--max-num-batched-tokens", max_num_batched_tokens,
                  "Most tokens in one forward step (prefill chunk size)")
      ->capture_default_str();
  app->add_option("--seed", seed, "Seed for dummy weights and sampling")->capture_default_str();
  if (batching) {
    app->add_option("--max-num-seqs", max_num_seqs, "Most sequences running at once")
        ->capture_default_str();
  }
  app->add_option("--quantization", quantization,
                  "fp8: quantize the linear weights of a bf16/fp16 model to FP8 per output "
                  "channel at load (FP8 checkpoints are used as stored whatever this says)")
      ->check(CLI::IsMember({"fp8"}));
  app->add_flag("--enforce-eager", enforce_eager,
                "GPU: run every step eagerly (no CUDA graphs for decode steps)");
  app->add_option("--threads", threads, "CPU threads (0 = one per core)")->capture_default_str();
}

RunnerOptions ModelFlags::options() const {
  RunnerOptions o;
  o.load.format = parse_load_format(load_format);
  o.load.dummy_seed = seed;
  o.load.dummy_dtype = dtype == "auto" ? DType::kBF16 : parse_dtype(dtype);
  o.block_size = block_size;
  o.num_kv_blocks = num_kv_blocks;
  if (kv_cache_memory_gib <= 0)
    fail("--kv-cache-memory must be positive, got {}", kv_cache_memory_gib);
  o.kv_cache_bytes = int64_t(kv_cache_memory_gib * double(1ll << 30));
  o.max_num_batched_tokens = max_num_batched_tokens;
  o.max_model_len = max_model_len;
  o.gpu_memory_utilization = gpu_memory_utilization;
  if (max_num_seqs < 1) fail("--max-num-seqs must be >= 1, got {}", max_num_seqs);
  o.max_num_seqs = max_num_seqs;
  o.enforce_eager = enforce_eager;
  o.load.quantization = quantization;
  o.max_top_logprobs = max_logprobs;
  return o;
}

std::unique_ptr<ModelRunner> ModelFlags::load() const {
  if (threads < 0) fail("--threads must be >= 0, got {}", threads);
  const int n = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::unique_ptr<Backend> backend;
#ifdef INFERD_HAVE_CUDA
  const bool have_gpu = cuda::device_count() > 0;
#else
  const bool have_gpu = false;
#endif
  if (device == "cuda" || (device == "auto" && have_gpu)) {
#ifdef INFERD_HAVE_CUDA
    if (!have_gpu) fail("--device cuda: no CUDA GPU is visible");
    backend = make_cuda_backend(0);
#else
    fail(
        "--device cuda: this build of inferd has no CUDA backend (nvcc was not found at build "
        "time)");
#endif
  } else if (device == "cpu" || device == "auto") {
    backend = make_cpu_backend(n);
  } else {
    fail("unknown --device '{}': expected auto, cpu or cuda", device);
  }
  auto m = std::make_unique<ModelRunner>(model, options(), std::move(backend));
  const auto& c = m->config();
  LOG_INFO("loaded {} ({} layers, hidden {}, {} heads / {} kv heads, vocab {}) on {}",
           c.architecture, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size,
           m->backend().name());
  return m;
}

}  // namespace inferd::cli
