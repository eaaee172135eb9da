// LLM::load: EngineArgs -> ResolvedConfig -> tokenizer, chat template, backend, model, engine.
// load_model() is the one function that knows how the model is built (the ModelRunner and its
// RunnerOptions); everything else reads the ResolvedConfig.
#include "inferd/llm.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "backend/backend.h"
#include "core/arriving_files.h"
#include "core/error.h"
#include "core/logging.h"
#include "jinja/chat_template.h"
#include "llm/gguf_tokenizer.h"
#include "llm/lora_registry.h"
#include "llm/resolved_config.h"
#include "llm/speculative_config.h"
#include "model/weight_footprint.h"
#include "runner/executor.h"
#include "runner/model_runner.h"
#include "runner/tensor_parallel_executor.h"
#include "tokenizer/tokenizer.h"
#ifdef INFERD_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace inferd {

struct LLM::Impl {
  std::shared_ptr<const Tokenizer> tokenizer;
  std::shared_ptr<const ChatTemplate> chat_template;
  std::shared_ptr<ModelExecutor> executor;
  std::function<std::string()> step_profile;
  std::shared_ptr<Engine> engine;
  ModelSummary summary;
  std::vector<std::string> served_model_names;
  std::shared_ptr<LoraAdapters> lora;  // null: --enable-lora off
};

