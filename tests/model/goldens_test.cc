// The CPU backend against the reference outputs in tests/data/goldens (see tools/make_goldens.py):
// logits at every prompt position, chunked prefill, batching, and greedy tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "model/safetensors.h"
#include "model/simple_generate.h"

namespace inferd {
namespace {

const std::string kGoldens = std::string(INFERD_TEST_DATA_DIR) + "/goldens/";

std::vector<int32_t> ints(const Tensor& t) {
  return std::vector<int32_t>(t.data_as<int32_t>(), t.data_as<int32_t>() + t.numel());
}

double rel_err(const float* a, const float* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

std::unique_ptr<DecoderModel> load(const std::string& name, int32_t max_batched = 64) {
  ModelOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = max_batched;
  return std::make_unique<DecoderModel>(kGoldens + name, o, make_cpu_backend(2));
}

// Runs sequences `prompts` in one forward (all positions' logits), with block tables that
// interleave blocks so no sequence's blocks are contiguous.
std::vector<std::vector<float>> forward_all(DecoderModel& m,
                                            const std::vector<std::vector<int32_t>>& prompts,
                                            int32_t chunk) {
  const int32_t V = m.vocab_size(), bs = m.block_size();
  const size_t S = prompts.size();
  std::vector<std::vector<int32_t>> tables(S);
  int32_t next = m.num_kv_blocks() - 1;
  for (size_t s = 0; s < S; ++s)
    for (size_t k = 0; k * size_t(bs) < prompts[s].size(); ++k) tables[s].push_back(next--);
  std::vector<std::vector<float>> out(S);
  std::vector<size_t> done(S, 0);
  for (;;) {
    ForwardBatch b;
    std::vector<size_t> which;
    for (size_t s = 0; s < S; ++s) {
      const size_t n = std::min(prompts[s].size() - done[s], size_t(chunk));
      if (n == 0) continue;
      SeqBatchInfo info;
      info.q_start = b.num_tokens();
      info.q_len = int32_t(n);
      info.kv_len = int32_t(done[s] + n);
      info.block_table_offset = int32_t(b.block_tables.size());
      info.num_blocks = int32_t(tables[s].size());
      b.block_tables.insert(b.block_tables.end(), tables[s].begin(), tables[s].end());
      for (size_t j = 0; j < n; ++j) {
        b.logit_rows.push_back(b.num_tokens());
        b.token_ids.push_back(prompts[s][done[s] + j]);
        b.positions.push_back(int32_t(done[s] + j));
      }
      b.seqs.push_back(info);
      which.push_back(s);
    }
    if (which.empty()) break;
    std::vector<float> logits(b.logit_rows.size() * size_t(V));
    m.forward(b, logits.data());
    size_t row = 0;
    for (size_t w = 0; w < which.size(); ++w) {
      const size_t s = which[w];
      const size_t n = size_t(b.seqs[w].q_len);
      out[s].insert(out[s].end(), logits.begin() + std::ptrdiff_t(row * size_t(V)),
                    logits.begin() + std::ptrdiff_t((row + n) * size_t(V)));
      row += n;
      done[s] += n;
    }
  }
  return out;
}

class Goldens : public ::testing::TestWithParam<std::string> {};

TEST_P(Goldens, LogitsMatchReferenceAtEveryPosition) {
  auto m = load(GetParam());
  const auto gold = SafetensorsIndex::open_file(kGoldens + GetParam() + "/golden.safetensors");
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i) {
    const auto ids = ints(gold.get("prompt" + std::to_string(i) + ".ids"));
    const Tensor ref = gold.get("prompt" + std::to_string(i) + ".logits");
    ASSERT_EQ(ref.size(0), int64_t(ids.size()));
    ASSERT_EQ(ref.size(1), m->vocab_size());
    const auto got = forward_all(*m, {ids}, 64)[0];
    ASSERT_EQ(got.size(), size_t(ref.numel()));
    const double err = rel_err(got.data(), ref.data_as<float>(), got.size());
    EXPECT_LT(err, 1e-4) << GetParam() << " prompt " << i << " (" << ids.size() << " tokens)";
    for (float v : got) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST_P(Goldens, ChunkedAndBatchedMatchOneAtATime) {
  auto m = load(GetParam());
  const auto gold = SafetensorsIndex::open_file(kGoldens + GetParam() + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i)
    prompts.push_back(ints(gold.get("prompt" + std::to_string(i) + ".ids")));
  ASSERT_GE(prompts.size(), 2u);
  std::vector<std::vector<float>> single;
  for (const auto& p : prompts) single.push_back(forward_all(*m, {p}, 64)[0]);
  for (int32_t chunk : {1, 5, 16, 64}) {
    const auto batched = forward_all(*m, prompts, chunk);
    for (size_t s = 0; s < prompts.size(); ++s) {
      ASSERT_EQ(batched[s].size(), single[s].size());
      EXPECT_LT(rel_err(batched[s].data(), single[s].data(), single[s].size()), 1e-5)
          << GetParam() << " seq " << s << " chunk " << chunk;
    }
  }
}

TEST_P(Goldens, GreedyTokensMatchReference) {
  for (int32_t chunk : {64, 3}) {
    auto m = load(GetParam(), chunk);
    const auto gold = SafetensorsIndex::open_file(kGoldens + GetParam() + "/golden.safetensors");
    for (int j = 0; gold.contains("greedy" + std::to_string(j) + ".tokens"); ++j) {
      const int pi = ints(gold.get("greedy" + std::to_string(j) + ".prompt_index"))[0];
      const auto prompt = ints(gold.get("prompt" + std::to_string(pi) + ".ids"));
      const auto want = ints(gold.get("greedy" + std::to_string(j) + ".tokens"));
      const auto got = greedy_generate(*m, prompt, int32_t(want.size()), chunk);
      EXPECT_EQ(got, want) << GetParam() << " greedy " << j << " chunk " << chunk;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, Goldens,
                         ::testing::Values("llama3", "llama32_tied", "mistral", "qwen2", "qwen3"));

TEST(GoldensData, ReferenceIsRecorded) {
  // Every golden directory says which reference produced it.
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(kGoldens)) {
    EXPECT_TRUE(std::filesystem::exists(e.path() / "golden.json")) << e.path();
    ++n;
  }
  EXPECT_EQ(n, 5);
}

}  // namespace
}  // namespace inferd
