// `bench serve` against inferd's own HTTP server (Server + EngineGenerator + Engine) over a
// trivial model: token-exact prompts as the real server counts them, output lengths forced by
// ignore_eos/min_tokens, usage from the stream, and /tokenize as the prompt counter.
#include <gtest/gtest.h>

#include <memory>

#include "bench/client.h"
#include "bench/counters.h"
#include "bench/dataset.h"
#include "bench/metrics.h"
#include "inferd/engine.h"
#include "runner/executor.h"
#include "server/engine_generator.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

namespace inferd::bench {
namespace {

// Logits peaked on one token chosen by position: a word from `words`, or EOS every 4th position
// (so that without ignore_eos a generation ends early).
class TrivialExecutor final : public ModelExecutor {
 public:
  TrivialExecutor(int32_t vocab, std::vector<int32_t> words, int32_t eos)
      : vocab_(vocab), words_(std::move(words)), eos_(eos) {}
  int32_t vocab_size() const override { return vocab_; }
  int32_t block_size() const override { return 16; }
  int32_t num_kv_blocks() const override { return 4096; }
  int32_t max_model_len() const override { return 1024; }
  void forward(const ForwardBatch& b, float* logits) override {
    for (size_t r = 0; r < b.logit_rows.size(); ++r) {
      float* row = logits + r * size_t(vocab_);
      std::fill(row, row + vocab_, 0.0f);
      const int32_t pos = b.positions[size_t(b.logit_rows[r])];
      const int32_t tok = pos % 4 == 3 ? eos_ : words_[size_t(pos) % words_.size()];
      row[tok] = 30.0f;
    }
  }

 private:
  int32_t vocab_;
  std::vector<int32_t> words_;
  int32_t eos_;
};

class BenchAgainstInferdServer : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_dir_ = std::string(INFERD_TEST_DATA_DIR) + "/tokenizers/llama2";
    tok_ = std::make_shared<Tokenizer>(Tokenizer::from_dir(tok_dir_));
    ASSERT_TRUE(tok_->eos_id());
    const std::vector<int32_t> words = tok_->encode(" the cat sat on the mat and looked", false);
    auto exec =
        std::make_shared<TrivialExecutor>(int32_t(tok_->id_limit()), words, *tok_->eos_id());
    EngineConfig ec;
    ec.max_num_seqs = 32;
    ec.eos_token_ids = tok_->eos_ids();
    auto engine = std::make_shared<Engine>(exec, ec, tok_);
    gen_ = std::make_shared<server::EngineGenerator>(engine, tok_, std::nullopt);
    server::ServerConfig sc;
    sc.http.port = 0;
    sc.http.io_threads = 1;
    sc.served_model_names = {"tiny"};
    server_ = std::make_unique<server::Server>(sc, gen_);
    server_->start();
    server_->set_ready(true);
  }
  void TearDown() override {
    gen_->shutdown();
    server_->stop();
  }

  ServeOptions options() const {
    ServeOptions o;
    o.base = parse_url("http://127.0.0.1:" + std::to_string(server_->port()));
    o.model = "tiny";
    o.max_concurrency = 16;
    return o;
  }

  std::string tok_dir_;
  std::shared_ptr<Tokenizer> tok_;
  std::shared_ptr<server::EngineGenerator> gen_;
  std::unique_ptr<server::Server> server_;
};

TEST_F(BenchAgainstInferdServer, TokenExactPromptsAndForcedOutputLengths) {
  LocalTokenCounter counter(tok_dir_);
  DatasetOptions d;
  d.name = "random";
  d.num_prompts = 60;
  d.input_len = 48;
  d.output_len = 12;
  d.range_ratio = 0.5;
  const std::vector<BenchRequest> reqs = make_dataset(d, &counter);
  const RunResult run = run_serving(options(), reqs);
  const BenchMetrics m = compute_metrics(run, MetricOptions{});
  ASSERT_EQ(m.completed, reqs.size()) << (m.errors.empty() ? "" : m.errors.begin()->first);
  EXPECT_EQ(m.usage_reported, reqs.size());
  for (const RequestResult& r : run.requests) {
    EXPECT_EQ(r.prompt_tokens, reqs[r.index].prompt_len);  // the server's usage.prompt_tokens
    EXPECT_EQ(r.output_tokens, reqs[r.index].output_len);  // ignore_eos + min_tokens
    EXPECT_GT(r.chunks, 1);
    EXPECT_GT(r.ttft_s, 0);
  }
  // Without ignore_eos the trivial model's EOS (every 4th position) ends generations early.
  ServeOptions o = options();
  o.force_output_len = false;
  const RunResult early = run_serving(o, reqs);
  int shorter = 0;
  for (const RequestResult& r : early.requests) {
    ASSERT_TRUE(r.success) << r.error;
    shorter += r.output_tokens < reqs[r.index].output_len;
  }
  EXPECT_GT(shorter, 50);
}

TEST_F(BenchAgainstInferdServer, ServerTokenizeCountsLikeTheLocalTokenizer) {
  const ServeOptions o = options();
  RemoteTokenCounter remote(o.base, "", "tiny");
  LocalTokenCounter local(tok_dir_);
  for (const std::string text : {"", "hello world", "the quick brown fox jumps over the lazy dog"})
    EXPECT_EQ(remote.count(text), local.count(text)) << text;
  DatasetOptions d;
  d.name = "shared-prefix";
  d.num_prompts = 8;
  d.prefix_len = 100;
  d.num_prefixes = 2;
  d.input_len = 20;
  d.output_len = 4;
  const std::vector<BenchRequest> reqs = make_dataset(d, &remote);
  for (const auto& r : reqs) {
    EXPECT_EQ(r.prompt_len, 120);
    EXPECT_EQ(local.count(r.prompt), 120);
  }
  const RunResult run = run_serving(o, reqs);
  for (const RequestResult& r : run.requests) {
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.prompt_tokens, 120);
    EXPECT_EQ(r.output_tokens, 4);
  }
}

}  // namespace
}  // namespace inferd::bench
