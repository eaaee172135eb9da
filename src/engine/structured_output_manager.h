// Structured outputs in the engine: compiles a request's constraint (StructuredOutputs) into a
// grammar, builds the next-token bitmasks of a step's constrained rows on the mask threads (while
// the forward runs, when the executor fills masks late), advances each sequence's grammar by its
// sampled token, and says when a grammar has ended or refused a token. The per-sequence grammar
// state lives in SeqOutputState (request_state.h); this class holds the compiler and the step's
// mask rows.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/sampling.h"
#include "engine/request_state.h"
#include "engine/structured_constraint.h"

namespace inferd {

class ThreadPool;
class TextDecoder;

class StructuredOutputManager {
 public:
  // `decoder` must be a Tokenizer for constraints to compile; `eos_token_ids` are the model's;
  // `compile_timeout_s` > 0 bounds one constraint's compile (EngineConfig).
  StructuredOutputManager(int32_t vocab_size, std::vector<int32_t> eos_token_ids,
                          std::shared_ptr<const TextDecoder> decoder, double compile_timeout_s = 0);
  ~StructuredOutputManager();

  // Compiles a constraint (any thread). Throws InvalidConstraintError naming the problem, or
  // InvalidRequestError when the engine has no tokenizer.
  std::shared_ptr<const grammar::CompiledGrammar> compile(const StructuredOutputs& so);

  // Gives this step's rows that follow a grammar a bitmask row (SeqOutputState::mask_row) and
  // arranges for their masks in `sampling`: built now, or by the executor's call of
  // sampling.fill_masks while the forward runs (`fill_late`).
  void prepare_masks(std::span<Sequence* const> rows, SamplingBatch& sampling, bool fill_late);

  // Advances the grammars of this step's mask rows by their sampled tokens (`sampled` is indexed
  // like the rows given to prepare_masks), in parallel; accept_token reads the outcome.
  void accept_sampled(std::span<const SampledToken> sampled);

  // Advances `seq`'s grammar by its sampled token `tok` (after accept_sampled). nullopt: the
  // token is part of the output; otherwise why the request must fail (the mask was not applied,
  // or the grammar failed).
  std::optional<std::string> accept_token(Sequence& seq, int32_t tok);

  // True when this step has rows with a grammar.
  bool has_mask_rows() const { return !mask_seqs_.empty(); }

  int64_t num_masks() const { return num_masks_; }
  double mask_seconds() const { return mask_s_; }
  double accept_seconds() const { return accept_s_; }
  void add_accept_seconds(double s) { accept_s_ += s; }

 private:
  StructuredCompiler& compiler();
  void fill_masks(uint32_t* dst);
  void fill_mask_row(size_t i, std::span<uint32_t> m);
  void accept_row(size_t i, int32_t tok);
  void for_each_mask_group(const std::function<void(size_t)>& fn);

  int32_t vocab_;
  int32_t mask_words_;
  std::vector<int32_t> eos_token_ids_;  // the model's: the grammar's end is the request's EOS
  std::shared_ptr<const TextDecoder> decoder_;
  double compile_timeout_s_;
  std::mutex compiler_mu_;  // guards compiler_'s creation (submitting threads)
  std::unique_ptr<StructuredCompiler> compiler_;

  // This step (engine thread; the mask threads write their own rows).
  std::vector<Sequence*> mask_seqs_;       // rows with a grammar this step
  std::vector<size_t> mask_sample_index_;  // their index among the step's sampled rows
  // Per sequence: its first mask row and how many it has (1 + its drafts).
  std::vector<std::pair<size_t, size_t>> mask_groups_;
  std::vector<std::string> mask_errors_;   // per mask row: why its grammar failed (rare)
  std::vector<int8_t> accepted_;           // per mask row: grammar advanced (1), refused
                                           // (0), or left to accept_token (-1)
  std::unique_ptr<ThreadPool> mask_pool_;  // fills the bitmasks of a step in parallel

  int64_t num_masks_ = 0;
  double mask_s_ = 0, accept_s_ = 0;
};

}  // namespace inferd
