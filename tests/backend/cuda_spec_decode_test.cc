// Speculative decoding on the GPU (issue 26): the demo model's greedy output with n-gram
// speculation against the same engine without it, and the device sampler on the rows of a
// verification step (k + 1 rows of one sequence, output positions n..n+k, penalties counting the
// drafts before each row) against the reference sampler on the same logits; a draft model
// (method draft_model: the demo model as its own draft, and a tiny random 1-layer draft, each on
// a CUDA backend of its own) against no speculation, and rows verifying sampled drafts (the
// general rejection rule, in the device sampler) against the reference sampler on the same
// logits; verification steps replayed by CUDA graphs (rows padded to 1 + k a sequence) against
// the same steps run eagerly; EAGLE-3 (method eagle3): the target's auxiliary states against the
// CPU's, a committed head's draft steps against its PyTorch golden, greedy output with the head
// against none (with and without verification graphs). Skipped without a GPU.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "backend/cuda/cuda_backend.h"
#include "backend/sampling.h"
#include "cuda_test_util.h"
#include "inferd/engine.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

RunnerOptions demo_options() {
  RunnerOptions o;
  o.num_kv_blocks = 512;
  o.block_size = 16;
  o.max_num_batched_tokens = 512;
  o.max_num_seqs = 8;
  o.max_extra_logit_rows = 8 * 7;
  return o;
}

EngineConfig engine_config(int32_t k) {
  EngineConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 512;
  if (k > 0) {
    c.speculative.method = SpeculativeConfig::Method::kNgram;
    c.speculative.num_speculative_tokens = k;
    c.speculative.prompt_lookup_min = 1;
    c.speculative.prompt_lookup_max = 4;
    c.speculative.disable_by_batch_size = 0;
  }
  return c;
}

// Prompts that repeat a stretch of random ids: the n-gram lookup has something to propose.
std::vector<GenerateRequest> demo_requests(int32_t vocab) {
  std::vector<GenerateRequest> reqs;
  Rng rng(3);
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> seg(size_t(20 + 5 * i));
    for (auto& t : seg) t = 6 + int32_t(rng.next_u64() % uint64_t(vocab - 6));
    GenerateRequest r;
    r.request_id = fmt::format("d{}", i);
    r.prompt_token_ids = {0};
    for (int rep = 0; rep < 2; ++rep)
      r.prompt_token_ids.insert(r.prompt_token_ids.end(), seg.begin(), seg.end());
    r.prompt_token_ids.insert(r.prompt_token_ids.end(), seg.begin(), seg.begin() + 6);
    r.params.temperature = 0.0f;
    r.params.max_tokens = 48;
    r.params.ignore_eos = true;
    r.params.logprobs = 2;  // the top-2 margin where outputs part
    reqs.push_back(r);
  }
  return reqs;
}

TEST(CudaSpecDecode, DemoGreedyIdenticalWithNgram) {
  INFERD_REQUIRE_GPU();
  auto model = std::make_shared<ModelRunner>(kDemo, demo_options(), make_cuda_backend(0));
  const int32_t V = model->vocab_size();
  std::vector<GenerateResult> want;
  {
    Engine plain(model, engine_config(0));
    want = plain.generate(demo_requests(V));
  }
  for (int32_t k : {1, 4, 7}) {
    SCOPED_TRACE(::testing::Message() << "k " << k);
    Engine spec(model, engine_config(k));
    const auto got = spec.generate(demo_requests(V));
    const EngineStats st = spec.stats();
    EXPECT_GT(st.spec_num_drafts, 0);
    EXPECT_GT(st.spec_num_accepted_tokens, 0);
    std::printf("[cuda-golden] demo ngram k=%d: %lld verifications, mean accepted length %.2f\n", k,
                static_cast<long long>(st.spec_num_drafts),
                1.0 + double(st.spec_num_accepted_tokens) /
                          double(std::max<int64_t>(1, st.spec_num_drafts)));
    for (size_t i = 0; i < want.size(); ++i) {
      const SequenceResult &a = want[i].outputs.at(0), &b = got.at(i).outputs.at(0);
      ASSERT_EQ(a.token_ids.size(), b.token_ids.size());
      size_t d = 0;
      while (d < a.token_ids.size() && a.token_ids[d] == b.token_ids[d]) ++d;
      if (d == a.token_ids.size()) continue;
      // A verification step's bf16 logits may differ in the last bits from a decode step's (other
      // kernels): the outputs may part only where the top two were within that noise.
      const SampleLogprobs& lp = a.logprobs.at(d);
      ASSERT_GE(lp.top.size(), 2u);
      EXPECT_LT(std::fabs(lp.top[0].logprob - lp.top[1].logprob), 2e-2)
          << want[i].request_id << " parts at token " << d << " with a clear margin";
    }
  }
}

