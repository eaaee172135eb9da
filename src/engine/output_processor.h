// What the engine makes of sampled tokens: each token is appended to its sequence and to the
// step's delta of its request, with its logprobs; EOS, stop token ids, stop strings, max_tokens and
// max_model_len end the sequence (min_tokens holds off the stops); the streaming detokenizer turns
// tokens into text, held back while it could still become a stop string. At the end of a step the
// requests with news get one RequestOutput each, delivered to their callbacks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/request_state.h"
#include "engine/scheduler.h"
#include "engine/structured_output_manager.h"

namespace inferd {

// One request's output of a step, ready for its callback.
struct ReadyOutput {
  RequestState* request = nullptr;
  RequestOutput output;
};

class OutputProcessor {
 public:
  OutputProcessor(int32_t max_model_len, Scheduler& sched, StructuredOutputManager& structured)
      : max_model_len_(max_model_len), sched_(sched), structured_(structured) {}

  // Appends the token sampled for `seq` (advancing its grammar first: a token the grammar refuses
  // fails the request) and finishes the sequence when it stops.
  void process_token(Sequence& seq, SampledToken& sampled);
  // Ends every unfinished sequence of `rs` with reason abort; `error` (optional) tells the client
  // why the engine failed the request.
  void abort_request(RequestState& rs, const std::string& error);
  // A prompt-only request (RequestState::prompt_only) whose prompt ran: every sequence finishes
  // (length for max_tokens 0, stop for an embedding, which the output carries).
  void finish_prompt_only(RequestState& rs);

  // Moves the outputs assembled in this step into `ready` (one per request with news), with
  // `finished` set for requests whose sequences have all finished.
  void take_outputs(std::vector<ReadyOutput>& ready);
  // Calls each output's callback (on the engine thread, no lock held); a callback that throws is
  // logged.
  static void deliver(std::vector<ReadyOutput>& ready);

  int64_t generation_tokens() const { return generation_tokens_; }

 private:
  SequenceDelta& delta_of(RequestState& rs, int32_t index);
  std::optional<FinishReason> stop_on_token(Sequence& seq, SequenceDelta& d, int32_t tok);
  std::optional<FinishReason> stop_on_text(Sequence& seq, SequenceDelta& d, int32_t tok);
  std::optional<size_t> finish_text(Sequence& seq, SequenceDelta& d, bool allow_stop_match);
  bool finish_unfinished(RequestState& rs, FinishReason reason);
  void finish_sequence(Sequence& seq, FinishReason reason);

  int32_t max_model_len_;
  Scheduler& sched_;
  StructuredOutputManager& structured_;
  std::vector<RequestState*> touched_;  // requests with a pending output this step
  int64_t generation_tokens_ = 0;
};

}  // namespace inferd
