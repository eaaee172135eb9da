// Greedy generation on a ModelExecutor (simple_generate.h).
#include "runner/simple_generate.h"

#include <algorithm>

#include "core/error.h"

namespace inferd {

int32_t argmax(const float* logits, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

std::vector<int32_t> greedy_generate(ModelExecutor& model, const std::vector<int32_t>& prompt,
                                     int32_t max_tokens, int32_t chunk,
                                     const std::vector<int32_t>& stop_ids,
                                     const std::function<void(int32_t)>& on_token,
                                     int32_t adapter_id) {
  if (prompt.empty()) fail("the prompt is empty: at least one token id is needed");
  const int32_t bs = model.block_size();
  const int64_t total = int64_t(prompt.size()) + max_tokens;
  if (total > model.max_model_len())
    fail("prompt ({} tokens) + max_tokens ({}) exceeds the model's context length {}",
         prompt.size(), max_tokens, model.max_model_len());
  const int32_t blocks = int32_t((total + bs - 1) / bs);
  if (blocks > model.num_kv_blocks())
    fail("the KV cache has {} blocks of {} tokens; this request needs {}", model.num_kv_blocks(),
         bs, blocks);
  std::vector<int32_t> seq = prompt, out;
  std::vector<float> logits(size_t(model.vocab_size()));
  ForwardBatch b;
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int32_t i = 0; i < blocks; ++i) table[size_t(i)] = i;
  int32_t done = 0;  // tokens whose KV is in the cache
  while (int32_t(out.size()) < max_tokens) {
    const int32_t n = std::min<int32_t>(chunk, int32_t(seq.size()) - done);
    b.clear();
    for (int32_t j = 0; j < n; ++j) {
      b.token_ids.push_back(seq[size_t(done + j)]);
      b.positions.push_back(done + j);
    }
    b.block_tables = table;
    b.seqs.push_back(SeqBatchInfo{0, n, done + n, 0, blocks, adapter_id});
    const bool last = done + n == int32_t(seq.size());
    if (last) b.logit_rows.push_back(n - 1);
    model.forward(b, logits.data());
    done += n;
    if (!last) continue;
    const int32_t id = argmax(logits.data(), model.vocab_size());
    out.push_back(id);
    seq.push_back(id);
    if (on_token) on_token(id);
    if (std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) break;
  }
  return out;
}

}  // namespace inferd