TEST(CudaSpecDecode, VerificationRowsSampleLikeTheReference) {
  INFERD_REQUIRE_GPU();
  ModelRunner model(kDemo, demo_options(), make_cuda_backend(0));
  const int32_t V = model.vocab_size();
  Rng rng(9);
  for (int32_t k : {1, 3, 7}) {
    for (int trial = 0; trial < 4; ++trial) {
      // One sequence: a 40-token prefill, then its last token and k drafts in one verification.
      const int32_t n_ctx = 40;
      std::vector<int32_t> toks(size_t(n_ctx + k));
      for (auto& t : toks) t = int32_t(rng.next_u64() % uint64_t(V));
      ForwardBatch fb;
      for (int32_t p = 0; p < n_ctx + k; ++p) {
        fb.token_ids.push_back(toks[size_t(p)]);
        fb.positions.push_back(p);
      }
      SeqBatchInfo s;
      s.q_len = n_ctx + k;
      s.kv_len = n_ctx + k;
      s.num_blocks = (n_ctx + k + 15) / 16;
      fb.seqs.push_back(s);
      for (int32_t b = 0; b < s.num_blocks; ++b) fb.block_tables.push_back(b);
      for (int32_t j = 0; j <= k; ++j) fb.logit_rows.push_back(n_ctx - 1 + j);
      SamplingBatch sb;
      LogitEditBuilder eb(V);
      std::vector<int32_t> out_so_far = {toks[5], toks[9]};
      for (int32_t j = 0; j <= k; ++j) {
        SamplingRow row;
        row.temperature = trial == 0 ? 0.0f : 0.8f;
        row.top_p = trial == 2 ? 0.9f : 1.0f;
        row.top_k = trial == 3 ? 20 : 0;
        row.repetition_penalty = 1.2f;
        row.frequency_penalty = 0.3f;
        row.seed = 1000 + uint64_t(trial);
        row.counter = uint64_t(2 + j);
        row.num_logprobs = 2;
        eb.append(row, {}, {}, std::span<const int32_t>(toks.data(), size_t(n_ctx - 2)), out_so_far,
                  sb.edits);
        sb.rows.push_back(row);
        if (j < k) out_so_far.push_back(toks[size_t(n_ctx + j)]);
      }
      std::vector<SampledToken> dev(size_t(k + 1)), ref(size_t(k + 1));
      model.execute(fb, sb, dev);
      std::vector<float> logits(size_t(k + 1) * size_t(V));
      model.forward(fb, logits.data());
      ReferenceSampler().sample(logits.data(), V, sb, ref);
      for (int32_t j = 0; j <= k; ++j)
        EXPECT_EQ(dev[size_t(j)].token_id, ref[size_t(j)].token_id)
            << "k " << k << " trial " << trial << " row " << j;
    }
  }
}

// The greedy outputs of `got` equal `want`'s, or part only where the top two were within bf16
// noise (a verification step's logits may differ in the last bits from a decode step's).
void expect_same_or_close(const std::vector<GenerateResult>& want,
                          const std::vector<GenerateResult>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const SequenceResult &a = want[i].outputs.at(0), &b = got[i].outputs.at(0);
    ASSERT_EQ(a.token_ids.size(), b.token_ids.size());
    size_t d = 0;
    while (d < a.token_ids.size() && a.token_ids[d] == b.token_ids[d]) ++d;
    if (d == a.token_ids.size()) continue;
    const SampleLogprobs& lp = a.logprobs.at(d);
    ASSERT_GE(lp.top.size(), 2u);
    EXPECT_LT(std::fabs(lp.top[0].logprob - lp.top[1].logprob), 2e-2)
        << want[i].request_id << " parts at token " << d << " with a clear margin";
  }
}