namespace {

std::unique_ptr<Backend> make_backend(const ResolvedConfig& rc) {
  if (rc.device == DeviceKind::kCuda) {
#ifdef INFERD_HAVE_CUDA
    return make_cuda_backend(0);
#else
    fail("--device cuda: this build of inferd has no CUDA backend");
#endif
  }
  return make_cpu_backend(rc.threads);
}

// What the rest of the load needs from the model it built.
struct LoadedModel {
  std::shared_ptr<ModelExecutor> executor;
  std::function<std::string()> step_profile;
  ModelSummary summary;                // architecture, layers, backend and dtype
  std::vector<int64_t> eos_token_ids;  // the model config's
  // Reads a PEFT adapter directory for this model (its shapes, --max-lora-rank).
  std::function<LoraAdapter(const std::string&)> read_lora;
  Tensor embedding_table;  // the token embedding (an EAGLE-3 head shares it)
};

LoadedModel load_model(const ResolvedConfig& rc, std::unique_ptr<Backend> backend,
                       bool expert_load_profile, const std::vector<int32_t>& aux_layers) {
  RunnerOptions o;
  o.expert_load_profile = expert_load_profile;
  o.aux_hidden_layers = aux_layers;  // EAGLE-3: the states its head fuses
  o.load.format = parse_load_format(rc.load_format);
  o.load.dummy_seed = rc.seed;
  o.load.dummy_dtype = rc.dtype;
  o.load.quantization = rc.quantization;
  o.load.pooling_only = rc.engine.task == ModelTask::kEmbed;  // no lm_head
  o.block_size = rc.block_size;
  o.num_kv_blocks = rc.num_kv_blocks;
  o.kv_cache_bytes = rc.kv_cache_bytes;
  o.gpu_memory_utilization = rc.gpu_memory_utilization;
  o.kv_cache_fp8 = rc.kv_cache_fp8;
  o.max_num_batched_tokens = rc.engine.max_num_batched_tokens;
  o.max_model_len = rc.engine.max_model_len;
  o.max_num_seqs = rc.engine.max_num_seqs;
  o.enforce_eager = rc.enforce_eager;
  o.inject_device_fault_after_steps = rc.inject_device_fault_after_steps;
  o.max_top_logprobs = rc.engine.max_logprobs;
  o.enable_sleep_mode = rc.enable_sleep_mode;
  o.max_loras = rc.max_loras;
  o.max_lora_rank = rc.max_lora_rank;
  if (const SpeculativeConfig& sp = rc.engine.speculative; sp.enabled()) {
    const int32_t seqs = sp.disable_by_batch_size > 0
                             ? std::min(sp.disable_by_batch_size, rc.engine.max_num_seqs)
                             : rc.engine.max_num_seqs;
    o.max_extra_logit_rows = seqs * sp.num_speculative_tokens;
    o.num_speculative_tokens = sp.num_speculative_tokens;  // verification graphs
    o.max_speculative_seqs = seqs;
    if (sp.method == SpeculativeConfig::Method::kDraftModel ||
        sp.method == SpeculativeConfig::Method::kEagle3)
      o.max_draft_prob_rows = o.max_extra_logit_rows;
  }
  // One runner, or (--tensor-parallel-size) one a rank behind one executor.
  std::shared_ptr<ModelExecutor> exec;
  ModelRunner* m = nullptr;
  std::string backend_name;
  if (rc.tensor_parallel_size > 1) {
    TensorParallelOptions tpo;
    tpo.size = rc.tensor_parallel_size;
    tpo.threads_per_rank = rc.threads;
    auto tp = std::make_shared<TensorParallelExecutor>(rc.model_dir, o, std::move(tpo));
    m = &tp->rank(0);
    backend_name = fmt::format("{} x {} ranks (tensor parallel)", m->backend().name(), tp->size());
    exec = tp;
  } else {
    auto runner = std::make_shared<ModelRunner>(rc.model_dir, o, std::move(backend));
    m = runner.get();
    backend_name = m->backend().name();
    exec = runner;
  }
  const ModelConfig& c = m->config();
  LOG_INFO("loaded {} ({} layers, hidden {}, {} heads / {} kv heads, vocab {}) on {}",
           c.architecture, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size,
           backend_name);
  LoadedModel out;
  out.summary.architecture = c.architecture;
  out.summary.model_dir = rc.model_dir;
  out.summary.num_layers = int32_t(c.num_layers);
  out.summary.backend = backend_name;
  out.summary.dtype = o.load.format == LoadFormat::kDummy ? std::string(dtype_name(rc.dtype))
                      : c.dtype.empty()                   ? std::string("as stored")
                                                          : c.dtype;
  out.summary.quantization = describe_quantization(c.quant, o.load.quantization);
  if (out.summary.quantization != "none") LOG_INFO("quantization: {}", out.summary.quantization);
  const WeightFootprint fp = weight_footprint(c, weight_bits(c.quant, o.load.quantization));
  if (c.num_experts > 0) {
    const double gb = double(fp.active_bytes) / 1e9;
    LOG_INFO(
        "mixture of experts: {} of {} experts a token; one decode step reads {:.2f} GB of "
        "weights: bandwidth floor {:.0f} tok/s at 3.35 TB/s (H100 SXM), {:.0f} at 4.8 TB/s (H200)",
        c.num_experts_per_tok, c.num_experts, gb, 3350.0 / gb, 4800.0 / gb);
  }
  out.summary.weight_bytes = fp.total_bytes;
  out.summary.active_weight_bytes = fp.active_bytes;
  out.summary.num_experts = c.num_experts;
  out.summary.num_experts_per_tok = c.num_experts_per_tok;
  out.eos_token_ids = c.eos_token_ids;
  // Rank 0's profile under tensor parallelism (`exec` keeps the runner alive).
  out.step_profile = [exec, m] { return m->step_profile(); };
  out.read_lora = [cfg = c, rank = rc.max_lora_rank](const std::string& path) {
    return load_peft_adapter(path, cfg, rank);
  };
  out.embedding_table = m->model().token_embedding_table();
  out.executor = std::move(exec);
  return out;
}

// The KV blocks of a draft's or a head's own pool: max_model_len tokens for each sequence that
// may speculate in one step.
int32_t draft_kv_blocks(const ResolvedConfig& rc, int64_t max_position_embeddings) {
  const SpeculativeConfig& sp = rc.engine.speculative;
  const int64_t len =
      rc.engine.max_model_len > 0 ? rc.engine.max_model_len : max_position_embeddings;
  const int64_t seqs = sp.disable_by_batch_size > 0
                           ? std::min(sp.disable_by_batch_size, rc.engine.max_num_seqs)
                           : rc.engine.max_num_seqs;
  return int32_t(std::min<int64_t>((len + rc.block_size - 1) / rc.block_size * seqs + 1, 1 << 20));
}

// --speculative-config method eagle3, before anything loads: the head's config checked against
// the target's (vocabulary, widths), and the target layers whose input states the head fuses (its
// eagle_aux_hidden_state_layer_ids, else EAGLE-3's default (2, L / 2, L - 3)).
std::vector<int32_t> eagle3_aux_layers(const ResolvedConfig& rc) {
  const SpeculativeConfig& sp = rc.engine.speculative;
  if (!std::filesystem::is_directory(sp.model))
    fail("--speculative-config: \"model\" '{}': not a model directory", sp.model);
  if (rc.enable_sleep_mode)
    fail("--speculative-config: method eagle3 does not support --enable-sleep-mode yet");
  if (rc.tensor_parallel_size > 1)
    fail(
        "--speculative-config: method eagle3 with --tensor-parallel-size {}: the head shares the "
        "target's embedding table, which tensor parallelism splits (not supported yet)",
        rc.tensor_parallel_size);
  const ModelConfig hc = load_model_config(sp.model);
  if (hc.architecture != "LlamaForCausalLMEagle3")
    fail(
        "--speculative-config: '{}' is not an EAGLE-3 head: its config.json names {} (expected "
        "LlamaForCausalLMEagle3)",
        sp.model, hc.architecture);
  const ModelConfig tc = load_model_config(rc.model_dir);
  if (hc.target_vocab_size != tc.vocab_size)
    fail(
        "--speculative-config: the EAGLE-3 head {} was trained for a vocabulary of {} tokens (its "
        "vocab_size), the target's has {}",
        sp.model, hc.target_vocab_size, tc.vocab_size);
  if (hc.target_hidden_size != tc.hidden_size)
    fail(
        "--speculative-config: the EAGLE-3 head {} fuses target hidden states of width {} "
        "(target_hidden_size), the target's hidden_size is {}",
        sp.model, hc.target_hidden_size, tc.hidden_size);
  if (hc.hidden_size != tc.hidden_size)
    fail(
        "--speculative-config: the EAGLE-3 head {} has hidden_size {}, but it embeds its tokens "
        "with the target's embedding table of width {}",
        sp.model, hc.hidden_size, tc.hidden_size);
  const int32_t L = int32_t(tc.num_layers);
  std::vector<int32_t> layers = hc.eagle_aux_layers;
  if (layers.empty()) layers = {std::min(2, L - 1), L / 2, std::max(0, L - 3)};
  for (int32_t l : layers)
    if (l >= L)
      fail(
          "--speculative-config: the EAGLE-3 head {} fuses the hidden states entering layer {} "
          "(eagle_aux_hidden_state_layer_ids), but the target has {} layers",
          sp.model, l, L);
  return layers;
}

// What the runner of a proposer's model (a draft model, an EAGLE-3 head) takes from the target's
// settings: the load format and dtype (dummy weights seeded apart from the target's), the block
// size and step limits, and a pool sized by draft_kv_blocks for its own context length.
RunnerOptions proposer_runner_options(const ResolvedConfig& rc) {
  const SpeculativeConfig& sp = rc.engine.speculative;
  RunnerOptions o;
  o.load.format = parse_load_format(rc.load_format);
  o.load.dummy_seed = rc.seed + 1;
  o.load.dummy_dtype = rc.dtype;
  o.block_size = rc.block_size;
  o.max_num_batched_tokens = rc.engine.max_num_batched_tokens;
  o.max_model_len = rc.engine.max_model_len;
  o.max_num_seqs = rc.engine.max_num_seqs;
  o.num_kv_blocks = draft_kv_blocks(rc, load_model_config(sp.model).max_position_embeddings);
  return o;
}

// The EAGLE-3 head: its own runner (own KV pool of one layer, workspace) on a backend of the same
// kind, loaded after the target, whose token embedding it shares. It runs eagerly (forward(); its
// logits and outputs come to the host each draft step).
std::shared_ptr<ModelExecutor> load_eagle3_head(const ResolvedConfig& rc, const Tensor& embedding) {
  const SpeculativeConfig& sp = rc.engine.speculative;
  if (!embedding.defined())
    fail(
        "--speculative-config: the target keeps its token embedding in GGUF blocks; an EAGLE-3 "
        "head needs a plain table");
  RunnerOptions o = proposer_runner_options(rc);
  o.load.shared_embedding = embedding;
  o.enforce_eager = true;
  auto h = std::make_shared<ModelRunner>(sp.model, o, make_backend(rc));
  LOG_INFO("loaded EAGLE-3 head {} (hidden {}, draft vocabulary {} of {}, {} KV blocks)", sp.model,
           h->config().hidden_size, h->config().vocab_size, h->config().target_vocab_size,
           h->num_kv_blocks());
  return h;
}

// The draft model of --speculative-config method draft_model: its own runner (own KV pool,
// workspace and graphs) on a backend of the same kind, loaded before the target so that the
// target's --gpu-memory-utilization share counts the draft's memory as taken. Its pool holds
// max_model_len tokens for each sequence that may speculate in one step.
std::shared_ptr<ModelExecutor> load_draft_model(const ResolvedConfig& rc) {
  const SpeculativeConfig& sp = rc.engine.speculative;
  check_draft_vocabulary(rc.tokenizer_dir, sp.model);
  RunnerOptions o = proposer_runner_options(rc);
  o.enforce_eager = rc.enforce_eager;
  o.enable_sleep_mode = rc.enable_sleep_mode;  // it sleeps and wakes with the target
  auto d = std::make_shared<ModelRunner>(sp.model, o, make_backend(rc));
  LOG_INFO("loaded draft model {} ({}, {} layers, vocab {}, {} KV blocks)", sp.model,
           d->config().architecture, d->config().num_layers, d->config().vocab_size,
           d->num_kv_blocks());
  return d;
}

std::shared_ptr<const ChatTemplate> load_chat_template(const ResolvedConfig& rc,
                                                       const ModelVocabSource& vocab,
                                                       const LLMOptions& options) {
  try {
    // A file, a named template of the model, or template text (as Hugging Face resolves it);
    // a GGUF file's come from its metadata.
    if (vocab.gguf) {
      const auto config = vocab.tokenizer_config();
      return std::make_shared<const ChatTemplate>(
          options.chat_template.empty()
              ? ChatTemplate::from_tokenizer_config(config, vocab.path + " (GGUF metadata)")
              : ChatTemplate::resolve_with_config(options.chat_template, config,
                                                  vocab.path + " (GGUF metadata)"));
    }
    return std::make_shared<const ChatTemplate>(
        options.chat_template.empty()
            ? ChatTemplate::from_model_dir(rc.tokenizer_dir)
            : ChatTemplate::resolve(options.chat_template, rc.tokenizer_dir));
  } catch (const Error& e) {
    if (!options.on_chat_template_error) throw;
    options.on_chat_template_error(e);
    return nullptr;
  }
}

}  // namespace

