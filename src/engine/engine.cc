#include "inferd/engine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/logging.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "engine/grammar_vocab.h"
#include "engine/kv_cache_manager.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "engine/stop_strings.h"
#include "engine/structured_constraint.h"
#include "grammar/grammar.h"
#include "model/executor.h"
#include "tokenizer/streaming_detokenizer.h"
#include "tokenizer/text_decoder.h"
#include "tokenizer/tokenizer.h"

namespace inferd {

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
  }
  return "?";
}

// ---- GenerateResult / RequestStream -----------------------------------------------------------

void GenerateResult::accumulate(RequestOutput&& out) {
  request_id = out.request_id;
  num_prompt_tokens = out.num_prompt_tokens;
  num_cached_tokens = std::max(num_cached_tokens, out.num_cached_tokens);
  if (!out.error.empty()) error = out.error;
  for (auto& d : out.outputs) {
    while (outputs.size() <= size_t(d.index)) {
      outputs.emplace_back();
      outputs.back().index = int32_t(outputs.size() - 1);
    }
    SequenceResult& r = outputs[size_t(d.index)];
    r.token_ids.insert(r.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
    r.text += d.text;
    for (auto& lp : d.logprobs) r.logprobs.push_back(std::move(lp));
    if (d.finish_reason) r.finish_reason = *d.finish_reason;
    if (d.stop_token_id) r.stop_token_id = d.stop_token_id;
    if (d.stop_string) r.stop_string = std::move(d.stop_string);
  }
}

std::optional<RequestOutput> RequestStream::next() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !queue_.empty() || finished_taken_; });
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  if (out.finished) finished_taken_ = true;
  return out;
}

std::optional<RequestOutput> RequestStream::try_next() {
  std::lock_guard lk(mu_);
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  if (out.finished) finished_taken_ = true;
  return out;
}

bool RequestStream::done() const {
  std::lock_guard lk(mu_);
  return finished_taken_;
}

void RequestStream::push(RequestOutput&& out) {
  {
    std::lock_guard lk(mu_);
    if (finished_pushed_) return;
    finished_pushed_ = out.finished;
    queue_.push_back(std::move(out));
  }
  cv_.notify_all();
}

// ---- Engine internals -------------------------------------------------------------------------

namespace {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t s = a ^ (b * 0xd6e8feb86659fd93ull);
  splitmix64(s);
  return splitmix64(s);
}

