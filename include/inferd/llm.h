// inferd::LLM: a model, its tokenizer, its chat template and the engine serving them, built from
// one EngineArgs (what vLLM's `LLM` and llama.h's model + context give an embedding application).
// Every `inferd` command that runs a model in process (serve, run, chat, bench throughput and
// latency) builds it here, so that defaults, checks and the EOS rule are written once.
//
//   inferd::EngineArgs args;
//   args.model.model = "/models/Llama-3.2-1B-Instruct";
//   auto llm = inferd::LLM::load(args);
//   auto results = llm->engine()->generate({...});
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "inferd/engine.h"
#include "inferd/engine_args.h"
#include "inferd/lora.h"

namespace inferd {

class ChatTemplate;
class ModelExecutor;
class Tokenizer;

// What a front end needs from LLM::load besides the engine.
struct LLMOptions {
  // Loads a chat template: `chat_template` (a file, the name of one of the model's templates, or
  // Jinja text, as Hugging Face resolves it) when given, else the tokenizer directory's own.
  bool load_chat_template = false;
  std::string chat_template;
  // Called, inside the handler, with the error when the chat template cannot be loaded:
  // returning leaves the LLM without one (chat_template() is null), throwing (`throw;` rethrows)
  // stops the load. Unset: the load fails with the error.
  std::function<void(const Error&)> on_chat_template_error;
  // Called once the tokenizer and the chat template are loaded, just before the weights are. It
  // may start work that runs beside the load (a read-ahead of the weight files with a progress
  // bar) and return what finishes it: called once the model is placed (it may throw to fail the
  // load), or destroyed uncalled when the load fails first (so it must stop the work then too).
  std::function<std::function<void()>(const EngineArgs&)> before_weights;
  // MoE models: count the tokens routed to each expert, for the step profile's expert-load line
  // (`inferd bench`).
  bool expert_load_profile = false;
};

// What runs, for a start-up line and logs.
struct ModelSummary {
  std::string architecture;  // config.json's, e.g. "LlamaForCausalLM"
  std::string model_dir;     // where the model was read from (a directory or a GGUF file)
  int32_t num_layers = 0;
  std::string backend;  // the backend's name, e.g. "cpu (avx512, 16 threads)"
  std::string dtype;    // of the weights: "bfloat16", ... or "as stored"
  // The quantization method: "none", "fp8", "awq (4-bit, group 128)", ... (issue 28)
  std::string quantization = "none";
  int32_t num_kv_blocks = 0;
  int32_t block_size = 0;     // tokens per KV block
  int32_t max_model_len = 0;  // resolved: the longest context a request may have
  int32_t max_num_seqs = 0;   // sequences running at once
  // Weight bytes from the config's shapes (bf16, or FP8 linears under --quantization fp8), and
  // those one decode token reads (an MoE model's routed experts only): the decode floor is the
  // device's bandwidth over active_weight_bytes.
  int64_t weight_bytes = 0;
  int64_t active_weight_bytes = 0;
  int64_t num_experts = 0, num_experts_per_tok = 0;  // 0: a dense model
  int64_t kv_tokens() const { return int64_t(num_kv_blocks) * block_size; }
};

class LLM {
 public:
  // Resolves `args` (defaults; every bad value is an Error naming its flag), picks the backend,
  // loads the tokenizer (unless args.model.skip_tokenizer_init), the chat template (when
  // options ask for it), the model, checks that the tokenizer's ids fit the model's vocabulary,
  // and starts the engine. The engine's EOS ids: the tokenizer's, else the model config's
  // eos_token_id. Throws Error.
  static std::unique_ptr<LLM> load(const EngineArgs& args, const LLMOptions& options = {});
  ~LLM();
  LLM(const LLM&) = delete;
  LLM& operator=(const LLM&) = delete;

  const std::shared_ptr<Engine>& engine() const;
  // Null with skip_tokenizer_init.
  const std::shared_ptr<const Tokenizer>& tokenizer() const;
  // Null unless LLMOptions::load_chat_template (and none could be loaded).
  const std::shared_ptr<const ChatTemplate>& chat_template() const;
  // The model as the engine runs it (step timing for benchmarks).
  const std::shared_ptr<ModelExecutor>& executor() const;
  // Wall time of the model's steps by kind and size since the executor's last
  // reset_step_timing(), one line a bucket ("" where the model does not keep it).
  std::string step_profile() const;
  const ModelSummary& summary() const;
  // The LoRA adapters (--enable-lora; --lora-modules loaded already); null when LoRA is off.
  const std::shared_ptr<LoraAdapters>& lora() const;
  // args.model.served_model_names, or the model argument when none was given.
  const std::vector<std::string>& served_model_names() const;

 private:
  struct Impl;
  explicit LLM(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace inferd
