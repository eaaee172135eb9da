// Test doubles for the engine: a fake model that really uses the paged KV cache, and a tiny
// TextDecoder.
//
// FakeExecutor keeps a "KV cache" of token ids, one per slot of the block pool. forward() checks
// the batch layout, writes every new token's id at its slot (from the block table), then computes
// each requested row's logits from a hash over every token READ BACK from the cache through the
// block table for positions 0..p. Any block-table, prefix-cache, chunking or preemption bug
// therefore changes the logits, and with them the tokens. `reference_logits` computes the same
// logits straight from a token history, so tests know the right answer without the engine.
#pragma once

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runner/executor.h"
#include "tokenizer/text_decoder.h"

namespace inferd::testing {

inline uint64_t fake_mix(uint64_t h, uint64_t x) {
  h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

struct FakeModelSpec {
  int32_t vocab = 64;
  int32_t block_size = 4;
  int32_t num_blocks = 256;
  int32_t max_model_len = 512;
  // When non-empty: the logit of script[(p + 1) % size] gets +20 at position p (forces tokens).
  std::vector<int32_t> script;
  int32_t step_delay_us = 0;  // sleep per forward (a slower "model" for concurrency tests)
  int32_t max_top_logprobs = INT32_MAX;  // ModelExecutor::max_top_logprobs
  int32_t hidden_size = 0;               // > 0: pool_spans are summed (ModelExecutor::pooled)
};

// The "final hidden state" after the history `tokens`, as the fake model pools it: hidden_size
// values in [-1, 1) from a hash of the history.
inline void reference_hidden(const FakeModelSpec& spec, std::span<const int32_t> tokens,
                             float* out) {
  uint64_t h = 0x7654321ull;
  for (int32_t t : tokens) h = fake_mix(h, uint64_t(uint32_t(t)));
  for (int32_t c = 0; c < spec.hidden_size; ++c) {
    const uint64_t r = fake_mix(h, uint64_t(c) + 0x2545f491ull);
    out[c] = float(double(r >> 11) * 0x1.0p-53 * 2.0 - 1.0);
  }
}

// Logits after the history `tokens` (positions 0..size-1), as the fake model computes them.
inline void reference_logits(const FakeModelSpec& spec, std::span<const int32_t> tokens,
                             float* out) {
  uint64_t h = 0x1234567ull;
  for (int32_t t : tokens) h = fake_mix(h, uint64_t(uint32_t(t)));
  for (int32_t v = 0; v < spec.vocab; ++v) {
    const uint64_t r = fake_mix(h, uint64_t(v) + 0x51ed27ull);
    out[v] = float(double(r >> 11) * 0x1.0p-53 * 8.0 - 4.0);  // [-4, 4)
  }
  if (!spec.script.empty()) {
    const size_t p = tokens.size() - 1;
    out[spec.script[(p + 1) % spec.script.size()]] += 20.0f;
  }
}

// Greedy continuation computed directly (no engine): argmax, lowest id on ties; stops after
// max_tokens or at an id in `eos` (included).
inline std::vector<int32_t> reference_greedy(const FakeModelSpec& spec, std::vector<int32_t> prompt,
                                             int32_t max_tokens,
                                             std::span<const int32_t> eos = {}) {
  std::vector<int32_t> out;
  std::vector<float> l(size_t(spec.vocab));
  while (int32_t(out.size()) < max_tokens) {
    reference_logits(spec, prompt, l.data());
    int32_t best = 0;
    for (int32_t v = 1; v < spec.vocab; ++v) {
      if (l[size_t(v)] > l[size_t(best)]) best = v;
    }
    out.push_back(best);
    prompt.push_back(best);
    bool stop = false;
    for (int32_t e : eos) stop |= e == best;
    if (stop) break;
  }
  return out;
}

class FakeExecutor : public ModelExecutor {
 public:
  explicit FakeExecutor(FakeModelSpec spec)
      : spec_(std::move(spec)), kv_(size_t(spec_.num_blocks) * size_t(spec_.block_size), -1) {}

  int32_t vocab_size() const override { return spec_.vocab; }
  int32_t block_size() const override { return spec_.block_size; }
  int32_t num_kv_blocks() const override { return spec_.num_blocks; }
  int32_t max_model_len() const override { return spec_.max_model_len; }
  int32_t max_top_logprobs() const override { return spec_.max_top_logprobs; }
  int32_t hidden_size() const override { return spec_.hidden_size; }
  std::span<const float> pooled() const override { return pooled_; }
  const FakeModelSpec& spec() const { return spec_; }

  void forward(const ForwardBatch& b, float* logits) override {
    wait_gate();
    if (spec_.step_delay_us > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(spec_.step_delay_us));
    }
    const int32_t bs = spec_.block_size;
    if (b.token_ids.size() != b.positions.size()) throw std::runtime_error("ids/positions size");
    auto slot_of = [&](const SeqBatchInfo& s, int32_t pos) {
      if (pos / bs >= s.num_blocks) throw std::runtime_error("position beyond the block table");
      const int32_t block = b.block_tables.at(size_t(s.block_table_offset + pos / bs));
      if (block < 0 || block >= spec_.num_blocks) throw std::runtime_error("bad block id");
      return size_t(block) * size_t(bs) + size_t(pos % bs);
    };
    std::vector<size_t> written;
    int32_t row = 0;
    std::vector<int32_t> row_seq(b.token_ids.size(), -1);
    for (size_t si = 0; si < b.seqs.size(); ++si) {
      const SeqBatchInfo& s = b.seqs[si];
      if (s.q_start != row) throw std::runtime_error("sequences not packed in order");
      if (s.q_len <= 0 || s.kv_len < s.q_len) throw std::runtime_error("bad q_len/kv_len");
      if (int64_t(s.num_blocks) * bs < s.kv_len) throw std::runtime_error("block table too short");
      for (int32_t j = 0; j < s.q_len; ++j) {
        const int32_t pos = s.kv_len - s.q_len + j;
        if (b.positions[size_t(row + j)] != pos) throw std::runtime_error("bad position");
        const size_t slot = slot_of(s, pos);
        for (size_t w : written) {
          if (w == slot) throw std::runtime_error("two tokens written to one KV slot in a step");
        }
        written.push_back(slot);
        kv_[slot] = b.token_ids[size_t(row + j)];
        row_seq[size_t(row + j)] = int32_t(si);
      }
      row += s.q_len;
    }
    if (row != int32_t(b.token_ids.size())) throw std::runtime_error("rows not covered");
    std::vector<int32_t> hist;
    auto history = [&](int32_t lr) {  // the tokens row lr sees, read back from the KV cache
      const SeqBatchInfo& s = b.seqs.at(size_t(row_seq.at(size_t(lr))));
      hist.clear();
      for (int32_t q = 0; q <= b.positions[size_t(lr)]; ++q) {
        const int32_t t = kv_[slot_of(s, q)];
        if (t < 0) throw std::runtime_error("read an unwritten KV slot");
        hist.push_back(t);
      }
      return std::span<const int32_t>(hist);
    };
    const size_t H = size_t(spec_.hidden_size);
    if (!b.pool_spans.empty() && H == 0) throw std::runtime_error("pool spans without pooling");
    pooled_.assign(b.pool_spans.size() * H, 0.0f);
    std::vector<float> h(H);
    for (size_t i = 0; i < b.pool_spans.size(); ++i) {
      for (int32_t j = 0; j < b.pool_spans[i].num_rows; ++j) {
        reference_hidden(spec_, history(b.pool_spans[i].row + j), h.data());
        for (size_t c = 0; c < H; ++c) pooled_[i * H + c] += h[c];
      }
    }
    for (size_t r = 0; r < b.logit_rows.size(); ++r) {
      const int32_t lr = b.logit_rows[r];
      const SeqBatchInfo& s = b.seqs.at(size_t(row_seq.at(size_t(lr))));
      const int32_t p = b.positions[size_t(lr)];
      hist.clear();
      for (int32_t q = 0; q <= p; ++q) {
        const int32_t t = kv_[slot_of(s, q)];
        if (t < 0) throw std::runtime_error("read an unwritten KV slot");
        hist.push_back(t);
      }
      reference_logits(spec_, hist, logits + r * size_t(spec_.vocab));
    }
    ++num_forwards_;
    num_tokens_ += int64_t(b.token_ids.size());
    max_batch_tokens_ = std::max<int64_t>(max_batch_tokens_, int64_t(b.token_ids.size()));
  }

  // Gate: while closed, forward() blocks (lets tests hold the engine inside a step); `allow`
  // lets that many more steps through a closed gate.
  void close_gate() {
    std::lock_guard lk(mu_);
    gate_open_ = false;
  }
  void open_gate() {
    {
      std::lock_guard lk(mu_);
      gate_open_ = true;
    }
    cv_.notify_all();
  }
  void allow(int64_t steps) {
    {
      std::lock_guard lk(mu_);
      permits_ += steps;
    }
    cv_.notify_all();
  }
  // Blocks until forward() has been entered `n` times in total.
  void wait_entered(int64_t n) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return entered_ >= n; });
  }

  int64_t num_forwards() const { return num_forwards_; }
  int64_t num_tokens() const { return num_tokens_; }
  int64_t max_batch_tokens() const { return max_batch_tokens_; }

 private:
  void wait_gate() {
    std::unique_lock lk(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return gate_open_ || permits_ > 0; });
    if (!gate_open_) --permits_;
  }

  FakeModelSpec spec_;
  std::vector<int32_t> kv_;
  std::vector<float> pooled_;
  std::atomic<int64_t> num_forwards_{0}, num_tokens_{0}, max_batch_tokens_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool gate_open_ = true;
  int64_t entered_ = 0;
  int64_t permits_ = 0;
};