template <typename... Args>
[[noreturn]] void bad_request(fmt::format_string<Args...> f, Args&&... args) {
  throw InvalidRequestError(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace

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
  // Output being assembled in the current step.
  RequestOutput pending;
  bool has_pending = false;

  int32_t n() const { return req.params.n; }
  SequenceDelta& delta(int32_t index) {
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
};

class Engine::Impl {
 public:
  Impl(std::shared_ptr<ModelExecutor> executor, EngineConfig config,
       std::shared_ptr<const TextDecoder> decoder);
  ~Impl() { shutdown(); }

  std::string submit(GenerateRequest request, OutputCallback cb, bool ignore_queue_limit);
  bool abort(const std::string& id);
  void validate(const GenerateRequest& r) const;
  void shutdown();
  EngineStats stats() const {
    std::lock_guard lk(stats_mu_);
    return stats_;
  }

  EngineConfig config_;
  int32_t vocab_ = 0;

 private:
  void run();
  void start_request(std::unique_ptr<RequestState> rs);
  Sequence* new_sequence(RequestState& rs, int32_t index);
  void step();
  void add_sampling_row(const Sequence& q);
  void prepare_masks();
  void fill_masks(uint32_t* dst);
  void for_each_mask_row(const std::function<void(size_t)>& fn);
  void accept_sampled();
  bool accept_grammar_token(Sequence* seq, int32_t tok);
  StructuredCompiler& structured_compiler();
  void process_token(Sequence* seq, SampledToken& sampled);
  SequenceDelta& delta_of(RequestState& rs, int32_t index);
  std::optional<size_t> finish_text(Sequence* seq, SequenceDelta& d, bool allow_stop_match);
  void finish_sequence(Sequence* seq, FinishReason reason);
  void fork(RequestState& rs);
  void abort_request(RequestState& rs, const std::string& error);
  void abort_all(const std::string& error);
  void deliver();
  void publish_stats();

  std::shared_ptr<ModelExecutor> exec_;
  std::shared_ptr<const TextDecoder> decoder_;
  int32_t block_size_ = 0;
  KvCacheManager kv_;
  Scheduler sched_;

  // Shared with submitting threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<RequestState>> incoming_;
  std::vector<std::string> aborts_;
  std::unordered_set<std::string> live_;
  uint64_t next_number_ = 0;
  bool stopping_ = false;
  std::atomic<int64_t> queued_{0};  // submitted, not started, not finished
  mutable std::mutex stats_mu_;
  EngineStats stats_;
  std::thread thread_;

  // Engine thread only.
  std::unordered_map<std::string, std::unique_ptr<RequestState>> requests_;
  std::vector<RequestState*> touched_;
  std::vector<std::pair<RequestState*, RequestOutput>> ready_;
  int64_t next_seq_id_ = 0;
  ForwardBatch batch_;
  std::vector<ScheduledSeq> scheduled_;
  std::vector<Sequence*> row_seqs_;
  SamplingBatch sampling_;
  LogitEditBuilder edit_builder_;
  std::vector<SampledToken> sampled_;
  std::vector<Sequence*> mask_seqs_;       // rows with a grammar this step
  std::vector<size_t> mask_sample_index_;  // their index in row_seqs_ / sampled_
  std::vector<std::string> mask_errors_;   // per mask row: why its grammar failed (rare)
  std::vector<int8_t> accepted_;           // per mask row: grammar advanced (1), refused
                                           // (0), or left to process_token (-1)
  std::unique_ptr<ThreadPool> mask_pool_;  // fills the bitmasks of a step in parallel
  std::mutex compiler_mu_;                 // guards compiler_'s creation (submitting threads)
  std::unique_ptr<StructuredCompiler> compiler_;
  int64_t num_steps_ = 0, tokens_computed_ = 0, generation_tokens_ = 0;
  int64_t requests_finished_ = 0, requests_aborted_ = 0;
  int64_t grammar_masks_ = 0;
  double grammar_mask_s_ = 0, grammar_accept_s_ = 0;
};

namespace {
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
  if (!c.enable_chunked_prefill && c.max_num_batched_tokens < c.max_model_len) {
    fail("without chunked prefill max_num_batched_tokens ({}) must be >= max_model_len ({})",
         c.max_num_batched_tokens, c.max_model_len);
  }
  for (int32_t t : c.eos_token_ids) {
    if (t < 0 || t >= exec.vocab_size()) {
      fail("eos token id {} is outside the vocabulary [0, {})", t, exec.vocab_size());
    }
  }
  return c;
}
}  // namespace

Engine::Impl::Impl(std::shared_ptr<ModelExecutor> executor, EngineConfig config,
                   std::shared_ptr<const TextDecoder> decoder)
    : config_(resolve_config(std::move(config), *executor)),
      vocab_(executor->vocab_size()),
      exec_(std::move(executor)),
      decoder_(std::move(decoder)),
      block_size_(exec_->block_size()),
      kv_(exec_->num_kv_blocks(), exec_->block_size(), config_.enable_prefix_caching),
      sched_(SchedulerConfig{config_.max_num_seqs, config_.max_num_batched_tokens,
                             config_.enable_chunked_prefill},
             kv_),
      edit_builder_(vocab_) {
  publish_stats();
  thread_ = std::thread([this] { run(); });
}

void Engine::Impl::validate(const GenerateRequest& r) const {
  const SamplingParams& p = r.params;
  const int32_t plen = int32_t(r.prompt_token_ids.size());
  if (plen == 0) bad_request("the prompt is empty; expected at least one token");
  for (int32_t t : r.prompt_token_ids) {
    if (t < 0 || t >= vocab_)
      bad_request("prompt token id {} is outside the vocabulary [0, {})", t, vocab_);
  }
  if (p.n < 1) bad_request("n must be at least 1, got {}", p.n);
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    bad_request("temperature must be a finite number >= 0, got {}", p.temperature);
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad_request("top_p must be in (0, 1], got {}", p.top_p);
  if (p.top_k < -1) bad_request("top_k must be -1 or 0 (off) or positive, got {}", p.top_k);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    bad_request("min_p must be in [0, 1], got {}", p.min_p);
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty)) {
    bad_request("repetition_penalty must be > 0, got {}", p.repetition_penalty);
  }
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    bad_request("presence_penalty must be in [-2, 2], got {}", p.presence_penalty);
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    bad_request("frequency_penalty must be in [-2, 2], got {}", p.frequency_penalty);
  }
  for (const auto& [t, b] : p.logit_bias) {
    if (t < 0 || t >= vocab_)
      bad_request("logit_bias token id {} is outside the vocabulary [0, {})", t, vocab_);
    if (!std::isfinite(b)) bad_request("logit_bias for token {} must be finite, got {}", t, b);
  }
  if (p.max_tokens && *p.max_tokens < 1)
    bad_request("max_tokens must be at least 1, got {}", *p.max_tokens);
  if (p.min_tokens < 0) bad_request("min_tokens must be >= 0, got {}", p.min_tokens);
  const int32_t L = config_.max_model_len;
  if (p.max_tokens) {
    if (int64_t(plen) + *p.max_tokens > L) {
      bad_request(
          "the prompt ({} tokens) plus max_tokens ({}) is {} tokens, more than max_model_len ({})",
          plen, *p.max_tokens, int64_t(plen) + *p.max_tokens, L);
    }
    if (p.min_tokens > *p.max_tokens) {
      bad_request("min_tokens ({}) must not exceed max_tokens ({})", p.min_tokens, *p.max_tokens);
    }
  } else {
    if (plen >= L) {
      bad_request("the prompt ({} tokens) leaves no room to generate within max_model_len ({})",
                  plen, L);
    }
    if (p.min_tokens > L - plen) {
      bad_request("min_tokens ({}) exceeds the room left after the prompt ({} tokens)",
                  p.min_tokens, L - plen);
    }
  }
  for (int32_t t : p.stop_token_ids) {
    if (t < 0 || t >= vocab_)
      bad_request("stop token id {} is outside the vocabulary [0, {})", t, vocab_);
  }
  if (r.eos_token_ids) {
    for (int32_t t : *r.eos_token_ids) {
      if (t < 0 || t >= vocab_)
        bad_request("eos token id {} is outside the vocabulary [0, {})", t, vocab_);
    }
  }
  if (p.logprobs && (*p.logprobs < 0 || *p.logprobs > config_.max_logprobs)) {
    bad_request("logprobs must be in [0, {}], got {}", config_.max_logprobs, *p.logprobs);
  }
  for (const auto& s : p.stop) {
    if (s.empty()) bad_request("stop strings must not be empty");
  }
  if (p.structured_outputs) {
    for (int32_t t : p.structured_outputs->begin_tokens) {
      if (t < 0 || t >= vocab_)
        bad_request("structured outputs: begin token id {} is outside the vocabulary [0, {})", t,
                    vocab_);
    }
  }
  if (!p.stop.empty() && (!decoder_ || !p.detokenize)) {
    bad_request("stop strings need detokenization (a tokenizer and detokenize=true)");
  }
}

