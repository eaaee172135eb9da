// Scheduler tests on the CPU without a model: fair chunked prefill (--long-prefill-token-threshold,
// --max-long-partial-prefills, --max-num-partial-prefills) step by step.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace inferd {
namespace {

// Sequences with prompts of the given lengths, arriving in that order.
std::vector<std::unique_ptr<Sequence>> make_seqs(const std::vector<int32_t>& prompt_lens) {
  std::vector<std::unique_ptr<Sequence>> out;
  for (size_t i = 0; i < prompt_lens.size(); ++i) {
    auto s = std::make_unique<Sequence>();
    s->id = int64_t(i);
    s->arrival_ns = int64_t(i);
    s->request_number = i;
    s->tokens.assign(size_t(prompt_lens[i]), int32_t(i + 1));
    s->prompt_len = prompt_lens[i];
    out.push_back(std::move(s));
  }
  return out;
}

// What the engine does after a forward: advance num_computed, and a sequence whose tokens are all
// computed generates one more.
void advance(const std::vector<ScheduledSeq>& step) {
  for (const ScheduledSeq& s : step) {
    s.seq->num_computed += s.num_tokens;
    if (s.seq->num_computed == s.seq->num_tokens()) s.seq->tokens.push_back(7);
  }
}

int32_t tokens_of(const std::vector<ScheduledSeq>& step, const Sequence* seq) {
  for (const ScheduledSeq& s : step)
    if (s.seq == seq) return s.num_tokens;
  return 0;
}

SchedulerConfig config(int32_t budget, int32_t threshold) {
  SchedulerConfig c;
  c.max_num_seqs = 64;
  c.max_num_batched_tokens = budget;
  c.long_prefill_token_threshold = threshold;
  return c;
}

TEST(FairChunking, LongPromptIsBoundedByTheThresholdAndDecodesAdvanceEveryStep) {
  KvCacheManager kv(1024, 4, false);
  Scheduler sched(config(256, 32), kv);
  auto seqs = make_seqs({10, 12, 9, 11, 1000});
  std::vector<ScheduledSeq> step;
  for (int i = 0; i < 4; ++i) sched.add_waiting(seqs[size_t(i)].get());
  sched.schedule(step);  // the four short prompts at once
  ASSERT_EQ(step.size(), 4u);
  advance(step);
  Sequence* long_seq = seqs[4].get();
  sched.add_waiting(long_seq);
  int32_t steps = 0;
  while (long_seq->num_computed < long_seq->prompt_len) {
    sched.schedule(step);
    ++steps;
    const int32_t n = tokens_of(step, long_seq);
    EXPECT_GT(n, 0) << "step " << steps;
    EXPECT_LE(n, 32) << "step " << steps;
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(tokens_of(step, seqs[size_t(i)].get()), 1) << "decode " << i << " step " << steps;
    advance(step);
  }
  EXPECT_EQ(steps, (1000 + 31) / 32);
}

TEST(FairChunking, WithoutTheThresholdTheLongPromptTakesTheWholeBudget) {
  KvCacheManager kv(1024, 4, false);
  Scheduler sched(config(256, 0), kv);
  auto seqs = make_seqs({10, 1000});
  std::vector<ScheduledSeq> step;
  sched.add_waiting(seqs[0].get());
  sched.schedule(step);
  advance(step);
  sched.add_waiting(seqs[1].get());
  sched.schedule(step);
  EXPECT_EQ(tokens_of(step, seqs[0].get()), 1);
  EXPECT_EQ(tokens_of(step, seqs[1].get()), 255);
}

TEST(FairChunking, AloneALongPromptUsesTheWholeBudget) {
  KvCacheManager kv(1024, 4, false);
  Scheduler sched(config(256, 32), kv);
  auto seqs = make_seqs({1000});
  std::vector<ScheduledSeq> step;
  sched.add_waiting(seqs[0].get());
  sched.schedule(step);
  EXPECT_EQ(tokens_of(step, seqs[0].get()), 256);
}

TEST(FairChunking, AMoreUrgentLongPromptLeavesRoomForTheDecodesAfterIt) {
  // The long prompt comes first in scheduling order (higher priority) with a threshold above the
  // budget; the three decodes after it still get their rows every step.
  KvCacheManager kv(1024, 4, false);
  Scheduler sched(config(8, 100), kv);
  auto seqs = make_seqs({1000, 2, 2, 2});
  seqs[0]->priority = -1;
  std::vector<ScheduledSeq> step;
  for (int k = 1; k < 4; ++k) sched.add_waiting(seqs[size_t(k)].get());
  sched.schedule(step);
  advance(step);
  sched.add_waiting(seqs[0].get());
  for (int i = 0; i < 5; ++i) {
    sched.schedule(step);
    ASSERT_FALSE(step.empty());
    if (i > 0) {
      EXPECT_EQ(step[0].seq, seqs[0].get());  // running, first in order
    }
    EXPECT_EQ(tokens_of(step, seqs[0].get()), 5);
    for (int k = 1; k < 4; ++k) EXPECT_EQ(tokens_of(step, seqs[size_t(k)].get()), 1);
    advance(step);
  }
  // Without fairness the prompt takes the whole budget and the decodes stall.
  KvCacheManager kv2(1024, 4, false);
  Scheduler plain(config(8, 0), kv2);
  auto seqs2 = make_seqs({1000, 2, 2, 2});
  seqs2[0]->priority = -1;
  for (int k = 1; k < 4; ++k) plain.add_waiting(seqs2[size_t(k)].get());
  plain.schedule(step);
  advance(step);
  plain.add_waiting(seqs2[0].get());
  plain.schedule(step);
  plain.schedule(step);  // the second step: the prompt is running, first in order
  EXPECT_EQ(tokens_of(step, seqs2[0].get()), 8);
  EXPECT_EQ(tokens_of(step, seqs2[1].get()), 0);
}

TEST(FairChunking, MaxLongPartialPrefillsLetsShortPromptsPass) {
  KvCacheManager kv(2048, 4, false);
  Scheduler sched(config(512, 64), kv);
  auto seqs = make_seqs({1000, 1000, 20});
  std::vector<ScheduledSeq> step;
  for (auto& s : seqs) sched.add_waiting(s.get());
  sched.schedule(step);
  EXPECT_EQ(tokens_of(step, seqs[0].get()), 64);
  EXPECT_EQ(tokens_of(step, seqs[1].get()), 0);   // a second long prompt waits (limit 1)
  EXPECT_EQ(tokens_of(step, seqs[2].get()), 20);  // the short one goes past it

  SchedulerConfig two = config(512, 64);
  two.max_num_partial_prefills = 2;
  two.max_long_partial_prefills = 2;
  KvCacheManager kv2(2048, 4, false);
  Scheduler sched2(two, kv2);
  auto seqs2 = make_seqs({1000, 1000, 20});
  for (auto& s : seqs2) sched2.add_waiting(s.get());
  sched2.schedule(step);
  EXPECT_EQ(tokens_of(step, seqs2[0].get()), 64);
  EXPECT_EQ(tokens_of(step, seqs2[1].get()), 64);
  EXPECT_EQ(tokens_of(step, seqs2[2].get()), 0);  // two prompts per step at most
}

}  // namespace
}  // namespace inferd
