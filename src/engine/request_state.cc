// The engine's per-request state: resolving a request's limits, creating its sequences.
#include "engine/request_state.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/rng.h"
#include "tokenizer/text_decoder.h"

namespace inferd {

namespace {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t s = a ^ (b * 0xd6e8feb86659fd93ull);
  splitmix64(s);
  return splitmix64(s);
}

}  // namespace

SequenceDelta& RequestState::delta(int32_t index) {
  if (!has_pending) {
    has_pending = true;
    pending.request_id = id;
    pending.num_prompt_tokens = int32_t(req.prompt_token_ids.size());
  }
  for (auto& d : pending.outputs) {
    if (d.index == index) return d;
  }
  pending.outputs.emplace_back();
  pending.outputs.back().index = index;
  return pending.outputs.back();
}

std::unique_ptr<RequestState> new_request_state(GenerateRequest request,
                                                const EngineConfig& config) {
  auto rs = std::make_unique<RequestState>();
  const SamplingParams& p = request.params;
  const int32_t plen = int32_t(request.prompt_token_ids.size());
  rs->max_tokens = request.pooling ? 0 : p.max_tokens ? *p.max_tokens : config.max_model_len - plen;
  if (p.prompt_logprobs) rs->prompt_lps.resize(size_t(std::max(0, plen - 1)));
  if (request.pooling) {
    const PoolingParams& q = *request.pooling;
    rs->pooling.type = q.type.value_or(config.pooling.type);
    rs->pooling.normalize = q.normalize.value_or(config.pooling.normalize);
    rs->pooling.dimensions = q.dimensions;
  }
  rs->eos = request.eos_token_ids ? *request.eos_token_ids : config.eos_token_ids;
  if (!p.ignore_eos) rs->banned = rs->eos;
  rs->banned.insert(rs->banned.end(), p.stop_token_ids.begin(), p.stop_token_ids.end());
  std::sort(rs->banned.begin(), rs->banned.end());
  rs->banned.erase(std::unique(rs->banned.begin(), rs->banned.end()), rs->banned.end());
  rs->outs.resize(size_t(p.n));
  if (!request.arrival_time) request.arrival_time = std::chrono::steady_clock::now();
  rs->req = std::move(request);
  return rs;
}

Sequence* add_sequence(RequestState& rs, int32_t index, int64_t seq_id, uint64_t engine_seed,
                       const TextDecoder* decoder, int32_t max_rollback_tokens) {
  const SamplingParams& p = rs.req.params;
  auto seq = std::make_unique<Sequence>();
  seq->id = seq_id;
  seq->request = &rs;
  seq->index = index;
  seq->priority = rs.req.priority;
  seq->arrival_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(rs.req.arrival_time->time_since_epoch())
          .count();
  seq->request_number = rs.number;
  seq->tokens = rs.req.prompt_token_ids;
  seq->tokens.reserve(rs.req.prompt_token_ids.size() + size_t(rs.max_tokens));
  seq->prompt_len = int32_t(rs.req.prompt_token_ids.size());
  const uint64_t base = p.seed ? *p.seed : mix_seed(engine_seed, rs.number);
  seq->sample_key = mix_seed(base, uint64_t(index));
  seq->adapter_id = rs.req.lora_adapter_id;
  seq->images = rs.req.images;
  // Prompt logprobs, mean and CLS pooling need every prompt position computed (LAST pooling only
  // the last, which admission always computes).
  seq->reuse_prefix = index > 0 || !(p.prompt_logprobs ||
                                     (rs.is_embedding() && rs.pooling.type != PoolingType::kLast));
  SeqOutputState& so = rs.outs[size_t(index)];
  if (decoder && p.detokenize) {
    so.detok.emplace(*decoder, p.skip_special_tokens, std::span<const int32_t>(seq->tokens),
                     p.skip_special_tokens || p.spaces_between_special_tokens);
  }
  so.stop = StopStringMatcher(p.stop, p.include_stop_str_in_output);
  if (rs.grammar) {
    so.matcher.emplace(rs.grammar, max_rollback_tokens);
    so.grammar_on = !p.structured_outputs->start_after_token;
  }
  Sequence* raw = seq.get();
  rs.seqs.push_back(std::move(seq));
  return raw;
}

std::vector<float> pooled_embedding(const RequestState& rs) {
  std::vector<float> v = rs.pool_sum;
  if (rs.pooling.type == PoolingType::kMean && rs.prompt_len() > 0)
    for (float& x : v) x /= float(rs.prompt_len());
  if (rs.pooling.dimensions && size_t(*rs.pooling.dimensions) < v.size())
    v.resize(size_t(*rs.pooling.dimensions));
  if (rs.pooling.normalize.value_or(false)) {
    double ss = 0;
    for (float x : v) ss += double(x) * double(x);
    // As torch.nn.functional.normalize: divided by max(norm, 1e-12).
    const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
    for (float& x : v) x = float(double(x) * inv);
  }
  return v;
}

}  // namespace inferd
