// `inferd serve MODEL`: the OpenAI-compatible HTTP server (flag names follow vLLM's).
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/serve_multi.h"
#include "cli/weights_progress.h"
#include "core/error.h"
#include "core/logging.h"
#include "inferd/engine.h"
#include "inferd/llm.h"
#include "jinja/chat_template.h"
#include "server/api_keys.h"
#include "server/engine_generator.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

namespace inferd::cli {

// Raises the open-file limit (one descriptor per connection: thousands of streams) and blocks
// SIGTERM / SIGINT, before any other thread starts so that every thread inherits the mask: they
// are taken by the main thread alone (sigwait).
sigset_t prepare_process() {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  return sigs;
}

namespace {

struct ServeArgs {
  ModelFlags model;  // the engine's flags too: --tokenizer, --max-queue, --max-logprobs, ...
  std::string host = "0.0.0.0";
  int port = 8000;
  std::vector<std::string> api_keys;
  std::string api_key_file;
  std::string chat_template;
  double request_timeout = 0;
  std::vector<std::string> allowed_origins{"*"};
  int64_t rate_limit_rpm = 0;
  int64_t rate_limit_tpm = 0;
  int64_t max_concurrent_per_key = 0;
  server::RequestLimits limits;
  server::MediaLimits media;
  HttpFlags http;
  bool no_ui = false;
  bool log_prompts = false;
  size_t max_log_len = 512;
  bool enable_auto_tool_choice = false;
  std::string tool_call_parser;
  std::string reasoning_parser;
  bool trust_request_chat_template = false;
  bool enable_runtime_lora_updating = false;  // /v1/load_lora_adapter, /v1/unload_lora_adapter
  size_t max_stored_responses = server::ResponsesStoreConfig{}.max_responses;
  size_t max_stored_responses_mb = server::ResponsesStoreConfig{}.max_bytes >> 20;
  std::string inject_device_fault;  // test-only: --debug-inject-device-fault after_steps=N
  MultiServeFlags multi;            // --model (repeated), --models, --memory-budget, ...
  // The command line named the model (the argument, or one --model).
  bool model_named() const { return model.model_given() || multi.models.size() == 1; }
};

server::ChatParsing chat_parsing(const ServeArgs& a) {
  server::ChatParsing parsing;
  parsing.enable_auto_tool_choice = a.enable_auto_tool_choice;
  if (!a.tool_call_parser.empty()) {
    parsing.tool_call_parser = server::tool_call_parser_from_name(a.tool_call_parser);
    if (!parsing.tool_call_parser)
      fail("--tool-call-parser: unknown parser '{}': expected one of {}", a.tool_call_parser,
           server::tool_call_parser_names());
  }
  if (a.enable_auto_tool_choice && !parsing.tool_call_parser)
    fail("--enable-auto-tool-choice needs --tool-call-parser (one of {})",
         server::tool_call_parser_names());
  if (!a.reasoning_parser.empty()) {
    parsing.reasoning_parser = server::reasoning_parser_from_name(a.reasoning_parser);
    if (!parsing.reasoning_parser)
      fail("--reasoning-parser: unknown parser '{}': expected one of {}", a.reasoning_parser,
           server::reasoning_parser_names());
  }
  return parsing;
}

// Waits for SIGTERM / SIGINT (returns it) or a device fault that stopped the engine (returns 0),
// looking for the fault every 100 ms.
int wait_for_signal_or_fault(const sigset_t& sigs, const Engine& engine) {
  while (true) {
    const timespec tick{0, 100'000'000};
    const int sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig > 0) return sig;
    if (!engine.device_fault().empty()) return 0;
  }
}

// --debug-inject-device-fault after_steps=N: the number of model steps before the device fails.
int64_t parse_fault_injection(const std::string& spec) {
  constexpr std::string_view kKey = "after_steps=";
  int64_t n = -1;
  if (spec.rfind(kKey, 0) == 0) {
    try {
      size_t used = 0;
      n = std::stoll(spec.substr(kKey.size()), &used);
      if (used != spec.size() - kKey.size()) n = -1;
    } catch (const std::exception&) {
      n = -1;
    }
  }
  if (n < 0) fail("--debug-inject-device-fault '{}': expected after_steps=N with N >= 0", spec);
  return n;
}

std::unique_ptr<LLM> load_llm(const ServeArgs& a) {
  EngineArgs args = a.model.args;
  if (!a.inject_device_fault.empty())
    args.model.debug_inject_device_fault_after_steps = parse_fault_injection(a.inject_device_fault);
  if (args.model.served_model_names.empty() && !a.model_named())
    args.model.served_model_names = {"demo", "default"};
  LLMOptions options;
  options.load_chat_template = true;
  options.chat_template = a.chat_template;
  options.on_chat_template_error = [&a](const Error& e) {
    if (!a.chat_template.empty()) throw;  // the one asked for must load
    LOG_WARN(
        "no chat template ({}); /v1/chat/completions will answer 400 until one is given "
        "with --chat-template",
        e.what());
  };
  options.before_weights = [](const EngineArgs& ea) {
    return read_weights_with_progress(ea.model.model, ea.model.load_format);
  };
  return LLM::load(args, options);
}

server::ServerConfig server_config(const ServeArgs& a, const LLM& llm) {
  server::ServerConfig sc;
  sc.http.host = a.host;
  sc.http.port = uint16_t(a.port);
  sc.http.io_threads = a.http.io_threads;
  sc.http.max_body_bytes = a.http.max_request_body_bytes;
  sc.http.keep_alive_timeout =
      std::chrono::milliseconds(int64_t(std::max(0.001, a.http.keep_alive_timeout) * 1000));
  a.http.apply_read_timeouts(sc.http);
  sc.served_model_names = llm.served_model_names();
  // The demo model answers to "default" too, without a second /v1/models entry.
  if (a.model.args.model.served_model_names.empty() && !a.model_named()) {
    std::erase(sc.served_model_names, std::string("default"));
    sc.model_aliases = {"default"};
  }
  sc.trust_request_chat_template = a.trust_request_chat_template;
  sc.media = a.media;
  sc.lora = llm.lora();
  if (a.enable_runtime_lora_updating && !sc.lora)
    fail("--enable-runtime-lora-updating needs --enable-lora");
  sc.enable_runtime_lora_updating = a.enable_runtime_lora_updating;
  sc.model_root = a.model.model();
  sc.allowed_origins = split_commas(a.allowed_origins);
  sc.rate_limit_rpm = a.rate_limit_rpm;
  sc.rate_limit_tpm = a.rate_limit_tpm;
  sc.max_concurrent_per_key = a.max_concurrent_per_key;
  sc.request_limits = a.limits;
  sc.request_timeout_s = a.request_timeout;
  sc.drain_timeout_s = a.http.drain_timeout;
  sc.enable_sleep_mode = a.model.args.model.enable_sleep_mode;
  sc.ui = !a.no_ui;
  sc.log_prompts = a.log_prompts;
  sc.log_prompt_max_bytes = a.max_log_len;
  const ModelSummary m = llm.summary();
  sc.cache_config_info = {
      {"block_size", std::to_string(m.block_size)},
      {"cache_dtype", a.model.args.cache.kv_cache_dtype},
      {"enable_prefix_caching", a.model.args.cache.enable_prefix_caching ? "True" : "False"},
      {"num_gpu_blocks", std::to_string(m.num_kv_blocks)}};
  sc.responses_store.max_responses = a.max_stored_responses;
  sc.responses_store.max_bytes = a.max_stored_responses_mb << 20;
  return sc;
}

// One tiny generation (an embedding with --task embed) through the whole engine, before /ready
// says yes.
void warm_up(Engine& engine, const Tokenizer& tokenizer) {
  GenerateRequest w;
  w.request_id = "warmup";
  w.prompt_token_ids = {tokenizer.bos_id().value_or(0)};
  if (engine.config().task == ModelTask::kEmbed) {
    w.pooling = PoolingParams{};
  } else {
    w.params.max_tokens = 1;
    w.params.temperature = 0;
  }
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  engine.submit(std::move(w), [done](RequestOutput&& out) {
    if (out.finished) done->set_value();
  });
  fut.wait();
}

// One summary of what runs.
void log_ready(const ModelSummary& m, const EngineConfig& ec, const server::ServerConfig& sc,
               uint16_t port) {
  std::string task;
  if (ec.task == ModelTask::kEmbed)
    task = fmt::format("; embeddings: {} pooling{}{}", to_string(ec.pooling.type),
                       ec.pooling.normalize ? ", normalized" : "",
                       ec.pooling.matryoshka ? ", matryoshka" : "");
  LOG_INFO(
      "ready: model {} ({}, {} layers{}) on {}; weights {}{}; KV cache {} blocks of "
      "{} = {} tokens; "
      "max_model_len {}; max concurrency {} sequences (KV room for {:.1f} at full context); "
      "http://{}:{}{}; api key {}",
      sc.served_model_names.front(), m.architecture, m.num_layers, task, m.backend, m.dtype,
      m.quantization == "none" ? std::string() : ", quantization " + m.quantization,
      m.num_kv_blocks, m.block_size, m.kv_tokens(), m.max_model_len, m.max_num_seqs,
      m.max_model_len > 0 ? double(m.kv_tokens()) / double(m.max_model_len) : 0.0, sc.http.host,
      port, sc.ui ? " (chat page at /)" : "", sc.api_keys.empty() ? "off" : "on");
}

// `inferd serve --model A --model B` / `--models FILE` (serve_multi.h).
void serve_several(const ServeArgs& a, const CLI::App& cmd) {
  MultiServeFront f;
  f.host = a.host;
  f.port = a.port;
  f.api_keys = server::collect_api_keys(a.api_keys, a.api_key_file);
  f.allowed_origins = a.allowed_origins;
  f.rate_limit_rpm = a.rate_limit_rpm;
  f.rate_limit_tpm = a.rate_limit_tpm;
  f.max_concurrent_per_key = a.max_concurrent_per_key;
  f.http = a.http;
  if (a.rate_limit_rpm < 0 || a.rate_limit_tpm < 0) fail("rate limits must be >= 0");
  if (a.max_concurrent_per_key < 0)
    fail("--max-concurrent-requests-per-key must be >= 0, got {}", a.max_concurrent_per_key);
  serve_multi(a.multi, f, cmd);
}

void serve(ServeArgs& a, const CLI::App& cmd) {
  if (a.multi.active()) return serve_several(a, cmd);
  if (a.multi.models.size() == 1) {
    if (a.model.model_given())
      fail("serve: the model is given twice (argument '{}' and --model '{}')", a.model.model(),
           a.multi.models.front());
    a.model.args.model.model = a.multi.models.front();
  }
  if (a.port < 0 || a.port > 65535) fail("--port must be in [0, 65535], got {}", a.port);
  if (a.request_timeout < 0) fail("--request-timeout must be >= 0, got {}", a.request_timeout);
  if (a.rate_limit_rpm < 0 || a.rate_limit_tpm < 0) fail("rate limits must be >= 0");
  if (a.max_concurrent_per_key < 0)
    fail("--max-concurrent-requests-per-key must be >= 0, got {}", a.max_concurrent_per_key);
  const server::ChatParsing parsing = chat_parsing(a);
  // Before the model loads: a bad key file fails at once.
  const std::vector<std::string> api_keys = server::collect_api_keys(a.api_keys, a.api_key_file);
  sigset_t sigs = prepare_process();

  const std::unique_ptr<LLM> llm = load_llm(a);
  const std::shared_ptr<Engine>& engine = llm->engine();
  std::optional<ChatTemplate> tmpl;
  if (llm->chat_template()) tmpl = *llm->chat_template();
  auto gen = std::make_shared<server::EngineGenerator>(engine, llm->tokenizer(), std::move(tmpl));
  server::enable_model_images(*gen, *llm->executor(), llm->summary().model_dir,
                              llm->summary().architecture);

  server::ServerConfig sc = server_config(a, *llm);
  sc.api_keys = api_keys;
  sc.chat_parsing = parsing;
  server::Server srv(sc, gen);
  srv.start();
  warm_up(*engine, *llm->tokenizer());
  log_ready(llm->summary(), engine->config(), sc, srv.port());
  srv.set_ready(true);

  const int sig = wait_for_signal_or_fault(sigs, *engine);
  if (sig == 0) {
    // The in-flight requests have their 500s; /health and /ready answer 503 for a moment (a
    // health check sees why), then the process exits non-zero for its supervisor to restart it.
    const std::string fault = engine->device_fault();
    LOG_ERROR("exiting after a {}", fault);
    // Should tearing down on a broken device hang, the process still exits in seconds.
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::seconds(3));
      std::fflush(nullptr);
      std::_Exit(3);
    }).detach();
    srv.set_ready(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    srv.drain_and_stop();
    engine->shutdown();
    throw DeviceFault(fault);
  }
  LOG_INFO("received {}: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  srv.drain_and_stop();
  engine->shutdown();
}

