// Structured outputs in the engine: constraint compilation, the step's bitmasks, grammar advance.
#include "engine/structured_output_manager.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "core/logging.h"
#include "core/thread_pool.h"
#include "engine/grammar_vocab.h"
#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

namespace inferd {

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t tok) {
  return std::find(ids.begin(), ids.end(), tok) != ids.end();
}

}  // namespace

StructuredOutputManager::StructuredOutputManager(int32_t vocab_size,
                                                 std::vector<int32_t> eos_token_ids,
                                                 std::shared_ptr<const TextDecoder> decoder,
                                                 double compile_timeout_s)
    : vocab_(vocab_size),
      mask_words_(sampling::bitmask_words(vocab_size)),
      eos_token_ids_(std::move(eos_token_ids)),
      decoder_(std::move(decoder)),
      compile_timeout_s_(compile_timeout_s) {}

StructuredOutputManager::~StructuredOutputManager() = default;

StructuredCompiler& StructuredOutputManager::compiler() {
  std::lock_guard lk(compiler_mu_);
  if (!compiler_) {
    const auto* tok = dynamic_cast<const Tokenizer*>(decoder_.get());
    if (!tok) {
      throw InvalidRequestError(
          "structured outputs need the model's tokenizer, and this engine was started without one");
    }
    compiler_ = std::make_unique<StructuredCompiler>(
        tokenizer_info_from(*tok, vocab_, eos_token_ids_), 64, compile_timeout_s_);
  }
  return *compiler_;
}

std::shared_ptr<const grammar::CompiledGrammar> StructuredOutputManager::compile(
    const StructuredOutputs& so) {
  try {
    return compiler().compile(so);
  } catch (const grammar::GrammarError& e) {
    throw InvalidConstraintError(e.what());
  }
}

// The rows of this step that follow a grammar get a bitmask row. A device executor builds them
// while the forward runs on the GPU (SamplingBatch::fill_masks, called from execute()); otherwise
// they are built here, before the forward.
void StructuredOutputManager::prepare_masks(std::span<Sequence* const> rows,
                                            SamplingBatch& sampling, bool fill_late) {
  mask_seqs_.clear();
  mask_sample_index_.clear();
  mask_groups_.clear();
  accepted_.clear();
  mask_errors_.clear();
  for (size_t i = 0; i < rows.size(); ++i) {
    Sequence* q = rows[i];
    SeqOutputState& so = q->request->out_of(*q);
    // A sequence's draft rows follow its first row (speculative decoding): one group of mask
    // rows, the first named by so.mask_row.
    const bool draft_row = i > 0 && rows[i - 1] == q;
    if (!draft_row) so.mask_row = -1;
    if (so.matcher && so.grammar_on) {
      if (draft_row) {
        ++mask_groups_.back().second;
      } else {
        so.mask_row = int32_t(mask_seqs_.size());
        mask_groups_.push_back({mask_seqs_.size(), 1});
      }
      mask_seqs_.push_back(q);
      mask_sample_index_.push_back(i);
    }
  }
  if (mask_seqs_.empty()) return;
  mask_errors_.assign(mask_seqs_.size(), std::string());
  sampling.mask_words = mask_words_;
  if (fill_late) {
    sampling.num_mask_rows = int32_t(mask_seqs_.size());
    sampling.fill_masks = [this](uint32_t* dst) { fill_masks(dst); };
  } else {
    sampling.masks.resize(mask_seqs_.size() * size_t(mask_words_));
    fill_masks(sampling.masks.data());
  }
}

