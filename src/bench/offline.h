// In-process engine benchmarks (no HTTP): `inferd bench throughput` and `inferd bench latency`.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "bench/dataset.h"
#include "inferd/engine.h"

namespace inferd::bench {

// Prompts of the given lengths made of token ids drawn uniformly from [0, vocab_size) (for
// models without a tokenizer, such as --load-format dummy), deterministic for a seed.
std::vector<std::vector<int32_t>> random_token_prompts(const std::vector<int32_t>& lengths,
                                                       int32_t vocab_size, uint64_t seed);

struct ThroughputResult {
  size_t num_requests = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;  // generated, as the engine returned them
  double elapsed_s = 0;
  double requests_per_s = 0;
  double output_tok_s = 0;
  double total_tok_s = 0;  // (prompt + output) / elapsed
  size_t failed = 0;       // requests the engine finished with an error
};

// Submits every request at once (Engine::generate) with ignore_eos and min_tokens = max_tokens =
// the request's output length, and times the whole batch.
// `constraint` (optional) is put on every request: its grammar is enforced token by token (once it
// is complete only EOS is allowed, and ignore_eos keeps the length forced). `lora_ids` (optional):
// request i runs with LoRA adapter lora_ids[i % size] (issue 29's spread over adapters).
ThroughputResult run_throughput(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                const std::vector<int32_t>& output_lens, float temperature,
                                const std::optional<StructuredOutputs>& constraint = std::nullopt,
                                const std::vector<int32_t>& lora_ids = {});

struct LatencyResult {
  int32_t prompt_tokens = 0;
  int32_t output_tokens = 0;
  double ttft_s = 0;  // submit to the first generated token (prefill)
  double e2e_s = 0;
  double prefill_tok_s = 0;  // prompt_tokens / ttft
  double decode_tok_s = 0;   // (output_tokens - 1) / (e2e - ttft)
};

// One request, alone in the engine (with LoRA adapter `lora_id`; -1: the base model).
LatencyResult run_latency(Engine& engine, const std::vector<int32_t>& prompt, int32_t output_len,
                          float temperature, int32_t lora_id = -1);

// Fits (prompt, output) pairs into max_model_len: the output is shortened first (to at least 1
// token), then the prompt. Returns how many requests were changed.
size_t fit_to_context(std::vector<std::vector<int32_t>>& prompts, std::vector<int32_t>& outputs,
                      int32_t max_model_len);

}  // namespace inferd::bench
