// What the model-based proposers share (proposer_common.h).
#include "engine/proposer_common.h"

#include "backend/sampling_math.h"

namespace inferd {

ProposerKv::ProposerKv(const ModelExecutor& model) : block_size_(model.block_size()) {
  const int32_t n = model.num_kv_blocks();
  free_.reserve(size_t(std::max(n, 0)));
  for (int32_t b = n; b-- > 0;) free_.push_back(b);
}

void ProposerKv::truncate(Seq& s, int32_t len) {
  s.tokens.resize(size_t(len));
  const size_t keep = size_t((len + block_size_ - 1) / block_size_);
  while (s.blocks.size() > keep) {
    free_.push_back(s.blocks.back());
    s.blocks.pop_back();
  }
}

bool ProposerKv::reserve(Seq& s, int32_t len) {
  const size_t need = size_t((len + block_size_ - 1) / block_size_);
  while (s.blocks.size() < need) {
    if (free_.empty()) return false;
    s.blocks.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void ProposerKv::add_rows(ForwardBatch& batch, const Seq& s, int32_t first, int32_t count) {
  SeqBatchInfo info;
  info.q_start = batch.num_tokens();
  info.q_len = count;
  info.kv_len = first + count;
  info.block_table_offset = int32_t(batch.block_tables.size());
  info.num_blocks = int32_t(s.blocks.size());
  batch.block_tables.insert(batch.block_tables.end(), s.blocks.begin(), s.blocks.end());
  batch.seqs.push_back(info);
}

int32_t draw_draft(const Sequence& q, std::span<const float> qp, int32_t fallback) {
  const uint64_t counter = uint64_t(q.num_output()) + uint64_t(q.drafts.size());
  const double u = sampling::uniform53(q.sample_key, counter, sampling::kStreamDraft);
  double acc = 0;
  int32_t token = fallback;
  for (size_t i = 0; i < qp.size(); ++i) {
    if (qp[i] <= 0.0f) continue;
    acc += double(qp[i]);
    token = int32_t(i);
    if (u < acc) break;
  }
  return token;
}

}  // namespace inferd
