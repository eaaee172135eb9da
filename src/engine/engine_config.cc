// An EngineConfig resolved against the model executor it will drive.
#include "engine/engine_config.h"

#include <algorithm>

#include "core/error.h"
#include "runner/executor.h"

namespace inferd {

EngineConfig resolve_config(EngineConfig c, const ModelExecutor& exec) {
  if (c.max_num_seqs <= 0) fail("max_num_seqs must be positive, got {}", c.max_num_seqs);
  if (c.max_num_batched_tokens <= 0) {
    fail("max_num_batched_tokens must be positive, got {}", c.max_num_batched_tokens);
  }
  if (c.max_num_batched_tokens > exec.max_num_batched_tokens()) {
    fail("max_num_batched_tokens {} exceeds what the model's workspace holds per step ({})",
         c.max_num_batched_tokens, exec.max_num_batched_tokens());
  }
  if (c.max_queue < 0) fail("max_queue must be >= 0 (0: no limit), got {}", c.max_queue);
  if (!(c.max_queue_wait_s >= 0))
    fail("max_queue_wait_s must be >= 0 (0: off), got {}", c.max_queue_wait_s);
  if (c.max_logprobs < 0) fail("max_logprobs must be >= 0, got {}", c.max_logprobs);
  if (c.max_logprobs > exec.max_top_logprobs()) {
    fail("max_logprobs {} exceeds the top logprobs per token the model executor can return ({})",
         c.max_logprobs, exec.max_top_logprobs());
  }
  const int64_t pool_tokens = int64_t(exec.num_kv_blocks()) * exec.block_size();
  if (exec.num_kv_blocks() <= 0 || exec.block_size() <= 0) {
    fail("the KV cache has {} blocks of {} tokens; expected at least one block",
         exec.num_kv_blocks(), exec.block_size());
  }
  if (c.max_model_len == 0) {
    c.max_model_len = int32_t(std::min<int64_t>(exec.max_model_len(), pool_tokens));
  } else if (c.max_model_len < 0) {
    fail("max_model_len must be positive, got {}", c.max_model_len);
  } else if (c.max_model_len > exec.max_model_len()) {
    fail("max_model_len {} exceeds the model's maximum context length {}", c.max_model_len,
         exec.max_model_len());
  } else if (c.max_model_len > pool_tokens) {
    fail(
        "max_model_len {} does not fit the KV cache ({} blocks x {} tokens = {} tokens); lower "
        "max_model_len or give the KV cache more memory",
        c.max_model_len, exec.num_kv_blocks(), exec.block_size(), pool_tokens);
  }
  if (c.long_prefill_token_threshold < 0)
    fail("long_prefill_token_threshold must be >= 0 (0: off), got {}",
         c.long_prefill_token_threshold);
  if (c.max_num_partial_prefills < 1)
    fail("max_num_partial_prefills must be >= 1, got {}", c.max_num_partial_prefills);
  if (c.max_long_partial_prefills < 1)
    fail("max_long_partial_prefills must be >= 1, got {}", c.max_long_partial_prefills);
  if (c.max_long_partial_prefills > c.max_num_partial_prefills)
    fail("max_long_partial_prefills ({}) must be <= max_num_partial_prefills ({})",
         c.max_long_partial_prefills, c.max_num_partial_prefills);
  if (c.max_num_partial_prefills > 1 && c.long_prefill_token_threshold == 0)
    c.long_prefill_token_threshold = std::max(1, int32_t(c.max_model_len * 0.04));  // vLLM's
  if (!c.enable_chunked_prefill && c.max_num_batched_tokens < c.max_model_len) {
    fail("without chunked prefill max_num_batched_tokens ({}) must be >= max_model_len ({})",
         c.max_num_batched_tokens, c.max_model_len);
  }
  if (c.task == ModelTask::kEmbed && exec.hidden_size() <= 0)
    fail("--task embed: this model executor cannot pool hidden states");
  if (c.task == ModelTask::kGenerate && exec.pools_only())
    fail("the model was loaded for embeddings (no lm_head): it cannot serve --task generate");
  for (int32_t d : c.pooling.dimensions) {
    if (d <= 0 || d > exec.hidden_size())
      fail("Matryoshka dimension {} is outside [1, {}] (the hidden size)", d, exec.hidden_size());
  }
  for (int32_t t : c.eos_token_ids) {
    if (t < 0 || t >= exec.vocab_size()) {
      fail("eos token id {} is outside the vocabulary [0, {})", t, exec.vocab_size());
    }
  }
  const SpeculativeConfig& sp = c.speculative;
  if (sp.method != SpeculativeConfig::Method::kNone) {
    if (sp.num_speculative_tokens < 1 || sp.num_speculative_tokens > kMaxSpeculativeTokens)
      fail("speculative num_speculative_tokens {} is out of range: expected 1..{}",
           sp.num_speculative_tokens, kMaxSpeculativeTokens);
    if (sp.method == SpeculativeConfig::Method::kNgram &&
        (sp.prompt_lookup_min < 1 || sp.prompt_lookup_max < sp.prompt_lookup_min))
      fail("speculative prompt_lookup_min {} / prompt_lookup_max {}: expected 1 <= min <= max",
           sp.prompt_lookup_min, sp.prompt_lookup_max);
    if (sp.method == SpeculativeConfig::Method::kDraftModel && !sp.draft_executor)
      fail("speculative method draft_model needs the draft model's executor ({})",
           sp.model.empty() ? "no model given" : sp.model);
    if (sp.method == SpeculativeConfig::Method::kEagle3 && !sp.draft_executor)
      fail("speculative method eagle3 needs the EAGLE-3 head's executor ({})",
           sp.model.empty() ? "no model given" : sp.model);
    if (sp.disable_by_batch_size < 0)
      fail("speculative disable_by_batch_size must be >= 0, got {}", sp.disable_by_batch_size);
  }
  return c;
}

}  // namespace inferd
