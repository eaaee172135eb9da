#include "bench/offline.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/rng.h"

namespace inferd::bench {

using Clock = std::chrono::steady_clock;

namespace {

SamplingParams forced_params(int32_t output_len, float temperature) {
  SamplingParams p;
  p.max_tokens = output_len;
  p.min_tokens = output_len;
  p.ignore_eos = true;
  p.temperature = temperature;
  p.detokenize = false;
  return p;
}

}  // namespace

std::vector<std::vector<int32_t>> random_token_prompts(const std::vector<int32_t>& lengths,
                                                       int32_t vocab_size, uint64_t seed) {
  INFERD_CHECK(vocab_size > 0, "vocab_size {}", vocab_size);
  Rng rng(seed ^ 0x7f4a7c159e3779b9ull);
  std::vector<std::vector<int32_t>> out;
  out.reserve(lengths.size());
  for (int32_t n : lengths) {
    std::vector<int32_t> p(static_cast<size_t>(std::max(n, 1)));
    for (auto& t : p) t = int32_t(rng.next_u64() % uint64_t(vocab_size));
    out.push_back(std::move(p));
  }
  return out;
}

size_t fit_to_context(std::vector<std::vector<int32_t>>& prompts, std::vector<int32_t>& outputs,
                      int32_t max_model_len) {
  INFERD_CHECK(prompts.size() == outputs.size(), "{} prompts, {} outputs", prompts.size(),
               outputs.size());
  if (max_model_len < 2) fail("the context length {} is too short to benchmark", max_model_len);
  size_t changed = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t total = int64_t(prompts[i].size()) + outputs[i];
    if (total <= max_model_len) continue;
    ++changed;
    const int64_t over = total - max_model_len;
    const int32_t cut_out = int32_t(std::min<int64_t>(over, outputs[i] - 1));
    outputs[i] -= cut_out;
    const int64_t rest = over - cut_out;
    if (rest > 0) prompts[i].resize(prompts[i].size() - size_t(rest));
  }
  return changed;
}

ThroughputResult run_throughput(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                const std::vector<int32_t>& output_lens, float temperature,
                                const std::optional<StructuredOutputs>& constraint,
                                const std::vector<int32_t>& lora_ids) {
  INFERD_CHECK(prompts.size() == output_lens.size(), "{} prompts, {} output lengths",
               prompts.size(), output_lens.size());
  std::vector<GenerateRequest> reqs(prompts.size());
  ThroughputResult r;
  r.num_requests = prompts.size();
  for (size_t i = 0; i < prompts.size(); ++i) {
    reqs[i].prompt_token_ids = prompts[i];
    reqs[i].params = forced_params(output_lens[i], temperature);
    reqs[i].params.structured_outputs = constraint;
    if (!lora_ids.empty()) reqs[i].lora_adapter_id = lora_ids[i % lora_ids.size()];
    r.prompt_tokens += int64_t(prompts[i].size());
  }
  const Clock::time_point t0 = Clock::now();
  const std::vector<GenerateResult> results = engine.generate(std::move(reqs));
  r.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  for (const auto& g : results) {
    if (!g.error.empty()) ++r.failed;
    for (const auto& s : g.outputs) r.output_tokens += int64_t(s.token_ids.size());
  }
  const double d = std::max(r.elapsed_s, 1e-9);
  r.requests_per_s = double(r.num_requests - r.failed) / d;
  r.output_tok_s = double(r.output_tokens) / d;
  r.total_tok_s = double(r.prompt_tokens + r.output_tokens) / d;
  return r;
}

LatencyResult run_latency(Engine& engine, const std::vector<int32_t>& prompt, int32_t output_len,
                          float temperature, int32_t lora_id) {
  GenerateRequest req;
  req.prompt_token_ids = prompt;
  req.lora_adapter_id = lora_id;
  req.params = forced_params(output_len, temperature);
  LatencyResult r;
  r.prompt_tokens = int32_t(prompt.size());
  const Clock::time_point t0 = Clock::now();
  std::shared_ptr<RequestStream> stream = engine.submit_stream(std::move(req));
  Clock::time_point t_first{};
  bool first = true;
  while (std::optional<RequestOutput> out = stream->next()) {
    const Clock::time_point now = Clock::now();
    if (!out->error.empty()) fail("the engine failed the request: {}", out->error);
    for (const auto& d : out->outputs) {
      if (!d.token_ids.empty() && first) {
        t_first = now;
        first = false;
      }
      r.output_tokens += int32_t(d.token_ids.size());
    }
    if (out->finished) break;
  }
  const Clock::time_point t1 = Clock::now();
  if (first) fail("the engine generated no tokens");
  r.ttft_s = std::chrono::duration<double>(t_first - t0).count();
  r.e2e_s = std::chrono::duration<double>(t1 - t0).count();
  r.prefill_tok_s = double(r.prompt_tokens) / std::max(r.ttft_s, 1e-9);
  r.decode_tok_s =
      r.output_tokens > 1 ? double(r.output_tokens - 1) / std::max(r.e2e_s - r.ttft_s, 1e-9) : 0;
  return r;
}

}  // namespace inferd::bench