std::string Engine::Impl::submit(GenerateRequest request, OutputCallback cb,
                                 bool ignore_queue_limit) {
  validate(request);
  auto rs = std::make_unique<RequestState>();
  const SamplingParams& p = request.params;
  const int32_t plen = int32_t(request.prompt_token_ids.size());
  rs->max_tokens = p.max_tokens ? *p.max_tokens : config_.max_model_len - plen;
  rs->eos = request.eos_token_ids ? *request.eos_token_ids : config_.eos_token_ids;
  if (!p.ignore_eos) rs->banned = rs->eos;
  rs->banned.insert(rs->banned.end(), p.stop_token_ids.begin(), p.stop_token_ids.end());
  std::sort(rs->banned.begin(), rs->banned.end());
  rs->banned.erase(std::unique(rs->banned.begin(), rs->banned.end()), rs->banned.end());
  if (p.structured_outputs) {
    try {
      rs->grammar = structured_compiler().compile(*p.structured_outputs);
    } catch (const grammar::GrammarError& e) {
      throw InvalidConstraintError(e.what());
    }
  }
  rs->callback = std::move(cb);
  rs->outs.resize(size_t(p.n));
  if (!request.arrival_time) request.arrival_time = std::chrono::steady_clock::now();
  std::string id;
  {
    std::lock_guard lk(mu_);
    if (stopping_) throw EngineStoppedError("the engine is shut down");
    if (!ignore_queue_limit && config_.max_queue > 0 && queued_.load() >= config_.max_queue) {
      throw QueueFullError(
          fmt::format("the waiting queue is full ({} requests waiting, max_queue {}); retry later",
                      queued_.load(), config_.max_queue));
    }
    rs->number = next_number_++;
    if (request.request_id.empty()) request.request_id = fmt::format("req-{}", rs->number);
    if (live_.count(request.request_id)) {
      throw InvalidRequestError(fmt::format(
          "request id '{}' is already in use by a running request", request.request_id));
    }
    live_.insert(request.request_id);
    rs->id = request.request_id;
    rs->req = std::move(request);
    id = rs->id;
    ++queued_;
    incoming_.push_back(std::move(rs));
  }
  cv_.notify_one();
  return id;
}