std::unique_ptr<LLM> LLM::load(const EngineArgs& args, const LLMOptions& options) {
  ResolvedConfig rc = resolve_engine_args(args);
  auto impl = std::make_unique<Impl>();
  impl->served_model_names = rc.served_model_names;
  const ModelVocabSource vocab = rc.load_tokenizer || options.load_chat_template
                                     ? ModelVocabSource::open(rc.tokenizer_dir)
                                     : ModelVocabSource{};
  if (rc.load_tokenizer) impl->tokenizer = std::make_shared<const Tokenizer>(vocab.tokenizer());
  if (options.load_chat_template) impl->chat_template = load_chat_template(rc, vocab, options);
  std::function<void()> weights_started;
  if (options.before_weights) weights_started = options.before_weights(args);

  const bool eagle3 = rc.engine.speculative.method == SpeculativeConfig::Method::kEagle3;
  if (rc.engine.speculative.method == SpeculativeConfig::Method::kDraftModel)
    rc.engine.speculative.draft_executor = load_draft_model(rc);
  LoadedModel m = load_model(rc, rc.tensor_parallel_size > 1 ? nullptr : make_backend(rc),
                             options.expert_load_profile,
                             eagle3 ? eagle3_aux_layers(rc) : std::vector<int32_t>{});
  if (weights_started) std::exchange(weights_started, nullptr)();
  if (eagle3) rc.engine.speculative.draft_executor = load_eagle3_head(rc, m.embedding_table);
  // Weights that were still downloading (a hub name, core/arriving_files.h): every file is
  // complete and its checksum passed before the model is used; else the download's Error.
  wait_for_arriving_files(args.model.model);
  if (impl->tokenizer && int64_t(impl->tokenizer->id_limit()) > m.executor->vocab_size())
    fail("the tokenizer has ids up to {} but the model's vocabulary has {} entries",
         impl->tokenizer->id_limit(), m.executor->vocab_size());
  rc.engine.eos_token_ids = default_eos_ids(
      impl->tokenizer ? impl->tokenizer->eos_ids() : std::vector<int32_t>{}, m.eos_token_ids);
  // GGUF files carry no generation_config.json: llama.cpp's end-of-turn ids stop too.
  for (int32_t id : vocab.extra_stop_ids())
    if (std::find(rc.engine.eos_token_ids.begin(), rc.engine.eos_token_ids.end(), id) ==
        rc.engine.eos_token_ids.end())
      rc.engine.eos_token_ids.push_back(id);
  impl->engine = std::make_shared<Engine>(m.executor, rc.engine, impl->tokenizer);

  impl->summary = std::move(m.summary);
  impl->summary.num_kv_blocks = m.executor->num_kv_blocks();
  impl->summary.block_size = m.executor->block_size();
  impl->summary.max_model_len = impl->engine->config().max_model_len;
  impl->summary.max_num_seqs = impl->engine->config().max_num_seqs;
  impl->executor = std::move(m.executor);
  impl->step_profile = std::move(m.step_profile);
  if (rc.max_loras > 0) {
    impl->lora = std::make_shared<LoraRegistry>(impl->engine, m.read_lora, rc.served_model_names,
                                                rc.max_loras, rc.max_cpu_loras);
    for (const auto& [name, path] : rc.lora_modules) impl->lora->load(name, path);
  }
  return std::unique_ptr<LLM>(new LLM(std::move(impl)));
}

LLM::LLM(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LLM::~LLM() = default;

const std::shared_ptr<Engine>& LLM::engine() const {
  return impl_->engine;
}
const std::shared_ptr<const Tokenizer>& LLM::tokenizer() const {
  return impl_->tokenizer;
}
const std::shared_ptr<const ChatTemplate>& LLM::chat_template() const {
  return impl_->chat_template;
}
const std::shared_ptr<ModelExecutor>& LLM::executor() const {
  return impl_->executor;
}
std::string LLM::step_profile() const {
  return impl_->step_profile ? impl_->step_profile() : "";
}
const ModelSummary& LLM::summary() const {
  return impl_->summary;
}
const std::shared_ptr<LoraAdapters>& LLM::lora() const {
  return impl_->lora;
}
const std::vector<std::string>& LLM::served_model_names() const {
  return impl_->served_model_names;
}

}  // namespace inferd