TEST(CudaSpecDraftModel, DemoGreedyIdenticalWithDraftModel) {
  INFERD_REQUIRE_GPU();
  auto model = std::make_shared<ModelRunner>(kDemo, demo_options(), make_cuda_backend(0));
  const int32_t V = model->vocab_size();
  std::vector<GenerateResult> want;
  {
    Engine plain(model, engine_config(0));
    want = plain.generate(demo_requests(V));
  }
  RunnerOptions tiny = demo_options();
  tiny.load.format = LoadFormat::kDummy;
  tiny.load.dummy_seed = 7;
  const std::string tiny_dir = std::string(INFERD_TEST_DATA_DIR) + "/spec_draft_tiny";
  for (bool self : {true, false}) {
    for (int32_t k : {1, 4, 7}) {
      SCOPED_TRACE(::testing::Message() << (self ? "self" : "tiny") << " draft, k " << k);
      EngineConfig c = engine_config(0);
      c.speculative.method = SpeculativeConfig::Method::kDraftModel;
      c.speculative.num_speculative_tokens = k;
      c.speculative.disable_by_batch_size = 0;
      c.speculative.draft_executor =
          self ? std::make_shared<ModelRunner>(kDemo, demo_options(), make_cuda_backend(0))
               : std::make_shared<ModelRunner>(tiny_dir, tiny, make_cuda_backend(0));
      Engine spec(model, c);
      const auto got = spec.generate(demo_requests(V));
      const EngineStats st = spec.stats();
      EXPECT_GT(st.spec_num_drafts, 0);
      if (self) {
        EXPECT_GT(st.spec_num_accepted_tokens, 0);
      }
      std::printf("[cuda-golden] demo draft_model (%s) k=%d: mean accepted length %.2f\n",
                  self ? "self" : "tiny random", k,
                  1.0 + double(st.spec_num_accepted_tokens) /
                            double(std::max<int64_t>(1, st.spec_num_drafts)));
      expect_same_or_close(want, got);
    }
  }
}