// The per-request limits (server::RequestLimits; docs/api.md "Limits").
void add_limit_flags(CLI::App* cmd, server::RequestLimits& l) {
  cmd->add_option("--max-n", l.max_n, "Largest n (choices) of a request")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--max-output-tokens", l.max_output_tokens,
                  "Largest max_tokens (max_completion_tokens, max_output_tokens) of a request; "
                  "a request without one generates at most this (0: up to max_model_len)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-prompt-tokens", l.max_prompt_tokens,
                  "Largest prompt in tokens (0: up to max_model_len)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-stop-sequences", l.max_stop, "Most stop strings in a request")
      ->capture_default_str();
  cmd->add_option("--max-stop-sequence-bytes", l.max_stop_bytes, "Longest stop string in bytes")
      ->capture_default_str();
  cmd->add_option("--max-logit-bias", l.max_logit_bias, "Most logit_bias entries in a request")
      ->capture_default_str();
  cmd->add_option("--max-tools", l.max_tools, "Most tools in a request")->capture_default_str();
  cmd->add_option("--max-tools-bytes", l.max_tools_bytes,
                  "Largest tools array of a request, in bytes of JSON")
      ->capture_default_str();
  cmd->add_option("--max-structured-output-bytes", l.max_schema_bytes,
                  "Largest output constraint (JSON schema, regex, grammar, choices) of a request, "
                  "in bytes of JSON")
      ->capture_default_str();
  cmd->add_option("--max-messages", l.max_messages, "Most chat messages in a request")
      ->capture_default_str();
}

