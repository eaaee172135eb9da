// A Generator for server tests: a byte-level tokenizer (id = byte + 3; 0 <pad>, 1 <s>, 2 </s>),
// a tiny chat template, and an engine thread that "generates" a fixed reply one token per step,
// with the engine's contract (max_queue, max_model_len, stop strings, logprobs, abort, KV blocks).
// Prompt logprobs (fake_prompt_logprob) come with the first output; max_tokens 0 finishes at once.
// With task kEmbed it answers pooling requests instead: in one step, a vector of embedding_size
// values derived from the token ids (fake_embedding), truncated and normalised as asked.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "server/generator.h"

namespace inferd::server::testing {

struct FakeConfig {
  int32_t max_model_len = 256;
  int32_t max_running = 64;
  int32_t max_queue = 0;  // 0: no limit
  int32_t total_blocks = 4096;
  int32_t block_size = 16;
  std::chrono::microseconds step{500};
  std::string reply = "Hello world! This is a fake reply. ";
  int32_t eos_after = 0;      // > 0: EOS after this many tokens (finish stop)
  std::string chat_template;  // non-empty: a Jinja chat template rendered instead of the tiny one
  ModelTask task = ModelTask::kGenerate;
  EngineConfig::Pooling pooling;  // the model's (defaults for requests that leave them unset)
  int32_t embedding_size = 16;
  // Non-null: the fake takes images (image_url parts) and preprocesses them with this.
  std::shared_ptr<const media::ImageProcessor> image_processor;
};

// The fake's logprob of prompt token i (i >= 1) and its rank; its alternatives are the ids
// 3 + 'a' + k with logprob -0.25 - k.
inline float fake_prompt_logprob(size_t i) {
  return -0.5f - float(i % 5);
}
inline int32_t fake_prompt_rank(size_t i) {
  return 1 + int32_t(i % 3);
}
// The fake's pooled vector of `ids` (before truncation and normalisation): deterministic, and
// different for different ids.
std::vector<float> fake_embedding(std::span<const int32_t> ids, int32_t size);

class FakeGenerator final : public Generator {
 public:
  explicit FakeGenerator(FakeConfig config = {});
  ~FakeGenerator() override;

  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  std::string token_text(int32_t id) const override;
  std::string apply_chat_template(const ChatTemplateArgs& args) const override;
  int32_t vocab_size() const override { return 259; }
  int32_t max_model_len() const override { return config_.max_model_len; }
  ModelTask task() const override { return config_.task; }
  EngineConfig::Pooling pooling() const override { return config_.pooling; }
  const media::ImageProcessor* image_processor() const override {
    return config_.image_processor.get();
  }

  std::string submit(GenerateRequest request, OutputCallback on_output) override;
  bool abort(const std::string& request_id) override;
  EngineStats stats() const override;
  void shutdown() override;

  // Test controls.
  void pause(bool paused);
  int64_t num_submitted() const { return submitted_; }
  int64_t num_aborted() const { return aborted_; }
  int32_t num_live() const;
  GenerateRequest last_request() const;

 private:
  struct Seq {
    std::string text;    // all generated text
    size_t emitted = 0;  // bytes of text already returned
    int32_t tokens = 0;
    bool finished = false;
  };
  struct Live {
    GenerateRequest req;
    OutputCallback cb;
    std::vector<Seq> seqs;
    bool running = false;
    bool aborted = false;
    bool first = true;
    int32_t cached = 0;
    bool prompt_scored = false;  // prompt_logprobs sent
    RequestTimes times;          // as the engine fills them
  };
  void loop();
  void step_one(Live& l, RequestOutput& out);
  void pool_one(Live& l, RequestOutput& out) const;
  int32_t blocks_of(const Live& l) const;

  FakeConfig config_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Live> live_;
  std::deque<std::string> order_;
  std::set<std::vector<int32_t>> seen_prompts_;
  bool paused_ = false;
  bool stop_ = false;
  std::atomic<int64_t> submitted_{0}, aborted_{0};
  int64_t next_id_ = 0;
  int64_t generated_ = 0, finished_ = 0, prefix_queries_ = 0, prefix_hits_ = 0;
  std::array<int64_t, 32> steps_by_tokens_log2_{};
  int64_t tokens_computed_ = 0;
  GenerateRequest last_;
  std::thread thread_;
};

}  // namespace inferd::server::testing
