// Helpers shared by the golden tests of every backend (tests/model, tests/backend).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "runner/executor.h"

namespace inferd::testing_util {

// tests/data/goldens/, or $INFERD_GOLDENS_DIR (scripts/gpu-check.sh points it at goldens freshly
// made by tools/make_goldens.py with transformers).
inline const std::string& goldens_dir() {
  static const std::string dir = [] {
    const char* env = std::getenv("INFERD_GOLDENS_DIR");
    return env && *env ? std::string(env) + "/" : std::string(INFERD_TEST_DATA_DIR) + "/goldens/";
  }();
  return dir;
}

// The model directories under goldens_dir() (those with a golden.json), sorted: every golden
// test runs on each of them, so a model added by tools/make_goldens.py is tested at once.
inline std::vector<std::string> golden_models() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(goldens_dir()))
    if (std::filesystem::exists(e.path() / "golden.json")) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

inline std::vector<int32_t> ints(const Tensor& t) {
  return std::vector<int32_t>(t.data_as<int32_t>(), t.data_as<int32_t>() + t.numel());
}

// lm-evaluation-harness's loglikelihood of a request (context = ids[0, ctxlen), continuation =
// the rest) from every position's logits [ids.size(), V] (row p predicts ids[p + 1]): the sum of
// the continuation tokens' log-softmax values, each one's log-softmax (per token), and whether
// each was the argmax (is_greedy).
struct Loglikelihood {
  double sum = 0;
  std::vector<double> per_token;
  bool is_greedy = true;
};
inline Loglikelihood loglikelihood(const float* logits, int64_t V, const std::vector<int32_t>& ids,
                                   size_t ctxlen) {
  Loglikelihood ll;
  for (size_t p = ctxlen - 1; p + 1 < ids.size(); ++p) {
    const float* l = logits + int64_t(p) * V;
    const float mx = *std::max_element(l, l + V);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(l[v]) - mx);
    const double lp = double(l[ids[p + 1]]) - mx - std::log(s);
    ll.per_token.push_back(lp);
    ll.sum += lp;
    ll.is_greedy = ll.is_greedy && l[ids[p + 1]] == mx;
  }
  return ll;
}

// ||a - ref|| / ||ref||
inline double rel_err(const float* a, const float* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

// Runs `prompts` together in chunks of at most `chunk` tokens per sequence and step, with block
// tables taken from the top of the pool downwards (so no sequence's blocks are contiguous with
// another's); returns every position's logits per sequence. `adapters[s]`: sequence s's LoRA
// adapter id (empty: every sequence runs the base model).
inline std::vector<std::vector<float>> forward_all(ModelExecutor& m,
                                                   const std::vector<std::vector<int32_t>>& prompts,
                                                   int32_t chunk,
                                                   const std::vector<int32_t>& adapters = {}) {
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
      info.adapter_id = adapters.empty() ? -1 : adapters[s];
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

}  // namespace inferd::testing_util
