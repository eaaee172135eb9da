// The flags the commands share: those of a model (bound to the EngineArgs the command hands to
// LLM::load), the HTTP ones of `serve` and `router`, and the demo model's directory.
#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "cli/commands.h"
#include "hub/hub.h"
#include "server/http.h"

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
  app->add_option("--http-header-timeout", header_timeout,
                  "Seconds a client has to send a request's headers once it starts; a slower "
                  "one is cut")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--http-body-timeout", body_timeout,
                  "Seconds a client has to send a request's body after its headers; a slower "
                  "one is cut")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

void HttpFlags::apply_read_timeouts(server::HttpConfig& c) const {
  auto ms = [](double s) { return std::chrono::milliseconds(int64_t(std::max(0.001, s) * 1000)); };
  c.header_timeout = ms(header_timeout);
  c.body_timeout = ms(body_timeout);
}

void expand_vllm_short_flags(std::vector<std::string>& args) {
  for (std::string& a : args) {
    if (a == "--") return;
    if (a == "-tp" || a.starts_with("-tp=")) a = "--tensor-parallel-size" + a.substr(3);
  }
}

namespace {

// vLLM's flags of the features added by later issues (tensor parallelism, speculative decoding,
// LoRA): LLM::load refuses by name what they cannot do yet, instead of the parser calling them
// unknown.
void add_unsupported_flags(CLI::App* app, EngineArgs& a) {
  app->add_option("--tensor-parallel-size", a.parallel.tensor_parallel_size,
                  "Ranks to split the model over (-tp): each holds its shard of every linear and "
                  "of the KV heads; on the CPU backend (--device cpu) one thread group a rank, "
                  "not on GPUs yet (docs/tensor-parallel.md)")
      ->capture_default_str();
  app->add_option("--speculative-config", a.speculative.config,
                  "Speculative decoding as vLLM's JSON, e.g. {\"method\": \"ngram\", "
                  "\"num_speculative_tokens\": 4}; methods ngram, draft_model and eagle3 (with "
                  "\"model\": the draft's or the EAGLE-3 head's path)");
  app->add_flag("--enable-lora", a.lora.enable_lora,
                "Serve LoRA adapters (PEFT directories): a request's model names one");
  app->add_option("--lora-modules", a.lora.lora_modules,
                  "LoRA adapters to load at start, as name=path (or vLLM's JSON "
                  "{\"name\": ..., \"path\": ...})");
  app->add_option("--max-loras", a.lora.max_loras,
                  "LoRA adapters one step may mix (device slots); others wait in host memory")
      ->capture_default_str();
  app->add_option("--max-lora-rank", a.lora.max_lora_rank,
                  "Largest LoRA rank an adapter may have (slots are sized for it)")
      ->capture_default_str();
  app->add_option("--max-cpu-loras", a.lora.max_cpu_loras,
                  "LoRA adapters loaded at once (host memory); 0: max(--max-loras, 64)")
      ->capture_default_str();
}

}  // namespace

void add_task_flags(CLI::App* app, EngineArgs& a) {
  app->add_option("--task", a.model.task,
                  "generate, embed (pooled vectors at /v1/embeddings) or auto: embed when the "
                  "model directory has a sentence-transformers modules.json")
      ->check(CLI::IsMember({"generate", "embed", "auto"}))
      ->capture_default_str();
  app->add_option("--pooler-config,--override-pooler-config", a.model.pooler_config,
                  "Embedding models: pooling over the model's sentence-transformers config, as "
                  "vLLM's JSON: '{\"pooling_type\": \"LAST\"|\"MEAN\"|\"CLS\", "
                  "\"normalize\": true|false}'");
}

std::string default_model_dir() {
  if (const char* env = std::getenv("INFERD_DEFAULT_MODEL"); env != nullptr && *env != '\0')
    return env;
  return INFERD_DEFAULT_MODEL_DIR;
}