bool Engine::Impl::abort(const std::string& id) {
  {
    std::lock_guard lk(mu_);
    if (!live_.count(id)) return false;
    aborts_.push_back(id);
  }
  cv_.notify_one();
  return true;
}

void Engine::Impl::shutdown() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Engine::Impl::run() {
  std::vector<std::unique_ptr<RequestState>> incoming;
  std::vector<std::string> aborts;
  while (true) {
    bool stop = false;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] {
        return stopping_ || !incoming_.empty() || !aborts_.empty() || sched_.has_work();
      });
      incoming.swap(incoming_);
      aborts.swap(aborts_);
      stop = stopping_;
    }
    for (auto& r : incoming) start_request(std::move(r));
    incoming.clear();
    for (const auto& id : aborts) {
      auto it = requests_.find(id);
      if (it != requests_.end()) abort_request(*it->second, "");
    }
    aborts.clear();
    if (stop) {
      abort_all("the engine was shut down");
      deliver();
      break;
    }
    if (sched_.has_work()) {
      try {
        step();
      } catch (const std::exception& e) {
        LOG_ERROR("engine step failed: {}", e.what());
        abort_all(fmt::format("the engine failed: {}", e.what()));
      }
    }
    deliver();
  }
}

Sequence* Engine::Impl::new_sequence(RequestState& rs, int32_t index) {
  const SamplingParams& p = rs.req.params;
  auto seq = std::make_unique<Sequence>();
  seq->id = next_seq_id_++;
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
  const uint64_t base = p.seed ? *p.seed : mix_seed(config_.seed, rs.number);
  seq->sample_key = mix_seed(base, uint64_t(index));
  SeqOutputState& so = rs.outs[size_t(index)];
  if (decoder_ && p.detokenize) {
    so.detok.emplace(*decoder_, p.skip_special_tokens, std::span<const int32_t>(seq->tokens));
  }
  so.stop = StopStringMatcher(p.stop, p.include_stop_str_in_output);
  if (rs.grammar) {
    so.matcher.emplace(rs.grammar);
    so.grammar_on = !p.structured_outputs->start_after_token;
  }
  Sequence* raw = seq.get();
  rs.seqs.push_back(std::move(seq));
  return raw;
}

void Engine::Impl::start_request(std::unique_ptr<RequestState> rs) {
  RequestState* r = rs.get();
  requests_[r->id] = std::move(rs);
  sched_.add_waiting(new_sequence(*r, 0));
}

void Engine::Impl::fork(RequestState& rs) {
  rs.forked = true;
  for (int32_t i = 1; i < rs.n(); ++i) {
    Sequence* c = new_sequence(rs, i);
    c->share_from = rs.seqs[0].get();
    sched_.add_waiting(c);
  }
}

