// Subcommands of the `inferd` binary; each file registers its own.
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "inferd/engine_args.h"

namespace inferd::server {
struct HttpConfig;
}

namespace inferd::hub {
class PendingDownload;
}

namespace inferd::cli {

// Flags shared by every command that loads a model (names follow vLLM's), bound to the
// EngineArgs the command hands to LLM::load.
struct ModelFlags {
  EngineArgs args;

  // batching: also registers --max-num-seqs (serve and bench, not run). model_optional: the
  // model argument may be left out; it then names the project's demo model (default_model_dir).
  // Also registers vLLM's flags --tensor-parallel-size, --speculative-config and the LoRA flags:
  // LLM::load refuses by name what they cannot do yet.
  void add_to(CLI::App* app, bool batching = true, bool model_optional = false);
  // True when the command line named a model (false: the default model is used).
  bool model_given() const { return model_opt_ != nullptr && model_opt_->count() > 0; }
  const std::string& model() const { return args.model.model; }
  // A model (or --tokenizer) named as org/name[:revision] that is no path on disk becomes its
  // snapshot directory in the Hugging Face cache, downloaded when missing (src/hub); the hub name
  // stays the served name. add_to() runs it once the command line is parsed.
  void resolve_hub_names();

 private:
  CLI::Option* model_opt_ = nullptr;
  std::string hf_token_;  // --hf-token
  // The hub model's weights still downloading while it loads (hub::resolve_overlapped).
  std::shared_ptr<hub::PendingDownload> pending_download_;
};

// --task and --pooler-config (also as vLLM's older --override-pooler-config), for the commands
// that can run an embedding model (serve, run).
void add_task_flags(CLI::App* app, EngineArgs& args);

// `inferd bench perplexity` (cmd_perplexity.cc), registered by `bench`.
void register_perplexity(CLI::App& bench);
// `inferd bench soak` (cmd_bench_soak.cc), registered by `bench`.
void register_bench_soak(CLI::App& bench);
// `inferd bench overload` (cmd_bench_overload.cc), registered by `bench`.
void register_bench_overload(CLI::App& bench);

// The model served when none is named: $INFERD_DEFAULT_MODEL, else the demo model trained by the
// project (models/demo of the source tree this binary was built from).
std::string default_model_dir();

// HTTP flags shared by `serve` and `router`.
struct HttpFlags {
  uint64_t max_request_body_bytes = 16ull << 20;
  int io_threads = 4;
  double drain_timeout = 30;
  double keep_alive_timeout = 60;
  double header_timeout = 30;  // --http-header-timeout
  double body_timeout = 60;    // --http-body-timeout
  // Registers --max-request-body-bytes, --io-threads (checked >= 1), --drain-timeout,
  // --keep-alive-timeout, --http-header-timeout and --http-body-timeout.
  void add_to(CLI::App* app);
  // The header and body read timeouts into `c`.
  void apply_read_timeouts(server::HttpConfig& c) const;
};

void register_run(CLI::App& app);
void register_tokenizer_commands(CLI::App& app);  // tokenize, detokenize
void register_template_command(CLI::App& app);    // template
void register_bench(CLI::App& app);               // bench serve|throughput|latency
void register_serve(CLI::App& app);               // serve
void register_router(CLI::App& app);              // router
void register_chat(CLI::App& app);                // chat
void register_hub_commands(CLI::App& app);        // pull, ls, rm (cmd_hub.cc)

// Flag values that may each hold several comma-separated items ("a,b" "c" -> a, b, c), trimmed,
// empty items dropped.
std::vector<std::string> split_commas(const std::vector<std::string>& in);

// vLLM's short flags of more than one letter, which CLI11 cannot declare ("-tp" for
// --tensor-parallel-size, also as "-tp=N"), rewritten to their long names; arguments after "--"
// are left alone.
void expand_vllm_short_flags(std::vector<std::string>& args);

// "1,2,3" -> ids; throws Error naming `what` (the flag) on anything else.
std::vector<int32_t> parse_id_list(const std::string& s, const char* what);

// Raises the open-file limit and blocks SIGTERM / SIGINT in this thread (call it before any other
// thread starts, so that all inherit the mask); returns the set for sigwait (serve, router).
sigset_t prepare_process();

}  // namespace inferd::cli