// A greedy chain on the device (the decode graph replayed round after round, each argmax fed to
// the next round on the device) against the same chain run round by round through execute(), on
// the demo model: three sequences (a graph of 4: one padding row), rounds crossing block
// boundaries; then the device chain again from the same start (its KV rewritten with the same
// values).
TEST(CudaSpecDraftModel, GreedyChainOnTheDeviceMatchesRoundByRound) {
  INFERD_REQUIRE_GPU();
  ModelRunner runner(kDemo, demo_options(), make_cuda_backend(0));
  const int32_t V = runner.vocab_size(), per_seq = 8;  // blocks of 16: 128 positions a sequence
  Rng rng(11);
  const std::vector<int32_t> lens = {13, 30, 47};
  const int32_t S = int32_t(lens.size());
  auto add_seq = [&](ForwardBatch& b, int32_t s, int32_t first, int32_t count) {
    SeqBatchInfo q;
    q.q_start = b.num_tokens() - count;
    q.q_len = count;
    q.kv_len = first + count;
    q.block_table_offset = int32_t(b.block_tables.size());
    q.num_blocks = per_seq;
    for (int32_t k = 0; k < per_seq; ++k) b.block_tables.push_back(s * per_seq + k);
    b.seqs.push_back(q);
  };
  // The prompts but their last token, written into the KV cache.
  ForwardBatch pre;
  for (int32_t s = 0; s < S; ++s) {
    for (int32_t p = 0; p + 1 < lens[size_t(s)]; ++p) {
      pre.token_ids.push_back(1 + int32_t(rng.next_u64() % uint64_t(V - 1)));
      pre.positions.push_back(p);
    }
    add_seq(pre, s, 0, lens[size_t(s)] - 1);
    pre.logit_rows.push_back(pre.num_tokens() - 1);
  }
  std::vector<float> logits(size_t(S) * size_t(V));
  runner.forward(pre, logits.data());
  // The chain's start: each prompt's last token.
  ForwardBatch start;
  for (int32_t s = 0; s < S; ++s) {
    start.token_ids.push_back(1 + int32_t(rng.next_u64() % uint64_t(V - 1)));
    start.positions.push_back(lens[size_t(s)] - 1);
    add_seq(start, s, lens[size_t(s)] - 1, 1);
    start.logit_rows.push_back(s);
  }
  for (int32_t rounds : {2, 9, 16}) {
    SCOPED_TRACE(rounds);
    std::vector<int32_t> host(size_t(rounds * S)), device(host.size()), again(host.size());
    runner.ModelExecutor::execute_greedy_chain(start, rounds, host);
    runner.execute_greedy_chain(start, rounds, device);
    EXPECT_EQ(device, host);
    runner.execute_greedy_chain(start, rounds, again);
    EXPECT_EQ(again, host);
    // Not all one token: the rounds really took the tokens before them.
    if (rounds == 16) {
      EXPECT_GT(std::set<int32_t>(host.begin(), host.end()).size(), size_t(2));
    }
  }
  // A chain longer than the device runs (16) goes round by round, with the same tokens.
  std::vector<int32_t> host(size_t(20 * S)), device(host.size());
  runner.ModelExecutor::execute_greedy_chain(start, 20, host);
  runner.execute_greedy_chain(start, 20, device);
  EXPECT_EQ(device, host);
  // A start that is not a decode batch is refused.
  std::vector<int32_t> out(size_t(2 * S));
  EXPECT_THROW(runner.execute_greedy_chain(pre, 2, out), InternalError);
}

TEST(CudaSpecDraftModel, SampledDraftRowsSampleLikeTheReference) {
  INFERD_REQUIRE_GPU();
  ModelRunner model(kDemo, demo_options(), make_cuda_backend(0));
  const int32_t V = model.vocab_size();
  Rng rng(11);
  for (int32_t k : {1, 4}) {
    const int32_t n_ctx = 30;
    std::vector<int32_t> toks(size_t(n_ctx + k));
    for (auto& t : toks) t = int32_t(rng.next_u64() % uint64_t(V));
    ForwardBatch fb;
    for (int32_t p = 0; p < n_ctx + k; ++p) {
      fb.token_ids.push_back(toks[size_t(p)]);
      fb.positions.push_back(p);
    }
    SeqBatchInfo s;
    s.q_len = s.kv_len = n_ctx + k;
    s.num_blocks = (n_ctx + k + 15) / 16;
    fb.seqs.push_back(s);
    for (int32_t b = 0; b < s.num_blocks; ++b) fb.block_tables.push_back(b);
    for (int32_t j = 0; j <= k; ++j) fb.logit_rows.push_back(n_ctx - 1 + j);
    SamplingBatch sb;
    for (int32_t j = 0; j <= k; ++j) {
      SamplingRow row;
      row.temperature = 0.9f;
      row.top_p = 0.95f;
      row.seed = 77;
      row.counter = uint64_t(j);
      if (j < k) {  // a draft distribution: uniform over the vocabulary
        row.draft_token = toks[size_t(n_ctx + j)];
        row.draft_row = j;
        sb.draft_probs.insert(sb.draft_probs.end(), size_t(V), 1.0f / float(V));
      }
      sb.rows.push_back(row);
    }
    std::vector<SampledToken> dev(size_t(k + 1)), ref(size_t(k + 1));
    model.execute(fb, sb, dev);
    std::vector<float> logits(size_t(k + 1) * size_t(V));
    model.forward(fb, logits.data());
    ReferenceSampler().sample(logits.data(), V, sb, ref);
    for (int32_t j = 0; j <= k; ++j)
      EXPECT_EQ(dev[size_t(j)].token_id, ref[size_t(j)].token_id) << "k " << k << " row " << j;
  }
}