void Engine::Impl::step() {
  sched_.schedule(scheduled_);
  if (scheduled_.empty()) {
    // Cannot happen while every request fits the pool (checked at submit); never spin.
    LOG_ERROR("the scheduler found nothing to run with {} waiting", sched_.num_waiting());
    abort_all("the engine could not schedule the request");
    return;
  }
  batch_.clear();
  row_seqs_.clear();
  for (const ScheduledSeq& s : scheduled_) {
    Sequence* q = s.seq;
    RequestState& rs = *q->request;
    if (q->index == 0 && !rs.started) {
      rs.started = true;
      --queued_;
    }
    SeqBatchInfo info;
    info.q_start = batch_.num_tokens();
    info.q_len = s.num_tokens;
    info.kv_len = q->num_computed + s.num_tokens;
    info.block_table_offset = int32_t(batch_.block_tables.size());
    info.num_blocks = int32_t(q->blocks.size());
    batch_.block_tables.insert(batch_.block_tables.end(), q->blocks.begin(), q->blocks.end());
    for (int32_t j = 0; j < s.num_tokens; ++j) {
      batch_.token_ids.push_back(q->tokens[size_t(q->num_computed + j)]);
      batch_.positions.push_back(q->num_computed + j);
    }
    if (info.kv_len == q->num_tokens()) {
      batch_.logit_rows.push_back(info.q_start + info.q_len - 1);
      row_seqs_.push_back(q);
    }
    batch_.seqs.push_back(info);
  }
  sampling_.clear();
  prepare_masks();
  for (Sequence* q : row_seqs_) add_sampling_row(*q);
  sampled_.resize(row_seqs_.size());
  exec_->execute(batch_, sampling_, sampled_);
  ++num_steps_;
  tokens_computed_ += batch_.num_tokens();

  for (const ScheduledSeq& s : scheduled_) {
    s.seq->num_computed += s.num_tokens;
    kv_.register_computed(*s.seq);
  }

  const auto t_proc = std::chrono::steady_clock::now();
  accept_sampled();
  for (size_t i = 0; i < row_seqs_.size(); ++i) process_token(row_seqs_[i], sampled_[i]);
  if (!mask_seqs_.empty()) {
    grammar_accept_s_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_proc).count();
  }
}

void Engine::Impl::add_sampling_row(const Sequence& q) {
  const RequestState& rs = *q.request;
  const SamplingParams& p = rs.req.params;
  SamplingRow row;
  row.temperature = p.temperature;
  row.top_p = p.top_p;
  row.top_k = p.top_k;
  row.min_p = p.min_p;
  row.repetition_penalty = p.repetition_penalty;
  row.presence_penalty = p.presence_penalty;
  row.frequency_penalty = p.frequency_penalty;
  row.num_logprobs = p.logprobs ? *p.logprobs : -1;
  row.seed = q.sample_key;
  row.counter = uint64_t(q.num_output());  // the output position being sampled
  const SeqOutputState& so = rs.outs[size_t(q.index)];
  row.mask_row = so.mask_row;
  const std::span<const int32_t> prompt(q.tokens.data(), size_t(q.prompt_len));
  const std::span<const int32_t> output(q.tokens.data() + q.prompt_len, size_t(q.num_output()));
  // A grammar that is complete decides that the output ends: min_tokens does not ban EOS then
  // (the grammar would allow nothing else).
  const bool grammar_complete = so.mask_row >= 0 && so.matcher->can_terminate();
  const std::span<const int32_t> banned = q.num_output() < p.min_tokens && !grammar_complete
                                              ? std::span<const int32_t>(rs.banned)
                                              : std::span<const int32_t>();
  edit_builder_.append(row, banned, p.logit_bias, prompt, output, sampling_.edits);
  sampling_.rows.push_back(row);
}

SequenceDelta& Engine::Impl::delta_of(RequestState& rs, int32_t index) {
  if (!rs.has_pending) touched_.push_back(&rs);
  return rs.delta(index);
}

std::optional<size_t> Engine::Impl::finish_text(Sequence* seq, SequenceDelta& d,
                                                bool allow_stop_match) {
  SeqOutputState& so = seq->request->outs[size_t(seq->index)];
  if (!so.detok) return std::nullopt;
  const std::string tail = so.detok->finish();
  std::optional<size_t> m;
  if (allow_stop_match) {
    m = so.stop.push(tail, d.text);
  } else {
    d.text += tail;
  }
  if (!m) d.text += so.stop.flush();
  return m;
}

