// The flat batch one forward pass consumes: prefill chunks and decode tokens of many sequences.
//
// Tokens of sequence s occupy rows [seqs[s].q_start, seqs[s].q_start + seqs[s].q_len) of
// token_ids/positions. Their keys/values are written to the paged KV cache at the slots given by
// the sequence's block table: position p lives in block block_tables[off + p / block_size] at
// offset p % block_size. Attention for a new token at position p sees positions [0, p] of its own
// sequence (causal); positions before the new tokens must already be in the cache (prefix-cache
// hits, earlier chunks, earlier decode steps). A sequence may bring any number of new tokens and
// want the logits of any of them: a prefill chunk (the last row), a decode step (one row), or the
// k + 1 rows of a speculative verification (every row).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace inferd {

namespace media {
struct PixelValues;
}

struct SeqBatchInfo {
  int32_t q_start = 0;             // first row of this sequence in the flat batch
  int32_t q_len = 0;               // number of new tokens of this sequence in this step
  int32_t kv_len = 0;              // context length after this step (cached + new tokens)
  int32_t block_table_offset = 0;  // index into ForwardBatch::block_tables
  int32_t num_blocks = 0;          // blocks in this sequence's table (>= ceil(kv_len / bs))
  // The LoRA adapter this sequence runs with (issue 29); -1: the base model. Runners reject other
  // values until adapters exist.
  int32_t adapter_id = -1;
};

// One image of a step (issue 34): its content hash (media::image_hash; the runner's embedding
// cache key) and its preprocessed pixels, whose vision-tower output is `num_rows` embedding rows.
struct EmbeddingInput {
  std::array<uint8_t, 32> hash{};
  std::shared_ptr<const media::PixelValues> pixels;
  int32_t num_rows = 0;
};

// Rows [row, row + num_rows) of the batch take their input embeddings from rows [offset, offset +
// num_rows) of the step's embedding input `source` (image features; issue 34) instead of the token
// table. offset > 0: the image's first rows were computed in an earlier step (a prefix-cache hit
// ending inside the image). Every row of the image is then in the KV cache or in this step: the
// scheduler never ends a step inside an image, so models whose image tokens attend to each other
// (Gemma 3) see the whole image.
struct EmbeddingSpan {
  int32_t row = 0;
  int32_t num_rows = 0;
  int32_t source = 0;
  int32_t offset = 0;
};

// Rows [row, row + num_rows) of the batch, pooled: the executor sums their final-normed hidden
// states (embedding requests; ModelExecutor::pooled).
struct PoolSpan {
  int32_t row = 0;
  int32_t num_rows = 0;
};

struct ForwardBatch {
  std::vector<int32_t> token_ids;                // [T]
  std::vector<int32_t> positions;                // [T]; for seq s row j: kv_len - q_len + j
  std::vector<SeqBatchInfo> seqs;                // [S]
  std::vector<int32_t> block_tables;             // concatenated block tables
  std::vector<int32_t> logit_rows;               // rows whose logits are wanted, in output order
  std::vector<EmbeddingSpan> embedding_spans;    // empty: every row embeds its token id
  std::vector<EmbeddingInput> embedding_inputs;  // the spans' sources
  // M-RoPE models (Qwen2.5-VL) in a step with images: [3, T] rope positions (temporal, height,
  // width rows); empty: every row's rope position is its position.
  std::vector<int32_t> mrope_positions;
  std::vector<PoolSpan> pool_spans;  // sums wanted, in output order
  // EAGLE-3 heads (issue 26): each row's hidden input, [T, hidden_input_width] fp32 row-major
  // (ModelExecutor::HeadInfo); empty: none.
  std::vector<float> hidden_inputs;
  int32_t hidden_input_width = 0;

  void clear() {
    token_ids.clear();
    positions.clear();
    seqs.clear();
    block_tables.clear();
    logit_rows.clear();
    embedding_spans.clear();
    embedding_inputs.clear();
    mrope_positions.clear();
    pool_spans.clear();
    hidden_inputs.clear();
    hidden_input_width = 0;
  }
  int32_t num_tokens() const { return int32_t(token_ids.size()); }
};

}  // namespace inferd