RunnerOptions graph_options(int32_t k) {
  RunnerOptions o = demo_options();
  o.num_speculative_tokens = k;
  o.max_speculative_seqs = 8;
  return o;
}

// Greedy tokens equal, or parting only at a near-tie of `want`'s top two; the logprobs of the
// tokens before that within bf16 noise. A graph step pads rows (a sequence with 2 drafts runs as
// 1 + 4 rows), so its GEMMs run at another row count, with another cuBLASLt algorithm and another
// rounding of the bf16 activations than the eager step: on an H100 the demo model's logprobs
// parted by up to 0.045 over 48 tokens (2026-12-07), i.e. well under the 2e-2 relative logit error
// the goldens accept (logits of magnitude ~10). 0.08 keeps a margin and still catches a wrong row.
constexpr double kGraphLogprobTol = 0.08;

void expect_same_tokens_and_logprobs(const std::vector<GenerateResult>& want,
                                     const std::vector<GenerateResult>& got) {
  expect_same_or_close(want, got);
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    const SequenceResult &a = want[i].outputs.at(0), &b = got[i].outputs.at(0);
    for (size_t t = 0; t < a.token_ids.size() && t < b.token_ids.size(); ++t) {
      if (a.token_ids[t] != b.token_ids[t]) break;
      ASSERT_LT(t, a.logprobs.size());
      ASSERT_LT(t, b.logprobs.size());
      EXPECT_NEAR(a.logprobs[t].logprob, b.logprobs[t].logprob, kGraphLogprobTol)
          << want[i].request_id << " token " << t;
    }
  }
}

// Verification steps replay the graphs captured for k = 4 (engines with k = 2 and 4: rows with
// fewer drafts padded); greedy tokens and logprobs as with the same steps run eagerly.
TEST(CudaSpecDecode, VerifyGraphsMatchEagerWithNgram) {
  INFERD_REQUIRE_GPU();
  auto model = std::make_shared<ModelRunner>(kDemo, graph_options(4), make_cuda_backend(0));
  EXPECT_EQ(model->verify_graph_batch_sizes(), (std::vector<int32_t>{1, 2, 4, 8}));
  const int32_t V = model->vocab_size();
  for (int32_t k : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << "k " << k);
    model->set_graphs_enabled(true);
    const int64_t r0 = model->verify_graph_replays();
    std::vector<GenerateResult> with_graphs, eager;
    {
      Engine spec(model, engine_config(k));
      with_graphs = spec.generate(demo_requests(V));
      EXPECT_GT(spec.stats().spec_num_accepted_tokens, 0);
    }
    const int64_t replays = model->verify_graph_replays() - r0;
    EXPECT_GT(replays, 0);
    model->set_graphs_enabled(false);
    {
      Engine spec(model, engine_config(k));
      eager = spec.generate(demo_requests(V));
    }
    EXPECT_EQ(model->verify_graph_replays() - r0, replays) << "a replay with graphs off";
    model->set_graphs_enabled(true);
    std::printf("[cuda-golden] demo ngram k=%d with verification graphs: %lld replays\n", k,
                static_cast<long long>(replays));
    expect_same_tokens_and_logprobs(eager, with_graphs);
  }
}