void Engine::Impl::process_token(Sequence* seq, SampledToken& sampled) {
  RequestState& rs = *seq->request;
  const SamplingParams& p = rs.req.params;
  SeqOutputState& so = rs.outs[size_t(seq->index)];
  if (so.finished) return;                      // its request failed earlier in this step
  if (seq->index == 0 && !rs.forked) fork(rs);  // the prompt is computed: start the others

  const int32_t tok = sampled.token_id;
  if (so.matcher && !accept_grammar_token(seq, tok)) return;
  seq->tokens.push_back(tok);
  ++generation_tokens_;
  SequenceDelta& d = delta_of(rs, seq->index);
  d.token_ids.push_back(tok);
  if (sampled.has_logprobs) d.logprobs.push_back(std::move(sampled.logprobs));

  const int32_t out_len = seq->num_output();
  const bool may_stop = out_len >= p.min_tokens;
  const bool is_eos = !p.ignore_eos && std::find(rs.eos.begin(), rs.eos.end(), tok) != rs.eos.end();
  const bool is_stop_id =
      std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), tok) != p.stop_token_ids.end();
  std::optional<FinishReason> fin;
  if (may_stop && (is_eos || is_stop_id)) {
    fin = FinishReason::kStop;
    if (!is_eos) d.stop_token_id = tok;
    std::string t;
    if (so.detok && !is_eos && p.include_stop_str_in_output) t = so.detok->push(tok);
    d.text += so.stop.flush();  // nothing can complete a stop string any more
    d.text += t;
    if (so.detok) d.text += so.detok->finish();
  } else {
    if (so.detok) {
      const std::string t = so.detok->push(tok);
      if (may_stop) {
        if (auto m = so.stop.push(t, d.text)) {
          fin = FinishReason::kStop;
          d.stop_string = p.stop[*m];
        }
      } else {
        d.text += t;
      }
    }
    if (!fin && (out_len >= rs.max_tokens || seq->num_tokens() >= config_.max_model_len)) {
      fin = FinishReason::kLength;
      if (auto m = finish_text(seq, d, may_stop)) {
        fin = FinishReason::kStop;
        d.stop_string = p.stop[*m];
      }
    }
  }
  if (fin) finish_sequence(seq, *fin);
}

StructuredCompiler& Engine::Impl::structured_compiler() {
  std::lock_guard lk(compiler_mu_);
  if (!compiler_) {
    const auto* tok = dynamic_cast<const Tokenizer*>(decoder_.get());
    if (!tok) {
      throw InvalidRequestError(
          "structured outputs need the model's tokenizer, and this engine was started without one");
    }
    compiler_ = std::make_unique<StructuredCompiler>(
        tokenizer_info_from(*tok, vocab_, config_.eos_token_ids));
  }
  return *compiler_;
}

// The rows of this step that follow a grammar get a bitmask row. A device executor builds them
// while the forward runs on the GPU (SamplingBatch::fill_masks, called from execute()); otherwise
// they are built here, before the forward.
void Engine::Impl::prepare_masks() {
  mask_seqs_.clear();
  mask_sample_index_.clear();
  accepted_.clear();
  mask_errors_.clear();
  for (Sequence*& q : row_seqs_) {
    SeqOutputState& so = q->request->outs[size_t(q->index)];
    so.mask_row = -1;
    if (so.matcher && so.grammar_on) {
      so.mask_row = int32_t(mask_seqs_.size());
      mask_seqs_.push_back(q);
      mask_sample_index_.push_back(size_t(&q - row_seqs_.data()));
    }
  }
  if (mask_seqs_.empty()) return;
  mask_errors_.assign(mask_seqs_.size(), std::string());
  const int32_t words = sampling::bitmask_words(vocab_);
  sampling_.mask_words = words;
  if (exec_->fills_masks_late()) {
    sampling_.num_mask_rows = int32_t(mask_seqs_.size());
    sampling_.fill_masks = [this](uint32_t* dst) { fill_masks(dst); };
  } else {
    sampling_.masks.resize(mask_seqs_.size() * size_t(words));
    fill_masks(sampling_.masks.data());
  }
}

