#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"
#include "engine/image_spans.h"

namespace inferd {

Scheduler::Scheduler(const SchedulerConfig& config, KvCacheManager& kv) : config_(config), kv_(kv) {
  INFERD_CHECK(config_.max_num_seqs > 0 && config_.max_num_batched_tokens > 0,
               "bad scheduler limits");
}

void Scheduler::add_waiting(Sequence* seq) {
  INFERD_CHECK(seq->blocks.empty(), "waiting sequence {} holds blocks", seq->id);
  seq->status = SeqStatus::kWaiting;
  waiting_.insert(seq);
}

void Scheduler::remove(Sequence* seq) {
  if (seq->status == SeqStatus::kWaiting) {
    waiting_.erase(seq);
  } else if (seq->status == SeqStatus::kRunning) {
    auto it = std::find(running_.begin(), running_.end(), seq);
    INFERD_CHECK(it != running_.end(), "running sequence {} not in the running list", seq->id);
    running_.erase(it);
    kv_.free(*seq);
  }
  seq->status = SeqStatus::kFinished;
}

void Scheduler::insert_running(Sequence* seq) {
  auto it = std::upper_bound(running_.begin(), running_.end(), seq, Before{});
  running_.insert(it, seq);
  seq->status = SeqStatus::kRunning;
}

void Scheduler::preempt(Sequence* seq) {
  kv_.free(*seq);
  seq->num_computed = 0;
  seq->drafts.clear();
  ++counters_.preemptions;
  add_waiting(seq);
}

void Scheduler::note_adapter(int32_t id) {
  if (id >= 0 && !is_running_adapter(id)) running_adapters_.push_back(id);
}

bool Scheduler::is_running_adapter(int32_t id) const {
  return std::find(running_adapters_.begin(), running_adapters_.end(), id) !=
         running_adapters_.end();
}

bool Scheduler::adapter_fits(int32_t id) const {
  return id < 0 || is_running_adapter(id) || int32_t(running_adapters_.size()) < config_.max_loras;
}

int32_t Scheduler::fair_chunk(int32_t pending, int32_t n) {
  const int32_t threshold = config_.long_prefill_token_threshold;
  const bool is_long = threshold > 0 && pending > threshold;
  if (config_.max_num_partial_prefills > 1 && prefills_ >= config_.max_num_partial_prefills)
    return 0;
  if (is_long && others_) {
    if (long_prefills_ >= config_.max_long_partial_prefills) return 0;
    n = std::min(n, threshold);
  }
  if (n > 0) {
    ++prefills_;
    if (is_long) ++long_prefills_;
  }
  return n;
}

void Scheduler::schedule(std::vector<ScheduledSeq>& out, std::vector<Sequence*>* preempted) {
  out.clear();
  int32_t budget = config_.max_num_batched_tokens;
  fair_ = config_.long_prefill_token_threshold > 0 || config_.max_num_partial_prefills > 1;
  others_ = running_.size() + waiting_.size() > 1;
  prefills_ = 0;
  long_prefills_ = 0;
  // The running sequences, then the waiting ones unless the running had to preempt (the pool
  // is full).
  if (!schedule_running(out, budget, preempted)) admit_waiting(out, budget);
}

bool Scheduler::schedule_running(std::vector<ScheduledSeq>& out, int32_t& budget,
                                 std::vector<Sequence*>* preempted) {
  bool preempted_any = false;
  // Fair chunking: decode rows (one pending token) not yet scheduled; a prompt chunk leaves
  // room for them.
  int32_t decodes_left = 0;
  if (fair_)
    for (const Sequence* s : running_) decodes_left += s->num_tokens() - s->num_computed == 1;

  // 1. Running sequences, most important first; victims come off the back.
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i];
    const int32_t pending = seq->num_tokens() - seq->num_computed;
    INFERD_CHECK(pending > 0, "running sequence {} has nothing to compute", seq->id);
    if (pending != 1 || budget < 2) seq->drafts.clear();
    if (int32_t(seq->drafts.size()) > budget - 1) seq->drafts.resize(size_t(budget - 1));
    int32_t drafts = int32_t(seq->drafts.size());
    int32_t n = drafts > 0 ? 1 + drafts : std::min(pending, budget);
    if (fair_ && pending == 1) --decodes_left;
    if (fair_ && pending > 1) {
      n = fair_chunk(pending, std::max(0, std::min(n, budget - decodes_left)));
      if (n == 0) continue;
    }
    // A chunk never ends inside an image (its tokens may attend to each other).
    if (n < pending && !seq->images.empty()) {
      n = cut_before_image(seq->images, seq->num_computed, n);
      if (n == 0) continue;
    }
    bool self_preempted = false;
    while (!kv_.allocate(*seq, n)) {
      if (drafts > 0) {  // drafts never cost another sequence its blocks
        seq->drafts.clear();
        drafts = 0;
        n = 1;
        continue;
      }
      Sequence* victim = running_.back();
      running_.pop_back();
      preempt(victim);
      preempted_any = true;
      if (preempted) preempted->push_back(victim);
      if (victim == seq) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    out.push_back({seq, n, drafts});
    budget -= n;
  }
  return preempted_any;
}

void Scheduler::admit_waiting(std::vector<ScheduledSeq>& out, int32_t budget) {
  running_adapters_.clear();
  for (const Sequence* r : running_) note_adapter(r->adapter_id);
  for (auto it = waiting_.begin();
       it != waiting_.end() && budget > 0 && int32_t(running_.size()) < config_.max_num_seqs;) {
    Sequence* seq = *it;
    if (!adapter_fits(seq->adapter_id)) {
      ++it;  // its adapter needs a slot that running sequences hold: later ones may go first
      continue;
    }
    kv_.update_hashes(*seq);
    if (seq->reuse_prefix) {
      kv_.find_prefix(*seq, prefix_scratch_);
    } else {
      prefix_scratch_.clear();
    }
    const int32_t hit_tokens = int32_t(prefix_scratch_.size()) * kv_.block_size();
    const int32_t pending = seq->num_tokens() - hit_tokens;
    int32_t n = std::min(pending, budget);
    if (fair_ && pending > 1) {
      n = fair_chunk(pending, n);
      if (n == 0) {
        ++it;  // a long prompt over max_long_partial_prefills: shorter ones may go first
        continue;
      }
    }
    if (!config_.enable_chunked_prefill && n < pending) break;
    if (n < pending && !seq->images.empty()) {
      n = cut_before_image(seq->images, hit_tokens, n);
      if (n == 0) break;  // the image after its prefix-cache hit needs a step of its own
    }
    seq->num_computed = hit_tokens;
    if (!kv_.allocate(*seq, n, prefix_scratch_)) {
      seq->num_computed = 0;
      break;
    }
    it = waiting_.erase(it);
    note_adapter(seq->adapter_id);
    counters_.prefix_cache_queries += seq->num_tokens();
    counters_.prefix_cache_hits += hit_tokens;
    if (!seq->admitted_once) {
      seq->admitted_once = true;
      seq->num_cached_tokens = hit_tokens;
    }
    insert_running(seq);
    out.push_back({seq, n});
    budget -= n;
  }
}

}  // namespace inferd