// One verification step of three sequences with 1, 3 and 5 rows (k = 4: padded to 4 sequences of
// 5 rows) by a graph and eagerly: the same tokens and logprobs, and the padding rows write no
// keys (the next step's logits, which read every cached position, agree too).
TEST(CudaSpecDecode, VerifyGraphStepMatchesEagerAndWritesNoPaddingKeys) {
  INFERD_REQUIRE_GPU();
  ModelRunner model(kDemo, graph_options(4), make_cuda_backend(0));
  const int32_t V = model.vocab_size();
  Rng rng(17);
  const std::vector<int32_t> ctx = {20, 33, 7}, q = {1, 3, 5};
  std::vector<std::vector<int32_t>> toks(3);
  for (size_t s = 0; s < 3; ++s) {
    toks[s].resize(size_t(ctx[s] + q[s] + 1));
    for (auto& t : toks[s]) t = int32_t(rng.next_u64() % uint64_t(V));
  }
  // Sequence s owns blocks [8 s, 8 s + 8).
  auto step = [&](bool prefill_part, int32_t extra) {
    ForwardBatch fb;
    for (size_t s = 0; s < 3; ++s) {
      const int32_t begin = prefill_part ? 0 : ctx[s] + (extra > 0 ? q[s] : 0);
      const int32_t end = prefill_part ? ctx[s] : begin + (extra > 0 ? extra : q[s]);
      SeqBatchInfo info;
      info.q_start = fb.num_tokens();
      info.q_len = end - begin;
      info.kv_len = end;
      info.block_table_offset = int32_t(fb.block_tables.size());
      info.num_blocks = 8;
      for (int32_t b = 0; b < 8; ++b) fb.block_tables.push_back(int32_t(s) * 8 + b);
      for (int32_t p = begin; p < end; ++p) {
        fb.token_ids.push_back(toks[s][size_t(p)]);
        fb.positions.push_back(p);
        if (!prefill_part) fb.logit_rows.push_back(fb.num_tokens() - 1);
      }
      if (prefill_part) fb.logit_rows.push_back(fb.num_tokens() - 1);
      fb.seqs.push_back(info);
    }
    return fb;
  };
  struct Run {
    std::vector<SampledToken> tokens;
    std::vector<float> next_logits;
  };
  auto run = [&](bool graphs) {
    model.set_graphs_enabled(graphs);
    Run r;
    std::vector<float> scratch(3 * size_t(V));
    model.forward(step(true, 0), scratch.data());  // the contexts (fresh each run)
    const ForwardBatch verify = step(false, 0);
    SamplingBatch sb;
    for (size_t i = 0; i < verify.logit_rows.size(); ++i) {
      SamplingRow row;  // greedy
      row.num_logprobs = 3;
      row.counter = uint64_t(i);
      sb.rows.push_back(row);
    }
    r.tokens.resize(sb.rows.size());
    const int64_t before = model.verify_graph_replays();
    model.execute(verify, sb, r.tokens);
    EXPECT_EQ(model.verify_graph_replays() - before, graphs ? 1 : 0);
    const ForwardBatch next = step(false, 1);  // one more token a sequence, after the q rows
    r.next_logits.resize(3 * size_t(V));
    model.forward(next, r.next_logits.data());
    return r;
  };
  const Run eager = run(false), graph = run(true);
  model.set_graphs_enabled(true);
  ASSERT_EQ(graph.tokens.size(), eager.tokens.size());
  for (size_t i = 0; i < eager.tokens.size(); ++i) {
    const SampleLogprobs &a = eager.tokens[i].logprobs, &b = graph.tokens[i].logprobs;
    EXPECT_NEAR(a.logprob, b.logprob, 2e-2) << "row " << i;
    if (eager.tokens[i].token_id != graph.tokens[i].token_id) {
      ASSERT_GE(a.top.size(), 2u);
      EXPECT_LT(std::fabs(a.top[0].logprob - a.top[1].logprob), 2e-2) << "row " << i;
    }
  }
  double worst = 0;
  for (size_t i = 0; i < eager.next_logits.size(); ++i)
    worst = std::max(worst, std::fabs(double(eager.next_logits[i]) - graph.next_logits[i]));
  std::printf("[cuda-golden] verification graph vs eager: next step's logits differ by %.4f\n",
              worst);
  EXPECT_LT(worst, 0.1) << "the graph step changed the cached keys";
}