// Fills the bitmask rows of mask_seqs_ at `dst`, in parallel (rows are taken one at a time, as
// their cost varies a lot). Cost: bench/grammar_bench.
void StructuredOutputManager::fill_masks(uint32_t* dst) {
  const auto t0 = std::chrono::steady_clock::now();
  for_each_mask_group([&](size_t g) {
    const auto [first, count] = mask_groups_[g];
    Sequence* q = mask_seqs_[first];
    SeqOutputState& so = q->request->out_of(*q);
    // Row j of a sequence with drafts: the grammar after drafts 0..j-1 (checked against it when
    // proposed), rolled back once the rows are filled.
    int32_t advanced = 0;
    size_t j = 0;
    for (; j < count; ++j) {
      const size_t i = first + j;
      fill_mask_row(i, std::span<uint32_t>(dst + i * size_t(mask_words_), size_t(mask_words_)));
      if (j + 1 == count) break;
      if (!mask_errors_[i].empty() || !so.matcher->accept_token(q->drafts[j])) break;
      ++advanced;
    }
    // Rows past a draft the grammar refused allow nothing (the target cannot take that draft,
    // so they are never used).
    for (++j; j < count; ++j)
      std::fill_n(dst + (first + j) * size_t(mask_words_), size_t(mask_words_), 0u);
    if (advanced > 0) so.matcher->rollback(advanced);
  });
  num_masks_ += int64_t(mask_seqs_.size());
  mask_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void StructuredOutputManager::fill_mask_row(size_t i, std::span<uint32_t> m) {
  Sequence* q = mask_seqs_[i];
  RequestState& rs = *q->request;
  SeqOutputState& so = rs.out_of(*q);
  const std::vector<int32_t>& begin = rs.req.params.structured_outputs->begin_tokens;
  if (so.begin_pos < begin.size()) {  // only the next begin token
    std::fill(m.begin(), m.end(), 0u);
    const int32_t t = begin[so.begin_pos];
    m[size_t(t >> 5)] |= 1u << (t & 31);
    return;
  }
  bool failed = false;
  if (so.grammar_done) {
    std::fill(m.begin(), m.end(), 0u);
  } else {
    try {
      so.matcher->fill_next_token_bitmask(m);
    } catch (const std::exception& e) {  // the request fails after the step (accept_sampled)
      mask_errors_[i] = e.what();
      std::fill(m.begin(), m.end(), 0u);
      failed = true;
    }
  }
  // The request's own EOS ids stand for the grammar's end (they may differ from the model's).
  const bool can_end = failed || so.grammar_done || so.matcher->can_terminate();
  for (int32_t t : eos_token_ids_) m[size_t(t >> 5)] &= ~(1u << (t & 31));
  if (can_end) {
    for (int32_t t : rs.eos) m[size_t(t >> 5)] |= 1u << (t & 31);
  }
}

// Runs fn(g) for every group g of mask rows (a sequence's rows) on the mask threads, groups taken
// one at a time (their cost varies a lot).
void StructuredOutputManager::for_each_mask_group(const std::function<void(size_t)>& fn) {
  const size_t n = mask_groups_.size();
  if (n == 1) {
    fn(0);
    return;
  }
  if (!mask_pool_) {
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    mask_pool_ = std::make_unique<ThreadPool>(int(std::min(8u, hw)));
  }
  std::atomic<size_t> next{0};
  const int workers = int(std::min<size_t>(n, size_t(mask_pool_->num_threads())));
  mask_pool_->parallel_for(workers, [&](int64_t, int64_t, int) {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  });
}

// The grammars of this step's rows advanced by their sampled tokens, in parallel; accept_token
// reads the outcome (EOS at a complete grammar and finished grammars are left to it).
void StructuredOutputManager::accept_sampled(std::span<const SampledToken> sampled) {
  if (mask_seqs_.empty()) return;
  accepted_.assign(mask_seqs_.size(), int8_t(-1));
  // A sequence with draft rows advances by the tokens it takes, one by one, in accept_token.
  for_each_mask_group([&](size_t g) {
    const auto [i, count] = mask_groups_[g];
    if (count == 1) accept_row(i, sampled[mask_sample_index_[i]].token_id);
  });
}

void StructuredOutputManager::accept_row(size_t i, int32_t tok) {
  Sequence* q = mask_seqs_[i];
  RequestState& rs = *q->request;
  SeqOutputState& so = rs.out_of(*q);
  if (!mask_errors_[i].empty()) {
    accepted_[i] = 0;
    return;
  }
  const std::vector<int32_t>& begin = rs.req.params.structured_outputs->begin_tokens;
  if (so.begin_pos < begin.size()) {
    accepted_[i] = tok == begin[so.begin_pos] ? 1 : 0;
    so.begin_pos += accepted_[i] == 1 ? 1 : 0;
    return;
  }
  if (so.grammar_done) return;
  if (so.matcher->can_terminate() && contains(rs.eos, tok)) return;
  try {
    accepted_[i] = so.matcher->accept_token(tok) ? 1 : 0;
  } catch (const std::exception& e) {
    mask_errors_[i] = e.what();
    accepted_[i] = 0;
  }
}

// A token the grammar does not allow means the mask was not applied: the request fails rather
// than return output that breaks its constraint.
std::optional<std::string> StructuredOutputManager::accept_token(Sequence& seq, int32_t tok) {
  RequestState& rs = *seq.request;
  SeqOutputState& so = rs.out_of(seq);
  if (!so.grammar_on) {
    if (tok == *rs.req.params.structured_outputs->start_after_token) so.grammar_on = true;
    return std::nullopt;
  }
  if (so.grammar_done) return std::nullopt;
  if (contains(rs.eos, tok) && so.matcher->can_terminate()) {
    so.grammar_done = true;
    return std::nullopt;
  }
  const size_t row = size_t(so.mask_row);
  const bool ok = so.mask_row >= 0 && row < accepted_.size() && accepted_[row] >= 0
                      ? accepted_[row] == 1
                      : so.matcher->accept_token(tok);
  if (ok) return std::nullopt;
  if (so.mask_row >= 0 && row < mask_errors_.size() && !mask_errors_[row].empty()) {
    return fmt::format("structured outputs: {}", mask_errors_[row]);
  }
  LOG_ERROR("request {}: the grammar does not allow sampled token {}", rs.id, tok);
  return fmt::format("the structured-output grammar did not allow the sampled token {}", tok);
}

}  // namespace inferd