// Token i decodes to a fixed byte string. Invalid UTF-8 in the joined bytes becomes U+FFFD, as
// Hugging Face decoders do. Ids: 0 "<eos>" (special), 1..26 "a".."z", 27 " ", 28/29 the two bytes
// of "é", 30/31/32 the three bytes of "€", 33.. "<id>" as text ("T33").
class FakeDecoder : public TextDecoder {
 public:
  static std::string piece(int32_t id) {
    if (id == 0) return "<eos>";
    if (id >= 1 && id <= 26) return std::string(1, char('a' + id - 1));
    if (id == 27) return " ";
    if (id == 28) return "\xC3";
    if (id == 29) return "\xA9";
    if (id == 30) return "\xE2";
    if (id == 31) return "\x82";
    if (id == 32) return "\xAC";
    std::string s = "T";
    s += std::to_string(id);
    return s;
  }
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override {
    std::string bytes;
    for (int32_t id : ids) {
      if (id == 0 && skip_special_tokens) continue;
      bytes += piece(id);
    }
    return sanitize(bytes);
  }
  // Replaces every invalid or incomplete UTF-8 sequence with U+FFFD.
  static std::string sanitize(const std::string& s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      bool ok = len > 0 && i + len <= s.size();
      for (size_t k = 1; ok && k < len; ++k) {
        ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
      }
      if (ok) {
        out.append(s, i, len);
        i += len;
      } else {
        out += "\xEF\xBF\xBD";
        i += 1;
      }
    }
    return out;
  }
};

}  // namespace inferd::testing
