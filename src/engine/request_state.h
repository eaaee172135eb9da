// The engine's state of one request: the request as submitted with its resolved limits (max_tokens,
// EOS ids, the ids banned before min_tokens, its compiled grammar), its sequences (n of them,
// created lazily), each sequence's output state (detokenizer, stop strings, place in the grammar)
// and the output being assembled in the current step. Owned by the engine thread once started.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/sequence.h"
#include "engine/stop_strings.h"
#include "grammar/grammar.h"
#include "inferd/engine.h"
#include "tokenizer/streaming_detokenizer.h"

namespace inferd {

// What one sequence has produced so far, as text and as a place in its grammar.
struct SeqOutputState {
  std::optional<StreamingDetokenizer> detok;
  StopStringMatcher stop;
  bool finished = false;
  // Structured outputs: the sequence's place in the grammar. `grammar_on` once the constraint
  // applies (from the start, or after StructuredOutputs::start_after_token); `grammar_done` once
  // an EOS id ended the grammar (only EOS ids are allowed after that, for ignore_eos).
  std::optional<grammar::GrammarMatcher> matcher;
  bool grammar_on = false;
  bool grammar_done = false;
  size_t begin_pos = 0;   // StructuredOutputs::begin_tokens generated so far
  int32_t mask_row = -1;  // this step's bitmask row
};

struct RequestState {
  std::string id;
  uint64_t number = 0;
  GenerateRequest req;
  int32_t max_tokens = 0;       // resolved
  std::vector<int32_t> eos;     // resolved EOS ids
  std::vector<int32_t> banned;  // EOS (unless ignore_eos) + stop ids: masked before min_tokens
  std::shared_ptr<const grammar::CompiledGrammar> grammar;  // structured outputs
  OutputCallback callback;
  std::vector<std::unique_ptr<Sequence>> seqs;  // created lazily: [0] at start, others at fork
  std::vector<SeqOutputState> outs;             // [n]
  bool forked = false;
  bool started = false;  // counted out of the waiting-queue limit
  bool aborted = false;
  int32_t num_finished = 0;
  RequestTimes times;  // goes out in the finished output
  // Output being assembled in the current step.
  RequestOutput pending;
  bool has_pending = false;
  // Prompt logprobs (params.prompt_logprobs): entry p belongs to prompt token p + 1; the first
  // prompt_lps_done entries are computed. Sent once, in the first output after the prompt ran.
  std::vector<SampleLogprobs> prompt_lps;
  int32_t prompt_lps_done = 0;
  bool prompt_lps_sent = false;
  // Embedding requests (req.pooling, resolved against the engine's pooling): the fp32 sum of the
  // pooled rows' final hidden states, and the prompt positions before pool_upto already summed.
  PoolingParams pooling;
  std::vector<float> pool_sum;
  int32_t pool_upto = 0;

  int32_t n() const { return req.params.n; }
  int32_t prompt_len() const { return int32_t(req.prompt_token_ids.size()); }
  bool is_embedding() const { return req.pooling.has_value(); }
  // Nothing is sampled: an embedding request, or max_tokens 0 (the prompt is only scored).
  bool prompt_only() const { return is_embedding() || max_tokens == 0; }
  bool wants_prompt_lps() const { return req.params.prompt_logprobs && !prompt_lps_sent; }
  SeqOutputState& out_of(const Sequence& seq) { return outs[size_t(seq.index)]; }
  // The pending delta of sequence `index` (created on first use in a step).
  SequenceDelta& delta(int32_t index);
};

// The state of a validated request: max_tokens and EOS ids resolved against `config`, the ids
// banned before min_tokens; `request.request_id`, the number, the grammar and the callback are
// the caller's to set.
std::unique_ptr<RequestState> new_request_state(GenerateRequest request,
                                                const EngineConfig& config);

// Creates sequence `index` of `rs` (id `seq_id`) and its output state: the sample key (from the
// request's seed, or from `engine_seed` and the request number), a detokenizer when `decoder` is
// given and the request wants text, its stop strings, its grammar matcher.
// `max_rollback_tokens`: draft tokens its grammar matcher must be able to undo (speculative
// decoding's k).
Sequence* add_sequence(RequestState& rs, int32_t index, int64_t seq_id, uint64_t engine_seed,
                       const TextDecoder* decoder, int32_t max_rollback_tokens = 0);

// An embedding request's vector from its pooled sum: averaged (MEAN), truncated to
// pooling.dimensions, L2-normalised when pooling.normalize.
std::vector<float> pooled_embedding(const RequestState& rs);

}  // namespace inferd