// Fills the bitmask rows of mask_seqs_ at `dst`, in parallel (rows are taken one at a time, as
// their cost varies a lot). Cost: bench/grammar_bench.
void Engine::Impl::fill_masks(uint32_t* dst) {
  const auto t0 = std::chrono::steady_clock::now();
  const int32_t words = sampling_.mask_words;
  auto fill_row = [&](size_t i) {
    Sequence* q = mask_seqs_[i];
    RequestState& rs = *q->request;
    SeqOutputState& so = rs.outs[size_t(q->index)];
    std::span<uint32_t> m(dst + i * size_t(words), size_t(words));
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
    for (int32_t t : config_.eos_token_ids) m[size_t(t >> 5)] &= ~(1u << (t & 31));
    if (can_end) {
      for (int32_t t : rs.eos) m[size_t(t >> 5)] |= 1u << (t & 31);
    }
  };
  const size_t n = mask_seqs_.size();
  for_each_mask_row(fill_row);
  grammar_masks_ += int64_t(n);
  grammar_mask_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs fn(i) for every mask row i on the mask threads, rows taken one at a time (their cost
// varies a lot).
void Engine::Impl::for_each_mask_row(const std::function<void(size_t)>& fn) {
  const size_t n = mask_seqs_.size();
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

// The grammars of this step's rows advanced by their sampled tokens, in parallel; process_token
// reads the outcome (EOS at a complete grammar and finished grammars are left to it).
void Engine::Impl::accept_sampled() {
  if (mask_seqs_.empty()) return;
  accepted_.assign(mask_seqs_.size(), int8_t(-1));
  for_each_mask_row([&](size_t i) {
    Sequence* q = mask_seqs_[i];
    RequestState& rs = *q->request;
    SeqOutputState& so = rs.outs[size_t(q->index)];
    const int32_t tok = sampled_[mask_sample_index_[i]].token_id;
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
    if (so.matcher->can_terminate() && std::find(rs.eos.begin(), rs.eos.end(), tok) != rs.eos.end())
      return;
    try {
      accepted_[i] = so.matcher->accept_token(tok) ? 1 : 0;
    } catch (const std::exception& e) {
      mask_errors_[i] = e.what();
      accepted_[i] = 0;
    }
  });
}

// Advances the sequence's grammar by its sampled token. A token the grammar does not allow means
// the mask was not applied: the request fails rather than return output that breaks its
// constraint.
bool Engine::Impl::accept_grammar_token(Sequence* seq, int32_t tok) {
  RequestState& rs = *seq->request;
  SeqOutputState& so = rs.outs[size_t(seq->index)];
  if (!so.grammar_on) {
    if (tok == *rs.req.params.structured_outputs->start_after_token) so.grammar_on = true;
    return true;
  }
  if (so.grammar_done) return true;
  if (std::find(rs.eos.begin(), rs.eos.end(), tok) != rs.eos.end() && so.matcher->can_terminate()) {
    so.grammar_done = true;
    return true;
  }
  const bool ok = so.mask_row >= 0 && size_t(so.mask_row) < accepted_.size() &&
                          accepted_[size_t(so.mask_row)] >= 0
                      ? accepted_[size_t(so.mask_row)] == 1
                      : so.matcher->accept_token(tok);
  if (ok) return true;
  if (so.mask_row >= 0 && size_t(so.mask_row) < mask_errors_.size() &&
      !mask_errors_[size_t(so.mask_row)].empty()) {
    abort_request(rs, fmt::format("structured outputs: {}", mask_errors_[size_t(so.mask_row)]));
    return false;
  }
  LOG_ERROR("request {}: the grammar does not allow sampled token {}", rs.id, tok);
  abort_request(
      rs, fmt::format("the structured-output grammar did not allow the sampled token {}", tok));
  return false;
}

void Engine::Impl::finish_sequence(Sequence* seq, FinishReason reason) {
  RequestState& rs = *seq->request;
  sched_.remove(seq);
  rs.outs[size_t(seq->index)].finished = true;
  delta_of(rs, seq->index).finish_reason = reason;
  ++rs.num_finished;
}

void Engine::Impl::abort_request(RequestState& rs, const std::string& error) {
  for (int32_t i = 0; i < rs.n(); ++i) {
    SeqOutputState& so = rs.outs[size_t(i)];
    if (so.finished) continue;
    if (size_t(i) < rs.seqs.size()) sched_.remove(rs.seqs[size_t(i)].get());
    so.finished = true;
    delta_of(rs, i).finish_reason = FinishReason::kAbort;
    ++rs.num_finished;
    rs.aborted = true;
  }
  if (!error.empty()) {
    delta_of(rs, 0);
    rs.pending.error = error;
  }
}

void Engine::Impl::abort_all(const std::string& error) {
  for (auto& [id, rs] : requests_) abort_request(*rs, error);
}

void Engine::Impl::deliver() {
  ready_.clear();
  for (RequestState* rs : touched_) {
    RequestOutput out = std::move(rs->pending);
    rs->pending = RequestOutput();
    rs->has_pending = false;
    out.num_cached_tokens = rs->seqs.empty() ? 0 : rs->seqs[0]->num_cached_tokens;
    out.finished = rs->num_finished == rs->n();
    if (out.finished) {
      if (!rs->started) --queued_;
      if (rs->aborted) {
        ++requests_aborted_;
      } else {
        ++requests_finished_;
      }
      std::lock_guard lk(mu_);
      live_.erase(rs->id);
    }
    ready_.emplace_back(rs, std::move(out));
  }
  touched_.clear();
  publish_stats();
  for (auto& [rs, out] : ready_) {
    const bool finished = out.finished;
    try {
      if (rs->callback) rs->callback(std::move(out));
    } catch (const std::exception& e) {
      LOG_ERROR("output callback of request {} threw: {}", rs->id, e.what());
    }
    if (finished) requests_.erase(rs->id);
  }
  ready_.clear();
}

void Engine::Impl::publish_stats() {
  EngineStats s;
  const BlockPool& pool = kv_.pool();
  s.blocks_total = pool.num_blocks();
  s.blocks_used = pool.num_used();
  s.blocks_free = pool.num_free();
  s.blocks_cached = pool.num_cached_unreferenced();
  s.prefix_cache_queries = sched_.counters().prefix_cache_queries;
  s.prefix_cache_hits = sched_.counters().prefix_cache_hits;
  s.evictions = pool.num_evictions();
  s.preemptions = sched_.counters().preemptions;
  s.num_running = sched_.num_running();
  s.num_waiting = sched_.num_waiting();
  s.num_steps = num_steps_;
  s.tokens_computed = tokens_computed_;
  s.generation_tokens = generation_tokens_;
  s.requests_finished = requests_finished_;
  s.requests_aborted = requests_aborted_;
  s.grammar_masks = grammar_masks_;
  s.grammar_mask_seconds = grammar_mask_s_;
  s.grammar_accept_seconds = grammar_accept_s_;
  std::lock_guard lk(stats_mu_);
  stats_ = s;
}

// ---- Engine -----------------------------------------------------------------------------------

Engine::Engine(std::shared_ptr<ModelExecutor> executor, EngineConfig config,
               std::shared_ptr<const TextDecoder> decoder) {
  if (!executor) fail("the engine needs a model executor");
  impl_ = std::make_unique<Impl>(std::move(executor), std::move(config), std::move(decoder));
}

Engine::~Engine() = default;

std::string Engine::submit(GenerateRequest request, OutputCallback on_output) {
  return impl_->submit(std::move(request), std::move(on_output), false);
}

std::shared_ptr<RequestStream> Engine::submit_stream(GenerateRequest request) {
  auto stream = std::make_shared<RequestStream>(std::string());
  stream->request_id_ = impl_->submit(
      std::move(request), [stream](RequestOutput&& o) { stream->push(std::move(o)); }, false);
  return stream;
}

bool Engine::abort(const std::string& request_id) {
  return impl_->abort(request_id);
}

std::vector<GenerateResult> Engine::generate(std::vector<GenerateRequest> requests) {
  std::unordered_set<std::string> ids;
  for (const auto& r : requests) {
    impl_->validate(r);
    if (!r.request_id.empty() && !ids.insert(r.request_id).second) {
      throw InvalidRequestError(fmt::format("request id '{}' appears twice", r.request_id));
    }
  }
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    size_t remaining = 0;
  };
  auto waiter = std::make_shared<Waiter>();
  auto results = std::make_shared<std::vector<GenerateResult>>(requests.size());
  std::vector<std::string> submitted;
  waiter->remaining = requests.size();
  try {
    for (size_t i = 0; i < requests.size(); ++i) {
      submitted.push_back(impl_->submit(
          std::move(requests[i]),
          [waiter, results, i](RequestOutput&& o) {
            const bool fin = o.finished;
            (*results)[i].accumulate(std::move(o));
            if (fin) {
              std::lock_guard lk(waiter->mu);
              if (--waiter->remaining == 0) waiter->cv.notify_all();
            }
          },
          true));
    }
  } catch (...) {
    for (const auto& id : submitted) impl_->abort(id);
    std::unique_lock lk(waiter->mu);
    waiter->cv.wait(lk, [&] { return waiter->remaining == requests.size() - submitted.size(); });
    throw;
  }
  std::unique_lock lk(waiter->mu);
  waiter->cv.wait(lk, [&] { return waiter->remaining == 0; });
  return std::move(*results);
}

EngineStats Engine::stats() const {
  return impl_->stats();
}
const EngineConfig& Engine::config() const {
  return impl_->config_;
}
int32_t Engine::vocab_size() const {
  return impl_->vocab_;
}
void Engine::shutdown() {
  impl_->shutdown();
}

}  // namespace inferd