// Seeded sampled requests with a draft model (sampled drafts, verified by the device sampler's
// rejection rule; verification graphs on): the same tokens run after run, and drafts accepted.
TEST(CudaSpecDraftModel, SeededSampledDraftsReproducibleOnTheDevice) {
  INFERD_REQUIRE_GPU();
  RunnerOptions o = graph_options(4);
  o.max_draft_prob_rows = 8 * 4;
  auto model = std::make_shared<ModelRunner>(kDemo, o, make_cuda_backend(0));
  const int32_t V = model->vocab_size();
  // One draft runner for both runs (a new one would time its GEMM algorithms afresh).
  const auto draft = std::make_shared<ModelRunner>(kDemo, demo_options(), make_cuda_backend(0));
  auto run = [&] {
    EngineConfig c = engine_config(0);
    c.speculative.method = SpeculativeConfig::Method::kDraftModel;
    c.speculative.num_speculative_tokens = 4;
    c.speculative.disable_by_batch_size = 0;
    c.speculative.draft_executor = draft;
    Engine spec(model, c);
    std::vector<GenerateRequest> reqs = demo_requests(V);
    for (size_t i = 0; i < reqs.size(); ++i) {
      reqs[i].params.temperature = 0.8f;
      reqs[i].params.top_p = 0.95f;
      reqs[i].params.seed = 100 + i;
    }
    auto out = spec.generate(reqs);
    EXPECT_GT(spec.stats().spec_num_accepted_tokens, 0);
    return out;
  };
  const int64_t r0 = model->verify_graph_replays();
  const auto a = run(), b = run();
  EXPECT_GT(model->verify_graph_replays(), r0);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].outputs.at(0).token_ids, b[i].outputs.at(0).token_ids) << a[i].request_id;
}

// ---- EAGLE-3 (method eagle3) ----------------------------------------------------------------

const std::string kTinyHead = std::string(INFERD_TEST_DATA_DIR) + "/eagle3_llama3_tiny";
const std::string kLlama3 = std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<int32_t> tiny_head_layers() {
  return read_json(kTinyHead + "/config.json")["eagle_config"]["eagle_aux_hidden_state_layer_ids"]
      .get<std::vector<int32_t>>();
}

std::shared_ptr<ModelRunner> tiny_head_on(ModelRunner& target, std::unique_ptr<Backend> be) {
  RunnerOptions o = demo_options();
  o.enforce_eager = true;
  o.load.shared_embedding = target.model().token_embedding_table();
  return std::make_shared<ModelRunner>(kTinyHead, o, std::move(be));
}

// The residual stream entering three layers of the demo model, every row of a two-sequence batch
// (a prefill and a decode-shaped row), on the GPU (bf16) against the CPU (fp32).
TEST(CudaSpecEagle3, TargetStatesMatchTheCpu) {
  INFERD_REQUIRE_GPU();
  RunnerOptions o = demo_options();
  o.aux_hidden_layers = {2, 3, 5};
  o.enforce_eager = true;
  ModelRunner gpu(kDemo, o, make_cuda_backend(0));
  ModelRunner cpu(kDemo, o, make_cpu_backend(2));
  ForwardBatch fb;
  for (int32_t p = 0; p < 37; ++p) {
    fb.token_ids.push_back(3 + (p * 53) % 4000);
    fb.positions.push_back(p);
  }
  SeqBatchInfo a;
  a.q_len = 37;
  a.kv_len = 37;
  a.num_blocks = 3;
  fb.seqs.push_back(a);
  fb.block_tables = {0, 1, 2};
  fb.logit_rows = {36};
  std::vector<float> lg(size_t(gpu.vocab_size()));
  gpu.forward(fb, lg.data());
  const std::vector<float> g(gpu.aux_hidden_states().begin(), gpu.aux_hidden_states().end());
  cpu.forward(fb, lg.data());
  const std::span<const float> c = cpu.aux_hidden_states();
  ASSERT_EQ(g.size(), size_t(37 * 3 * 384));
  ASSERT_EQ(c.size(), g.size());
  EXPECT_LT(test::rel_err(g.data(), c.data(), g.size()), 2e-2);
}