void ModelFlags::add_to(CLI::App* app, bool batching, bool model_optional) {
  ModelArgs& m = args.model;
  CacheArgs& c = args.cache;
  SchedulerArgs& s = args.scheduler;
  constexpr const char* kModelHelp =
      "Model: a directory (Hugging Face layout: config.json, *.safetensors), a GGUF file (the "
      "first of a split set), a hub name org/name[:revision] (the Hugging Face cache, downloaded "
      "when missing), or ollama:NAME[:TAG] from the local Ollama store";
  model_opt_ = app->add_option("model_tag", m.model, kModelHelp);
  if (model_optional) {
    model_opt_->description(std::string(kModelHelp) + "; default: the project's demo model (" +
                            default_model_dir() + ", or $INFERD_DEFAULT_MODEL)");
    model_opt_->default_val(default_model_dir());
  } else {
    model_opt_->required();
  }
  app->add_option("--device", m.device, "auto (a GPU when there is one), cpu or cuda")
      ->capture_default_str();
  app->add_option("--gpu-memory-utilization", c.gpu_memory_utilization,
                  "Fraction of GPU memory for weights, activations and the KV cache")
      ->capture_default_str();
  app->add_option(
         "--load-format", m.load_format,
         "auto|safetensors|gguf|dummy (dummy: seeded random weights from the config alone)")
      ->capture_default_str();
  app->add_option("--dtype", m.dtype,
                  "Weight dtype for dummy weights: auto (bfloat16), bfloat16, float16, float32. "
                  "Loaded weights keep their stored dtype on the CPU")
      ->capture_default_str();
  app->add_option("--max-model-len", s.max_model_len,
                  "Longest context (prompt + output); 0 = the model's max_position_embeddings")
      ->capture_default_str();
  app->add_option("--block-size", c.block_size, "Tokens per KV-cache block")->capture_default_str();
  app->add_option("--num-kv-blocks", c.num_kv_blocks,
                  "KV-cache blocks (overrides --kv-cache-memory; 0 = derive)")
      ->capture_default_str();
  app->add_option("--kv-cache-dtype", c.kv_cache_dtype,
                  "auto (the activation dtype) or fp8 / fp8_e4m3: keys and values in float8 "
                  "e4m3 with the checkpoint's k_scale / v_scale (else 1); CPU backend so far")
      ->capture_default_str();
  app->add_option("--kv-cache-memory", c.kv_cache_memory_gib, "KV-cache size on the CPU, in GiB")
      ->capture_default_str();
  app->add_option("--max-num-batched-tokens", s.max_num_batched_tokens,
                  "Most tokens in one forward step (prefill chunk size)")
      ->capture_default_str();
  app->add_option("--seed", m.seed, "Seed for dummy weights and sampling")->capture_default_str();
  if (batching) {
    app->add_option("--max-num-seqs", s.max_num_seqs, "Most sequences running at once")
        ->capture_default_str();
    app->add_option("--long-prefill-token-threshold", s.long_prefill_token_threshold,
                    "A prompt with more tokens left is long: while others run it gets at most "
                    "this many tokens a step (0 = off)")
        ->capture_default_str();
    app->add_option("--max-num-partial-prefills", s.max_num_partial_prefills,
                    "Most prompts given tokens in one step (1 = no limit)")
        ->capture_default_str();
    app->add_option("--max-long-partial-prefills", s.max_long_partial_prefills,
                    "With --long-prefill-token-threshold: most long prompts given tokens in one "
                    "step")
        ->capture_default_str();
  }
  app->add_option("--quantization", m.quantization,
                  "fp8: quantize the linear weights of a bf16/fp16 model to FP8 per output "
                  "channel at load (FP8 checkpoints are used as stored whatever this says); "
                  "awq, gptq, compressed-tensors: the checkpoint's method (checked against its "
                  "quantization_config)")
      ->check(
          CLI::IsMember({"fp8", "awq", "awq_marlin", "gptq", "gptq_marlin", "compressed-tensors"}));
  app->add_flag("--enforce-eager", m.enforce_eager,
                "GPU: run every step eagerly (no CUDA graphs for decode steps)");
  app->add_option("--threads", m.threads, "CPU threads (0 = one per core)")->capture_default_str();
  app->add_option("--hf-token", hf_token_,
                  "Hugging Face token for gated or private models named by hub name (default: "
                  "$HF_TOKEN)");
  app->parse_complete_callback([this] { resolve_hub_names(); });
  add_unsupported_flags(app, args);
}

void ModelFlags::resolve_hub_names() {
  ModelArgs& m = args.model;
  if (hub::is_hub_name(m.model)) {
    const std::string name = m.model;
    hub::HubOptions opts = hub::options_from_env(hf_token_);
    opts.config_only = m.load_format == "dummy";  // seeded random weights: no download of them
    // The weights load as they arrive; LLM::load waits for every file to be checked.
    hub::Resolved r = hub::resolve_overlapped(*hub::parse_hub_name(name), opts);
    m.model = r.dir;
    pending_download_ = std::move(r.pending);
    if (m.served_model_names.empty()) m.served_model_names = {name};
  }
  if (!m.tokenizer.empty() && hub::is_hub_name(m.tokenizer))
    m.tokenizer = hub::resolve(*hub::parse_hub_name(m.tokenizer), hub::options_from_env(hf_token_));
}

}  // namespace inferd::cli
