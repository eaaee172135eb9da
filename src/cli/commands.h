// Subcommands of the `inferd` binary; each file registers its own.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "runner/model_runner.h"

namespace inferd::cli {

// Flags shared by every command that loads a model (names follow vLLM's).
struct ModelFlags {
  std::string model;
  std::string device = "auto";
  double gpu_memory_utilization = 0.9;
  std::string load_format = "auto";
  std::string dtype = "auto";
  int32_t max_model_len = 0;
  int32_t block_size = 16;
  int32_t num_kv_blocks = 0;
  double kv_cache_memory_gib = 1.0;
  int32_t max_num_batched_tokens = 2048;
  uint64_t seed = 0;
  int threads = 0;
  int32_t max_num_seqs = 256;  // --max-num-seqs (commands that batch)
  bool enforce_eager = false;  // --enforce-eager
  std::string quantization;    // --quantization (fp8)
  int32_t max_logprobs = 20;   // set by `serve` from --max-logprobs

  // batching: also registers --max-num-seqs (serve and bench, not run). model_optional: the
  // model argument may be left out; it then names the project's demo model (default_model_dir).
  void add_to(CLI::App* app, bool batching = true, bool model_optional = false);
  // True when the command line named a model (false: the default model is used).
  bool model_given() const { return model_opt_ != nullptr && model_opt_->count() > 0; }
  RunnerOptions options() const;
  std::unique_ptr<ModelRunner> load() const;

 private:
  CLI::Option* model_opt_ = nullptr;
};

// The model served when none is named: $INFERD_DEFAULT_MODEL, else the demo model trained by the
// project (models/demo of the source tree this binary was built from).
std::string default_model_dir();

// HTTP flags shared by `serve` and `router`.
struct HttpFlags {
  uint64_t max_request_body_bytes = 16ull << 20;
  int io_threads = 4;
  double drain_timeout = 30;
  double keep_alive_timeout = 60;
  // Registers --max-request-body-bytes, --io-threads (checked >= 1), --drain-timeout and
  // --keep-alive-timeout.
  void add_to(CLI::App* app);
};

void register_run(CLI::App& app);
void register_tokenizer_commands(CLI::App& app);  // tokenize, detokenize
void register_template_command(CLI::App& app);    // template
void register_bench(CLI::App& app);               // bench serve|throughput|latency
void register_serve(CLI::App& app);               // serve
void register_router(CLI::App& app);              // router
void register_chat(CLI::App& app);                // chat

// Flag values that may each hold several comma-separated items ("a,b" "c" -> a, b, c), trimmed,
// empty items dropped.
std::vector<std::string> split_commas(const std::vector<std::string>& in);

// "1,2,3" -> ids; throws Error naming `what` (the flag) on anything else.
std::vector<int32_t> parse_id_list(const std::string& s, const char* what);

}  // namespace inferd::cli