// The committed head's three draft steps (tools/make_eagle3_tiny_head.py's PyTorch golden) on
// the GPU, in bf16.
TEST(CudaSpecEagle3, TinyHeadStepsMatchTheGolden) {
  INFERD_REQUIRE_GPU();
  const nlohmann::json g = read_json(kTinyHead + "/golden.json");
  const std::vector<int32_t> ids = g["ids"].get<std::vector<int32_t>>();
  const int32_t N = int32_t(ids.size()), H = g["hidden"].get<int32_t>();
  const int32_t Vd = g["draft_vocab"].get<int32_t>();
  RunnerOptions to = demo_options();
  to.enforce_eager = true;
  ModelRunner target(kLlama3, to, make_cuda_backend(0));
  auto head = tiny_head_on(target, make_cuda_backend(0));
  ForwardBatch hb;
  for (int32_t p = 0; p < N; ++p) {
    hb.token_ids.push_back(p + 1 < N ? ids[size_t(p + 1)] : 0);
    hb.positions.push_back(p);
    hb.logit_rows.push_back(p);
  }
  SeqBatchInfo s0;
  s0.q_len = N;
  s0.kv_len = N;
  s0.num_blocks = 1;
  hb.seqs.push_back(s0);
  hb.block_tables = {0};
  hb.hidden_inputs = g["aux"].get<std::vector<float>>();
  hb.hidden_input_width = 3 * H;
  std::vector<float> l(size_t(N) * size_t(Vd));
  head->forward(hb, l.data());
  std::vector<float> want = g["step0_logits"].get<std::vector<float>>();
  EXPECT_LT(test::rel_err(l.data(), want.data(), l.size()), 3e-2) << "step 0";
  std::vector<float> prev(head->recurrent_hidden().end() - H, head->recurrent_hidden().end());
  for (int32_t s = 1; s <= 2; ++s) {
    ForwardBatch b;
    b.token_ids = {0};
    b.positions = {N - 1 + s};
    SeqBatchInfo q;
    q.q_len = 1;
    q.kv_len = N + s;
    q.num_blocks = 1;
    b.seqs.push_back(q);
    b.block_tables = {0};
    b.logit_rows = {0};
    b.hidden_inputs = prev;
    b.hidden_input_width = H;
    std::vector<float> ls(static_cast<size_t>(Vd));
    head->forward(b, ls.data());
    want = g[fmt::format("step{}_logits", s)].get<std::vector<float>>();
    EXPECT_LT(test::rel_err(ls.data(), want.data(), ls.size()), 3e-2) << "step " << s;
    prev.assign(head->recurrent_hidden().begin(), head->recurrent_hidden().end());
  }
}

// Greedy output with the committed (random) head on the tiny Llama-3 equals the output without
// speculation; with k = 4 the target also replays verification graphs (the states of padded
// rows put back in batch order).
TEST(CudaSpecEagle3, GreedyIdenticalWithTinyHead) {
  INFERD_REQUIRE_GPU();
  RunnerOptions o = demo_options();
  auto plain_model = std::make_shared<ModelRunner>(kLlama3, o, make_cuda_backend(0));
  const int32_t V = plain_model->vocab_size();
  std::vector<GenerateResult> want;
  {
    Engine plain(plain_model, engine_config(0));
    want = plain.generate(demo_requests(V));
  }
  for (int32_t k : {1, 4, 7}) {
    SCOPED_TRACE(::testing::Message() << "k " << k);
    RunnerOptions to = demo_options();
    to.aux_hidden_layers = tiny_head_layers();
    if (k == 4) {
      to.num_speculative_tokens = k;
      to.max_speculative_seqs = 8;
    }
    auto target = std::make_shared<ModelRunner>(kLlama3, to, make_cuda_backend(0));
    EngineConfig c = engine_config(0);
    c.speculative.method = SpeculativeConfig::Method::kEagle3;
    c.speculative.num_speculative_tokens = k;
    c.speculative.disable_by_batch_size = 0;
    c.speculative.draft_executor = tiny_head_on(*target, make_cuda_backend(0));
    Engine spec(target, c);
    const auto got = spec.generate(demo_requests(V));
    EXPECT_GT(spec.stats().spec_num_drafts, 0);
    if (k == 4) {
      EXPECT_GT(target->verify_graph_replays(), 0);
    }
    expect_same_or_close(want, got);
  }
}

}  // namespace
}  // namespace inferd