// Images in requests (issue 34): where image URLs may be fetched from, and the limits.
void add_media_flags(CLI::App* cmd, server::MediaLimits& m) {
  cmd->add_option("--allowed-media-domains", m.fetch.allowed_domains,
                  "Hosts whose http(s) image URLs are fetched (\"*.example.com\" for a domain's "
                  "hosts); without it, or --allow-media-fetch, images must come as data: URLs");
  cmd->add_flag("--allow-media-fetch", m.fetch.allow_any_host,
                "Fetch http(s) image URLs from any host");
  cmd->add_option("--max-image-bytes", m.fetch.max_bytes,
                  "Largest image file of a request (data: URL or fetched), in bytes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--media-fetch-timeout", m.fetch.timeout_s,
                  "Seconds a fetch of an image URL may take")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-image-pixels", m.decode.max_pixels,
                  "Most pixels (width x height) of a request image")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-images-per-request", m.max_images, "Most images in one request")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  // vLLM's spelling of the same limit: a JSON object of modality -> count ({"image": 2}).
  cmd->add_option_function<std::string>(
      "--limit-mm-per-prompt",
      [&m](const std::string& s) {
        const nlohmann::json j = nlohmann::json::parse(s, nullptr, false);
        if (!j.is_object()) fail("--limit-mm-per-prompt: expected a JSON object, got '{}'", s);
        for (const auto& [k, v] : j.items()) {
          if (k != "image")
            fail("--limit-mm-per-prompt: modality '{}' is not supported (only \"image\")", k);
          if (!v.is_number_integer() || v.get<int64_t>() < 1)
            fail("--limit-mm-per-prompt: \"image\" must be a positive integer, got {}", v.dump());
          m.max_images = v.get<size_t>();
        }
      },
      "Most items of each modality in one prompt, as JSON (vLLM's): {\"image\": N} is "
      "--max-images-per-request N");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API");
  a->model.add_to(cmd, /*batching=*/true, /*model_optional=*/true);
  add_task_flags(cmd, a->model.args);
  cmd->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->port, "Port to listen on (0: any free port)")->capture_default_str();
  cmd->add_option("--served-model-name", a->model.args.model.served_model_names,
                  "Model name(s) in the API (default: the model argument); the first is the "
                  "default and the metrics label");
  cmd->add_option("--api-key", a->api_keys,
                  "Require 'Authorization: Bearer KEY' on /v1 routes (repeat or comma-separate "
                  "for several keys)")
      ->envname("INFERD_API_KEY");
  cmd->add_option("--api-key-file", a->api_key_file,
                  "Read the API keys from this file, one a line ('#' comments and blank lines "
                  "ignored), instead of the command line where `ps` shows them");
  cmd->add_option("--chat-template", a->chat_template,
                  "Chat template instead of the model's: a file, the name of one of the model's "
                  "templates, or Jinja text");
  cmd->add_flag("--enable-runtime-lora-updating", a->enable_runtime_lora_updating,
                "Allow POST /v1/load_lora_adapter and /v1/unload_lora_adapter (needs "
                "--enable-lora)");
  cmd->add_flag("--trust-request-chat-template", a->trust_request_chat_template,
                "Render a chat request's own `chat_template` (Jinja text); without this flag "
                "such a request is a 400");
  cmd->add_option("--tokenizer", a->model.args.model.tokenizer,
                  "Tokenizer directory (default: the model's)");
  cmd->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching",
                a->model.args.cache.enable_prefix_caching,
                "Reuse the KV blocks of shared prompt prefixes (default on)");
  cmd->add_option("--max-queue", a->model.args.scheduler.max_queue,
                  "Most requests waiting to start; beyond, 429 with Retry-After (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--max-queue-wait-ms", a->model.args.scheduler.max_queue_wait_ms,
                  "Admission by expected wait: 429 with Retry-After when the requests waiting x "
                  "the recent time between request starts exceeds this (0: off)")
      ->capture_default_str();
  cmd->add_option("--max-logprobs", a->model.args.scheduler.max_logprobs,
                  "Largest logprobs / top_logprobs accepted")
      ->capture_default_str();
  cmd->add_flag("--enable-sleep-mode", a->model.args.model.enable_sleep_mode,
                "Sleep mode: POST /sleep?level=1|2 frees the KV cache and moves the weights to "
                "host memory (level 2: frees them), POST /wake_up restores, GET /is_sleeping");
  cmd->add_option("--sleep-wait-seconds", a->model.args.scheduler.sleep_wait_seconds,
                  "Sleep mode: a request arriving while the model sleeps waits this long for a "
                  "wake (0: 503 at once)")
      ->capture_default_str();
  cmd->add_option("--grammar-compile-timeout", a->model.args.scheduler.grammar_compile_timeout_s,
                  "Seconds one output constraint (JSON schema, regex, grammar) may take to "
                  "compile; longer: 400 naming the limit (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--request-timeout", a->request_timeout,
                  "Seconds a request may take before it is aborted (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--allowed-origins", a->allowed_origins,
                  "CORS origins allowed ('*' for any; comma-separated); empty string: CORS off")
      ->capture_default_str();
  cmd->add_option("--rate-limit-rpm", a->rate_limit_rpm,
                  "Requests per minute per API key (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--rate-limit-tpm", a->rate_limit_tpm,
                  "Tokens (prompt + completion) per minute per API key (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--max-concurrent-requests-per-key", a->max_concurrent_per_key,
                  "Most requests of one API key in flight at once; beyond, 429 with Retry-After "
                  "(0: no limit; without --api-key every client shares one key)")
      ->capture_default_str();
  add_limit_flags(cmd, a->limits);
  add_media_flags(cmd, a->media);
  a->http.add_to(cmd);
  cmd->add_flag("--no-ui", a->no_ui, "Do not serve the chat page at /");
  cmd->add_flag(
      "--log-prompts", a->log_prompts,
      "Put the prompt text (its first --max-log-len bytes) in the request log lines; off, "
      "they hold counts and timings only");
  cmd->add_option("--max-log-len", a->max_log_len,
                  "With --log-prompts: the most bytes of a prompt a log line holds")
      ->capture_default_str();
  cmd->add_flag("--enable-auto-tool-choice", a->enable_auto_tool_choice,
                "Let the model decide when to call tools (tool_choice \"auto\", the default when "
                "a request has tools); needs --tool-call-parser");
  cmd->add_option("--tool-call-parser", a->tool_call_parser,
                  "How the model writes tool calls, to parse them into tool_calls and to enforce "
                  "tool_choice \"required\" / a named function: hermes (Qwen2.5, Qwen3, "
                  "Hermes), llama3_json (Llama 3.1/3.2), mistral");
  cmd->add_option("--reasoning-parser", a->reasoning_parser,
                  "Split the model's <think>...</think> into reasoning_content: qwen3, "
                  "deepseek_r1; output constraints then apply after the reasoning");
  cmd->add_option("--max-stored-responses", a->max_stored_responses,
                  "/v1/responses: most responses kept in memory for GET, DELETE and "
                  "previous_response_id; the least recently used go first (0: store nothing)")
      ->capture_default_str();
  cmd->add_option("--max-stored-responses-mb", a->max_stored_responses_mb,
                  "/v1/responses: most MiB (as JSON) the stored responses may hold")
      ->capture_default_str();
  // Test-only, hidden from --help (no group): the device fails after N model steps (the warm-up
  // takes one), on CUDA by a real illegal-address write; tests of the fault path use it.
  cmd->add_option("--debug-inject-device-fault", a->inject_device_fault,
                  "TESTING ONLY: make the device fail after N model steps (after_steps=N)")
      ->group("");
  a->multi.add_to(cmd);
  cmd->callback([a, cmd] { serve(*a, *cmd); });
}

}  // namespace inferd::cli
