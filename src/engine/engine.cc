// The engine loop: one thread takes submitted requests and aborts, then runs steps until no work
// is left. A step reads schedule -> batch -> forward -> sample -> outputs: the scheduler picks the
// sequences and their tokens, InputBatch lays them out (with grammar masks from the
// StructuredOutputManager), the executor runs the forward and samples, OutputProcessor turns the
// tokens into deltas, and the step's outputs go to the requests' callbacks.
#include "inferd/engine.h"

#include "core/logging.h"
#include "engine/engine_impl.h"

namespace inferd {

Engine::Impl::Impl(std::shared_ptr<ModelExecutor> executor, EngineConfig config,
                   std::shared_ptr<const TextDecoder> decoder)
    : config_(resolve_config(std::move(config), *executor)),
      vocab_(executor->vocab_size()),
      exec_(std::move(executor)),
      decoder_(std::move(decoder)),
      bounds_{vocab_,       config_.max_model_len, config_.max_logprobs, decoder_ != nullptr,
              config_.task, exec_->hidden_size(),  config_.pooling},
      kv_(exec_->num_kv_blocks(), exec_->block_size(), config_.enable_prefix_caching),
      sched_(SchedulerConfig{config_.max_num_seqs, config_.max_num_batched_tokens,
                             config_.enable_chunked_prefill, exec_->max_loras(),
                             config_.long_prefill_token_threshold, config_.max_num_partial_prefills,
                             config_.max_long_partial_prefills},
             kv_),
      structured_(vocab_, config_.eos_token_ids, decoder_, config_.grammar_compile_timeout_s),
      outputs_(config_.max_model_len, sched_, structured_),
      spec_(config_.speculative, config_.max_model_len, vocab_, exec_->aux_hidden_width()),
      input_(vocab_) {
  input_.set_mrope(exec_->uses_mrope());
  publish_stats();
  thread_ = std::thread([this] { run(); });
}

// ---- Submitting threads -----------------------------------------------------------------------

std::string Engine::Impl::submit(GenerateRequest request, OutputCallback cb,
                                 bool ignore_queue_limit) {
  validate(request);
  std::shared_ptr<const grammar::CompiledGrammar> grammar;
  if (request.params.structured_outputs) {
    grammar = structured_.compile(*request.params.structured_outputs);
  }
  std::unique_ptr<RequestState> rs = new_request_state(std::move(request), config_);
  rs->grammar = std::move(grammar);
  rs->callback = std::move(cb);
  rs->times.arrival = std::chrono::steady_clock::now();
  std::string id;
  {
    std::lock_guard lk(mu_);
    if (stopping_) {
      throw EngineStoppedError(fault_.empty() ? "the engine is shut down"
                                              : "the engine stopped after a " + fault_);
    }
    if (!ignore_queue_limit && config_.max_queue > 0 && queued_.load() >= config_.max_queue) {
      throw QueueFullError(
          fmt::format("the waiting queue is full ({} requests waiting, max_queue {}); retry later",
                      queued_.load(), config_.max_queue));
    }
    const double wait_s = double(queued_.load()) * start_gap_s_.load();
    if (!ignore_queue_limit && config_.max_queue_wait_s > 0 && wait_s > config_.max_queue_wait_s) {
      throw QueueFullError(fmt::format(
          "the expected wait is {:.3f} s ({} requests waiting x {:.4f} s between starts), over "
          "max_queue_wait {:g} s; retry later",
          wait_s, queued_.load(), start_gap_s_.load(), config_.max_queue_wait_s));
    }
    if (sleep_state_ != SleepState::kAwake && config_.sleep_wait_s <= 0) {
      throw EngineSleepingError(
          sleep_state_ == SleepState::kAsleep
              ? "the model is asleep (sleep mode); POST /wake_up wakes it"
              : "the model is going to sleep (sleep mode); POST /wake_up wakes it afterwards");
    }
    rs->number = next_number_++;
    std::string& request_id = rs->req.request_id;
    if (request_id.empty()) request_id = fmt::format("req-{}", rs->number);
    if (live_.count(request_id)) {
      throw InvalidRequestError(
          fmt::format("request id '{}' is already in use by a running request", request_id));
    }
    live_.insert(request_id);
    rs->id = request_id;
    id = rs->id;
    ++queued_;
    (sleep_state_ == SleepState::kAwake ? incoming_ : parked_).push_back(std::move(rs));
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

// ---- The engine thread ------------------------------------------------------------------------

void Engine::Impl::run() {
  std::vector<std::unique_ptr<RequestState>> incoming, expired;
  std::vector<std::string> aborts;
  std::vector<std::pair<int32_t, std::shared_ptr<const LoraAdapter>>> lora_adds;
  while (true) {
    bool stop = false, wake = false;
    SleepState state = SleepState::kAwake;
    {
      std::unique_lock lk(mu_);
      const auto deadline = sleep_deadline();
      // (A request parked meanwhile brings an earlier deadline: the wait starts again.)
      const auto ready = [&] {
        return stopping_ || !incoming_.empty() || !aborts_.empty() || wake_requested_ ||
               !lora_adds_.empty() || !lora_removes_.empty() ||
               sleep_state_ == SleepState::kDraining ||
               (sleep_state_ == SleepState::kAwake && sched_.has_work()) ||
               sleep_deadline() < deadline;
      };
      if (deadline == std::chrono::steady_clock::time_point::max()) {
        cv_.wait(lk, ready);
      } else {
        cv_.wait_until(lk, deadline, ready);
      }
      lora_removing_.insert(lora_removing_.end(), lora_removes_.begin(), lora_removes_.end());
      lora_removes_.clear();
      lora_adds.swap(lora_adds_);
      incoming.swap(incoming_);
      aborts.swap(aborts_);
      stop = stopping_;
      if (stop) {
        for (auto& r : parked_) incoming.push_back(std::move(r));
        parked_.clear();
      } else {
        take_parked(aborts, incoming, expired);
      }
      wake = wake_requested_;
      state = sleep_state_;
    }
    for (auto& [id, ad] : lora_adds) {
      try {
        exec_->add_lora_adapter(id, std::move(ad));
      } catch (const std::exception& e) {
        LOG_ERROR("LoRA adapter {} could not be added: {}", id, e.what());
        std::lock_guard lk(mu_);
        lora_known_.erase(id);  // new requests naming it are refused at submit
      }
    }
    lora_adds.clear();
    for (auto& r : incoming) start_request(std::move(r));
    incoming.clear();
    fail_expired(expired);
    for (const auto& id : aborts) {
      auto it = requests_.find(id);
      if (it != requests_.end()) outputs_.abort_request(*it->second, "");
    }
    aborts.clear();
    if (!lora_removing_.empty()) apply_lora_updates();
    if (stop) {
      abort_all("the engine was shut down");
      deliver();
      break;
    }
    std::string fault;
    try {
      if (!run_sleep_control(state, wake) && state == SleepState::kAwake && sched_.has_work())
        step();
    } catch (const DeviceFault& e) {
      fault = e.what();
    } catch (const std::exception& e) {
      fault = device_fault_after(e);
      if (fault.empty()) {
        LOG_ERROR("engine step failed: {}", e.what());
        abort_all(fmt::format("the engine failed: {}", e.what()));
      }
    }
    if (!fault.empty()) {
      stop_on_device_fault(fault);
      break;
    }
    deliver();
  }
  finish_control("the engine stopped");
}

std::string Engine::Impl::device_fault_after(const std::exception& e) {
  try {
    exec_->check_device();
  } catch (const DeviceFault& f) {
    LOG_ERROR("engine step failed: {}", e.what());
    return f.what();
  } catch (const std::exception& other) {
    LOG_ERROR("checking the device after a failed step: {}", other.what());
  }
  return "";
}

void Engine::Impl::stop_on_device_fault(const std::string& fault) {
  LOG_ERROR("the engine stops: {}", fault);
  std::vector<std::unique_ptr<RequestState>> incoming;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    fault_ = fault;
    incoming.swap(incoming_);
    for (auto& r : parked_) incoming.push_back(std::move(r));
    parked_.clear();
    aborts_.clear();
  }
  for (auto& r : incoming) start_request(std::move(r));
  abort_all(fault);
  deliver();
}

void Engine::Impl::start_request(std::unique_ptr<RequestState> rs) {
  RequestState* r = rs.get();
  requests_[r->id] = std::move(rs);
  sched_.add_waiting(
      add_sequence(*r, 0, next_seq_id_++, config_.seed, decoder_.get(), spec_rollback()));
}

// The prompt is computed: the other sequences of an n > 1 request start, sharing its blocks.
void Engine::Impl::fork(RequestState& rs) {
  rs.forked = true;
  for (int32_t i = 1; i < rs.n(); ++i) {
    Sequence* c =
        add_sequence(rs, i, next_seq_id_++, config_.seed, decoder_.get(), spec_rollback());
    c->share_from = rs.seqs[0].get();
    sched_.add_waiting(c);
  }
}

void Engine::Impl::step() {
  if (spec_.enabled()) spec_.propose(sched_.running());
  sched_.schedule(scheduled_);
  if (scheduled_.empty()) {
    // Cannot happen while every request fits the pool (checked at submit); never spin.
    LOG_ERROR("the scheduler found nothing to run with {} waiting", sched_.num_waiting());
    abort_all("the engine could not schedule the request");
    return;
  }
  mark_started();
  input_.build_forward(scheduled_);
  structured_.prepare_masks(input_.rows(), input_.sampling(), exec_->fills_masks_late());
  input_.build_sampling();
  exec_->execute(input_.forward(), input_.sampling(), input_.sampled());
  if (spec_.wants_hidden_states())  // EAGLE-3: the states its head fuses
    spec_.take_hidden_states(scheduled_, input_.forward(), exec_->aux_hidden_states());
  ++num_steps_;
  tokens_computed_ += input_.forward().num_tokens();
  count_step_tokens(input_.forward().num_tokens());

  for (const ScheduledSeq& s : scheduled_) {
    s.seq->num_computed += s.num_tokens;
    // A verified sequence's blocks are offered once its rejected drafts are dropped.
    if (s.num_drafts == 0) kv_.register_computed(*s.seq);
  }
  process_sampled();
  for (const ScheduledSeq& s : scheduled_) {
    Sequence& q = *s.seq;
    if (s.num_drafts == 0) continue;
    q.drafts.clear();
    if (q.status != SeqStatus::kRunning) continue;  // finished: its blocks are freed
    // The KV of the last token and of the accepted drafts stays; the last token taken is new.
    if (q.num_computed > q.num_tokens() - 1) kv_.truncate(q, q.num_tokens() - 1);
    kv_.register_computed(q);
  }
  process_prompt_rows();
}

// The step's prompt rows: scored prompt tokens (prompt logprobs), pooled hidden states
// (embeddings); a prompt-only request whose prompt has run finishes.
void Engine::Impl::process_prompt_rows() {
  const size_t base = input_.rows().size();
  const std::span<const InputBatch::PromptRow> score = input_.score_rows();
  for (size_t i = 0; i < score.size(); ++i) {
    RequestState& rs = *score[i].seq->request;
    SampledToken& t = input_.sampled()[base + i];
    rs.prompt_lps[size_t(score[i].pos)] = std::move(t.logprobs);
    rs.prompt_lps_done = score[i].pos + 1;
  }
  const std::span<const InputBatch::PromptRow> pool = input_.pool_rows();
  if (!pool.empty()) {
    const size_t H = size_t(exec_->hidden_size());
    const std::span<const float> pooled = exec_->pooled();
    INFERD_CHECK(pooled.size() == pool.size() * H, "the executor pooled {} values, expected {}",
                 pooled.size(), pool.size() * H);
    for (size_t i = 0; i < pool.size(); ++i) {
      RequestState& rs = *pool[i].seq->request;
      rs.pool_sum.resize(H, 0.0f);
      for (size_t c = 0; c < H; ++c) rs.pool_sum[c] += pooled[i * H + c];
      rs.pool_upto = pool[i].pos + input_.forward().pool_spans[i].num_rows;
    }
  }
  for (const ScheduledSeq& s : scheduled_) {
    RequestState& rs = *s.seq->request;
    if (rs.prompt_only() && s.seq->index == 0 && !rs.out_of(*s.seq).finished &&
        s.seq->num_computed >= s.seq->prompt_len)
      outputs_.finish_prompt_only(rs);
  }
}

// A request leaves the waiting-queue count when its first sequence is first scheduled.
void Engine::Impl::mark_started() {
  const auto now = std::chrono::steady_clock::now();
  for (const ScheduledSeq& s : scheduled_) {
    RequestState& rs = *s.seq->request;
    if (s.seq->index == 0 && !rs.started) {
      rs.started = true;
      rs.times.first_scheduled = now;
      // The gap since the previous start counts only while requests were waiting behind it.
      if (queued_-- > 1) {
        const double gap = std::chrono::duration<double>(now - last_start_).count();
        const double avg = start_gap_s_.load();
        start_gap_s_.store(avg == 0 ? gap : 0.8 * avg + 0.2 * gap);
      }
      last_start_ = now;
    }
  }
}

void Engine::Impl::count_step_tokens(int64_t tokens) {
  size_t i = 0;
  while (i + 1 < steps_by_tokens_log2_.size() && (int64_t(1) << i) < tokens) ++i;
  ++steps_by_tokens_log2_[i];
}

// The step's sampled tokens: the grammars advance (in parallel), then each row's token becomes
// output in row order. A request whose prompt was just computed starts its other n - 1 sequences.
void Engine::Impl::process_sampled() {
  const auto t0 = std::chrono::steady_clock::now();
  structured_.accept_sampled(input_.sampled());
  const std::span<Sequence* const> rows = input_.rows();
  for (size_t i = 0; i < rows.size();) {
    Sequence& q = *rows[i];
    RequestState& rs = *q.request;
    if (q.index == 0 && !rs.forked && !rs.out_of(q).finished) fork(rs);
    // A sequence with drafts has 1 + drafts rows: its tokens are taken in order while each
    // equals the draft it follows (speculator.h), stopping where the sequence finishes.
    size_t num_rows = 1;
    while (i + num_rows < rows.size() && input_.draft_index(i + num_rows) > 0) ++num_rows;
    const int32_t num_drafts = int32_t(num_rows) - 1;
    int32_t matched = 0;
    while (matched < num_drafts &&
           input_.sampled()[i + size_t(matched)].token_id == q.drafts[size_t(matched)])
      ++matched;
    for (int32_t j = 0; j <= matched && !rs.out_of(q).finished; ++j)
      outputs_.process_token(q, input_.sampled()[i + size_t(j)]);
    spec_.record(q, num_drafts, matched);
    if (rs.times.first_token == std::chrono::steady_clock::time_point{}) rs.times.first_token = t0;
    rs.times.last_token = t0;
    i += num_rows;
  }
  if (structured_.has_mask_rows()) {
    structured_.add_accept_seconds(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

void Engine::Impl::abort_all(const std::string& error) {
  for (auto& [id, rs] : requests_) outputs_.abort_request(*rs, error);
}

// The step's outputs go to their callbacks; finished requests are forgotten.
void Engine::Impl::deliver() {
  outputs_.take_outputs(ready_);
  for (ReadyOutput& r : ready_) {
    if (!r.output.finished) continue;
    retire(*r.request);
    r.output.times = r.request->times;
  }
  publish_stats();
  OutputProcessor::deliver(ready_);
  for (const ReadyOutput& r : ready_) {
    if (r.request->num_finished == r.request->n()) requests_.erase(r.request->id);
  }
  ready_.clear();
}

// A finished request leaves the counts and frees its id (before its callback runs).
void Engine::Impl::retire(RequestState& rs) {
  if (!rs.started) --queued_;
  if (rs.aborted) {
    ++requests_aborted_;
  } else {
    ++requests_finished_;
  }
  std::lock_guard lk(mu_);
  live_.erase(rs.id);
}

void Engine::Impl::add_lora(int32_t id, std::shared_ptr<const LoraAdapter> adapter) {
  if (exec_->max_loras() == 0) fail("LoRA adapters need --enable-lora");
  if (id < 0 || adapter == nullptr) fail("LoRA adapter id {} must be >= 0", id);
  {
    std::lock_guard lk(mu_);
    if (lora_known_.count(id)) fail("LoRA adapter id {} is in use", id);
    lora_known_.insert(id);
    lora_adds_.emplace_back(id, std::move(adapter));
  }
  cv_.notify_one();
}

void Engine::Impl::remove_lora(int32_t id) {
  {
    std::lock_guard lk(mu_);
    if (!lora_known_.erase(id)) fail("no LoRA adapter with id {}", id);
    lora_removes_.push_back(id);
  }
  cv_.notify_one();
}

void Engine::Impl::apply_lora_updates() {
  std::erase_if(lora_removing_, [&](int32_t id) {
    for (const auto& [rid, rs] : requests_)
      if (rs->req.lora_adapter_id == id) return false;
    exec_->remove_lora_adapter(id);
    return true;
  });
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
  s.generation_tokens = outputs_.generation_tokens();
  s.requests_finished = requests_finished_;
  s.requests_aborted = requests_aborted_;
  s.grammar_masks = structured_.num_masks();
  s.grammar_mask_seconds = structured_.mask_seconds();
  s.grammar_accept_seconds = structured_.accept_seconds();
  s.steps_by_tokens_log2 = steps_by_tokens_log2_;
  s.sleep_level = sleep_level();
  if (exec_->max_loras() > 0) {
    for (const auto& [id, rs] : requests_) {
      const int32_t a = rs->req.lora_adapter_id;
      if (a < 0) continue;
      bool running = false;
      for (const auto& q : rs->seqs) running = running || q->status == SeqStatus::kRunning;
      auto& v = running ? s.lora_running : s.lora_waiting;
      if (std::find(v.begin(), v.end(), a) == v.end()) v.push_back(a);
    }
    std::erase_if(s.lora_waiting, [&](int32_t a) {
      return std::find(s.lora_running.begin(), s.lora_running.end(), a) != s.lora_running.end();
    });
  }
  spec_.fill_stats(s);
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

void Engine::add_lora_adapter(int32_t id, std::shared_ptr<const LoraAdapter> adapter) {
  impl_->add_lora(id, std::move(adapter));
}

void Engine::remove_lora_adapter(int32_t id) {
  impl_->remove_lora(id);
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
void Engine::sleep(int level, double drain_timeout_s) {
  impl_->sleep(level, drain_timeout_s);
}

void Engine::wake_up() {
  impl_->wake_up();
}

int Engine::sleep_level() const {
  return impl_->sleep_level();
}

std::string Engine::device_fault() const {
  return impl_->device_fault();
}

}  // namespace inferd
