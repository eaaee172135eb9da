// The per-step traffic of the CUDA backend (cuda_step.h).
#include "backend/cuda/cuda_step.h"

#include <algorithm>
#include <cstring>

#include "backend/cuda/lora.h"
#include "backend/cuda/sampler.h"
#include "core/logging.h"

namespace inferd::cuda_impl {

static_assert(sizeof(SamplingRow) % 8 == 0 && sizeof(LogitEdit) % 4 == 0);

CudaStepIo::CudaStepIo(CudaContext& ctx, CudaGraphs& graphs, size_t metadata_bytes)
    : ctx_(ctx), graphs_(graphs) {
  CU_CHECK(cudaEventCreateWithFlags(&meta_ev_, cudaEventDisableTiming));
  for (int i = 0; i < 2; ++i) {
    CU_CHECK(cudaEventCreate(&step_start_[i]));
    CU_CHECK(cudaEventCreate(&step_end_[i]));
  }
  grow_metadata(std::max<size_t>(metadata_bytes / 4, 1024));
}

CudaStepIo::~CudaStepIo() {
  (void)cudaStreamSynchronize(ctx_.stream());
  (void)cudaEventDestroy(meta_ev_);
  for (int i = 0; i < 2; ++i) {
    (void)cudaEventDestroy(step_start_[i]);
    (void)cudaEventDestroy(step_end_[i]);
  }
  if (results_host_) (void)cudaFreeHost(results_host_);
  if (chain_host_) (void)cudaFreeHost(chain_host_);
  if (meta_host_) (void)cudaFreeHost(meta_host_);
  if (meta_dev_) (void)cudaFree(meta_dev_);
  if (down_host_) (void)cudaFreeHost(down_host_);
}

CudaStepIo::Layout CudaStepIo::layout_ints(int32_t T, int32_t S, int32_t R, int32_t stride,
                                           size_t draft_floats, size_t edits, size_t mask_words,
                                           bool lora) {
  auto seg = [](size_t n) { return (n + 31) / 32 * 32; };
  Layout o;
  o.ids = kHeaderIntsPadded;
  o.pos = o.ids + seg(size_t(T));
  o.slot = o.pos + seg(size_t(T));
  o.lora = o.slot + seg(size_t(T));
  o.ltiles = o.lora + seg(size_t(T));
  o.qs = o.ltiles + (lora ? seg(cuda::lora_tile_ints(T)) : 0);
  o.kv = o.qs + seg(size_t(S) + 1);
  o.rows = o.kv + seg(size_t(S));
  o.samp = o.rows + seg(size_t(R));
  o.bt = o.samp + seg(size_t(R) * sizeof(SamplingRow) / 4);
  o.drafts = o.bt + seg(size_t(S) * size_t(stride));
  o.edits = o.drafts + seg(draft_floats);
  o.masks = o.edits + seg(edits * sizeof(LogitEdit) / 4);
  o.total = o.masks + seg(mask_words);
  return o;
}

void CudaStepIo::reserve(const StepCapacity& c) {
  INFERD_CHECK(c.max_tokens > 0 && c.max_blocks_per_seq > 0 && c.max_top_logprobs >= 0,
               "reserve: bad capacity");
  capacity_ = c;
  const size_t need = layout_ints(c.max_tokens, c.max_tokens, c.max_tokens, c.max_blocks_per_seq,
                                  size_t(std::max<int64_t>(0, c.max_draft_floats)),
                                  size_t(std::max<int64_t>(0, c.max_edits)),
                                  size_t(std::max<int64_t>(0, c.max_mask_words)),
                                  c.max_lora_columns > 0 || lora_on_)
                          .total;
  if (need > meta_capacity_) grow_metadata(need);
  rows_cap_ = c.max_tokens;
  lora_rows_.reserve(size_t(c.max_tokens));
  if (c.max_lora_columns > 0) lora_order_.resize(size_t(c.max_tokens));
  row_map_.reserve(size_t(c.max_tokens));
  record_bytes_ = size_t(cuda::logprob_record_bytes(c.max_top_logprobs));
  tokens_bytes_ = (size_t(rows_cap_) * 4 + 255) / 256 * 256;
  results_bytes_ = tokens_bytes_ + size_t(rows_cap_) * record_bytes_;
  results_dev_ = ctx_.alloc(DType::kU8, std::initializer_list<int64_t>{int64_t(results_bytes_)});
  if (results_host_) CU_CHECK(cudaFreeHost(results_host_));
  results_host_ = nullptr;
  CU_CHECK(cudaHostAlloc(&results_host_, results_bytes_, cudaHostAllocDefault));
  const int64_t chain_ints = int64_t(kMaxChainRounds) * rows_cap_;
  chain_dev_ = ctx_.alloc(DType::kI32, std::initializer_list<int64_t>{chain_ints});
  if (chain_host_) CU_CHECK(cudaFreeHost(chain_host_));
  chain_host_ = nullptr;
  CU_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&chain_host_), size_t(chain_ints) * 4,
                         cudaHostAllocDefault));
}

const DeviceBatch& CudaStepIo::prepare_batch(const ForwardBatch& fb, int32_t block_size,
                                             const SamplingBatch* sampling, int32_t pad_to,
                                             int32_t rows_per_seq) {
  CU_CHECK(cudaSetDevice(ctx_.device()));
  INFERD_CHECK(block_size > 0, "block size {}", block_size);
  const int32_t T0 = fb.num_tokens();
  const int32_t S0 = int32_t(fb.seqs.size());
  const int32_t R0 = int32_t(fb.logit_rows.size());
  const bool verify = rows_per_seq > 0;
  INFERD_CHECK(!verify || (pad_to >= S0 && pad_to > 0 && R0 <= T0),
               "a verification step of {} sequences ({} logit rows of {}) padded to {}", S0, R0, T0,
               pad_to);
  const int32_t pad = !verify && pad_to > T0 ? pad_to - T0 : 0;
  const int32_t T = verify ? pad_to * rows_per_seq : T0 + pad;
  const int32_t S = verify ? pad_to : S0 + pad;
  const int32_t R = verify ? T : R0 + pad;
  INFERD_CHECK(fb.positions.size() == size_t(T0), "{} positions for {} tokens", fb.positions.size(),
               T0);
  INFERD_CHECK(!sampling || sampling->rows.size() == size_t(R0),
               "{} sampling rows for {} logit rows", sampling ? sampling->rows.size() : 0, R0);
  int32_t stride = 1;
  for (const auto& sq : fb.seqs) stride = std::max(stride, sq.num_blocks);
  const size_t E = sampling ? sampling->edits.size() : 0;
  const bool late_masks = sampling && sampling->fill_masks && sampling->num_mask_rows > 0;
  const size_t MW = !sampling    ? 0
                    : late_masks ? size_t(sampling->num_mask_rows) * size_t(sampling->mask_words)
                                 : sampling->masks.size();
  INFERD_CHECK(MW == 0 || sampling->mask_words > 0, "{} mask words with rows of 0 words", MW);
  const size_t DF = sampling ? sampling->draft_probs.size() : 0;
  const Layout o = layout_ints(T, S, R, stride, DF, E, MW, lora_on_);
  if (o.total > meta_capacity_) {
    if (!graphs_.empty()) {
      LOG_WARN(
          "a step needs {} KiB of metadata, more than the {} KiB reserved at start-up: the "
          "buffer grows and the CUDA graphs are dropped (steps run eagerly from now on)",
          o.total * 4 / 1024, meta_capacity_ * 4 / 1024);
    }
    grow_metadata(std::max(o.total, 2 * meta_capacity_));
  }
  // The previous step's copy out of the pinned buffer must be done before it is rewritten.
  CU_CHECK(cudaEventSynchronize(meta_ev_));

  int32_t* h = meta_host_;
  std::fill(h, h + kHeaderIntsPadded, 0);
  h[cuda::kHeaderBlockTableStride] = stride;
  h[cuda::kHeaderEditsOffset] = int32_t(o.edits);
  h[cuda::kHeaderMasksOffset] = int32_t(o.masks);
  h[cuda::kHeaderMaskWords] = sampling ? sampling->mask_words : 0;
  h[cuda::kHeaderDraftsOffset] = int32_t(o.drafts);
  if (lora_on_) {
    INFERD_CHECK(lora_rows_.size() == size_t(T0), "{} LoRA rows for a batch of {}",
                 lora_rows_.size(), T0);
  }
  std::fill(h + o.bt, h + o.bt + size_t(S) * size_t(stride), 0);
  const SeqStats st = verify
                          ? pack_verify_sequences(fb, o, stride, block_size, rows_per_seq, pad_to)
                          : pack_padded_rows(fb, o, stride, block_size, pad);
  if (lora_on_) {  // the rows' slots (written by the packing above) grouped into tiles
    if (lora_order_.size() < size_t(T)) lora_order_.resize(size_t(T));
    cuda::build_lora_tiles(std::span<const int32_t>(h + o.lora, size_t(T)), h + o.ltiles,
                           lora_order_);
  }
  for (int32_t r = 0; r < R0; ++r) {
    const int32_t row = fb.logit_rows[size_t(r)];
    INFERD_CHECK(row >= 0 && row < T0, "logit row {} outside {} tokens", row, T0);
    h[o.rows + size_t(r)] = verify ? row_map_[size_t(row)] : row;
  }
  // Padding logit rows: the padding rows (any row would do: their tokens are dropped).
  for (int32_t j = 0; j < R - R0; ++j) h[o.rows + size_t(R0 + j)] = verify ? j % T : T0 + j;
  pack_sampling(sampling, o, R0, R, E);
  if (DF > 0) std::memcpy(h + o.drafts, sampling->draft_probs.data(), DF * sizeof(float));
  if (MW > 0 && !late_masks) {
    std::memcpy(h + o.masks, sampling->masks.data(), MW * sizeof(uint32_t));
  }

  CU_CHECK(cudaEventRecord(step_start_[step_idx_], ctx_.stream()));
  step_open_ = true;
  // Late masks: everything before them now, the masks in upload_masks().
  const size_t first_copy = late_masks ? o.masks : o.total;
  CU_CHECK(cudaMemcpyAsync(meta_dev_, meta_host_, first_copy * 4, cudaMemcpyHostToDevice,
                           ctx_.stream()));
  CU_CHECK(cudaEventRecord(meta_ev_, ctx_.stream()));
  late_mask_offset_ = late_masks ? o.masks : 0;
  late_mask_words_ = late_masks ? MW : 0;

  int32_t* d = meta_dev_;
  b_ = DeviceBatch{};
  b_.num_tokens = T;
  b_.num_seqs = S;
  b_.num_logit_rows = R;
  b_.num_real_rows = R0;
  b_.num_single_token_seqs = st.singles;
  b_.max_q_len = st.max_q;
  b_.max_kv_len = st.max_kv;
  b_.token_ids = d + o.ids;
  b_.positions = d + o.pos;
  b_.slot_mapping = d + o.slot;
  b_.seq_q_start = d + o.qs;
  b_.seq_kv_len = d + o.kv;
  b_.block_tables = d + o.bt;
  b_.max_blocks_per_seq = stride;
  b_.logit_rows = d + o.rows;
  b_.lora_slots = lora_on_ ? d + o.lora : nullptr;
  b_.lora_tiles = lora_on_ ? d + o.ltiles : nullptr;
  b_.header = d;
  b_.meta = d;
  b_.sampling_rows = reinterpret_cast<const SamplingRow*>(d + o.samp);
  host_ids_ = h + o.ids;
  block_size_ = block_size;
  return b_;
}

void CudaStepIo::set_lora_rows(std::span<const int32_t> slots) {
  lora_on_ = true;
  lora_rows_.assign(slots.begin(), slots.end());
}

CudaStepIo::SeqStats CudaStepIo::pack_sequences(const ForwardBatch& fb, const Layout& o,
                                                int32_t stride, int32_t block_size) {
  int32_t* h = meta_host_;
  SeqStats st;
  int32_t next_row = 0;
  for (int32_t i = 0; i < int32_t(fb.seqs.size()); ++i) {
    const SeqBatchInfo& sq = fb.seqs[size_t(i)];
    INFERD_CHECK(
        sq.kv_len >= sq.q_len && sq.q_len >= 0 && int64_t(sq.num_blocks) * block_size >= sq.kv_len,
        "seq {}: kv_len {} q_len {} blocks {}", i, sq.kv_len, sq.q_len, sq.num_blocks);
    INFERD_CHECK(sq.q_start == next_row, "seq {}: rows start at {}, expected {}", i, sq.q_start,
                 next_row);
    INFERD_CHECK(
        sq.block_table_offset >= 0 &&
            size_t(sq.block_table_offset) + size_t(sq.num_blocks) <= fb.block_tables.size(),
        "seq {}: block table [{}, +{}) outside {}", i, sq.block_table_offset, sq.num_blocks,
        fb.block_tables.size());
    next_row += sq.q_len;
    h[o.qs + size_t(i)] = sq.q_start;
    h[o.kv + size_t(i)] = sq.kv_len;
    st.max_q = std::max(st.max_q, sq.q_len);
    st.max_kv = std::max(st.max_kv, sq.kv_len);
    st.singles += sq.q_len == 1 ? 1 : 0;
    const int32_t* bt = fb.block_tables.data() + sq.block_table_offset;
    std::copy(bt, bt + sq.num_blocks, h + o.bt + size_t(i) * size_t(stride));
    for (int32_t j = 0; j < sq.q_len; ++j) {
      const int32_t row = sq.q_start + j;
      const int32_t pos = fb.positions[size_t(row)];
      INFERD_CHECK(pos >= 0 && pos < sq.kv_len, "position {} outside kv_len {}", pos, sq.kv_len);
      h[o.slot + size_t(row)] = bt[pos / block_size] * block_size + pos % block_size;
    }
  }
  INFERD_CHECK(next_row == fb.num_tokens(), "sequences cover {} rows of {}", next_row,
               fb.num_tokens());
  return st;
}

CudaStepIo::SeqStats CudaStepIo::pack_padded_rows(const ForwardBatch& fb, const Layout& o,
                                                  int32_t stride, int32_t block_size, int32_t pad) {
  int32_t* h = meta_host_;
  const int32_t T0 = fb.num_tokens(), T = T0 + pad, S0 = int32_t(fb.seqs.size());
  std::copy(fb.token_ids.begin(), fb.token_ids.end(), h + o.ids);
  std::copy(fb.positions.begin(), fb.positions.end(), h + o.pos);
  std::fill(h + o.ids + T0, h + o.ids + T, 0);
  std::fill(h + o.pos + T0, h + o.pos + T, 0);
  std::fill(h + o.slot + T0, h + o.slot + T, -1);
  if (lora_on_) {
    std::copy(lora_rows_.begin(), lora_rows_.end(), h + o.lora);
    std::fill(h + o.lora + T0, h + o.lora + T, -1);  // padding rows: the base model
  }
  SeqStats st = pack_sequences(fb, o, stride, block_size);
  for (int32_t j = 0; j < pad; ++j) {  // padding: one sequence per row, no keys
    h[o.qs + size_t(S0 + j)] = T0 + j;
    h[o.kv + size_t(S0 + j)] = 0;
  }
  h[o.qs + size_t(S0 + pad)] = T;
  if (pad > 0) st.max_q = std::max(st.max_q, 1);
  st.singles += pad;
  return st;
}

CudaStepIo::SeqStats CudaStepIo::pack_verify_sequences(const ForwardBatch& fb, const Layout& o,
                                                       int32_t stride, int32_t block_size,
                                                       int32_t rps, int32_t num_seqs) {
  int32_t* h = meta_host_;
  row_map_.assign(size_t(fb.num_tokens()), -1);
  SeqStats st;
  st.max_q = rps;
  int32_t next_row = 0;
  for (int32_t i = 0; i < num_seqs; ++i) {
    const int32_t base = i * rps;
    h[o.qs + size_t(i)] = base;
    if (i >= int32_t(fb.seqs.size())) {  // a padding sequence: no keys, rows at position 0
      h[o.kv + size_t(i)] = 0;
      std::fill(h + o.ids + base, h + o.ids + base + rps, 0);
      std::fill(h + o.pos + base, h + o.pos + base + rps, 0);
      std::fill(h + o.slot + base, h + o.slot + base + rps, -1);
      if (lora_on_) std::fill(h + o.lora + base, h + o.lora + base + rps, -1);
      continue;
    }
    const SeqBatchInfo& sq = fb.seqs[size_t(i)];
    INFERD_CHECK(sq.q_len >= 1 && sq.q_len <= rps && sq.kv_len >= sq.q_len &&
                     int64_t(sq.num_blocks) * block_size >= sq.kv_len && sq.q_start == next_row,
                 "verification seq {}: rows [{}, +{}) (expected start {}, at most {} rows), "
                 "kv_len {}, {} blocks",
                 i, sq.q_start, sq.q_len, next_row, rps, sq.kv_len, sq.num_blocks);
    INFERD_CHECK(
        sq.block_table_offset >= 0 &&
            size_t(sq.block_table_offset) + size_t(sq.num_blocks) <= fb.block_tables.size(),
        "seq {}: block table [{}, +{}) outside {}", i, sq.block_table_offset, sq.num_blocks,
        fb.block_tables.size());
    next_row += sq.q_len;
    h[o.kv + size_t(i)] = sq.kv_len;
    st.max_kv = std::max(st.max_kv, sq.kv_len);
    const int32_t* bt = fb.block_tables.data() + sq.block_table_offset;
    std::copy(bt, bt + sq.num_blocks, h + o.bt + size_t(i) * size_t(stride));
    int32_t last_pos = 0;
    for (int32_t j = 0; j < rps; ++j) {
      const size_t dst = size_t(base + j);
      if (j < sq.q_len) {
        const int32_t row = sq.q_start + j;
        const int32_t pos = fb.positions[size_t(row)];
        INFERD_CHECK(pos >= 0 && pos < sq.kv_len, "position {} outside kv_len {}", pos, sq.kv_len);
        h[o.ids + dst] = fb.token_ids[size_t(row)];
        h[o.pos + dst] = pos;
        h[o.slot + dst] = bt[pos / block_size] * block_size + pos % block_size;
        if (lora_on_) h[o.lora + dst] = lora_rows_[size_t(row)];
        row_map_[size_t(row)] = int32_t(dst);
        last_pos = pos;
      } else {  // a padding row: the last position again (sees only real keys), writes none
        h[o.ids + dst] = 0;
        h[o.pos + dst] = last_pos;
        h[o.slot + dst] = -1;
        if (lora_on_) h[o.lora + dst] = -1;
      }
    }
  }
  INFERD_CHECK(next_row == fb.num_tokens(), "sequences cover {} rows of {}", next_row,
               fb.num_tokens());
  h[o.qs + size_t(num_seqs)] = num_seqs * rps;
  return st;
}

void CudaStepIo::pack_sampling(const SamplingBatch* sampling, const Layout& o, int32_t R0,
                               int32_t R, size_t E) {
  int32_t* h = meta_host_;
  auto* rows = reinterpret_cast<SamplingRow*>(h + o.samp);
  for (int32_t r = 0; r < R; ++r) {
    rows[r] = sampling && r < R0 ? sampling->rows[size_t(r)] : SamplingRow{};
    if (sampling && r < R0) {
      const SamplingRow& sr = rows[r];
      INFERD_CHECK(sr.edit_begin >= 0 && sr.edit_count >= 0 &&
                       size_t(sr.edit_begin) + size_t(sr.edit_count) <= E,
                   "sampling row {}: edits [{}, +{}) outside {}", r, sr.edit_begin, sr.edit_count,
                   E);
      INFERD_CHECK(sr.mask_row < 0 || sr.mask_row < sampling->num_masks(),
                   "sampling row {}: bitmask {} of {}", r, sr.mask_row, sampling->num_masks());
      INFERD_CHECK(sr.num_logprobs <= capacity_.max_top_logprobs,
                   "sampling row {} asks for {} top logprobs; this backend was sized for {}", r,
                   sr.num_logprobs, capacity_.max_top_logprobs);
    }
  }
  if (E > 0) std::memcpy(h + o.edits, sampling->edits.data(), E * sizeof(LogitEdit));
}

void CudaStepIo::upload_masks(const SamplingBatch& sampling) {
  if (late_mask_words_ == 0) return;
  INFERD_CHECK(sampling.fill_masks, "late masks announced by prepare_batch but no fill_masks");
  // The host builds the masks now, while the device runs the work queued before; the copy
  // follows that work on the stream.
  sampling.fill_masks(reinterpret_cast<uint32_t*>(meta_host_ + late_mask_offset_));
  CU_CHECK(cudaMemcpyAsync(meta_dev_ + late_mask_offset_, meta_host_ + late_mask_offset_,
                           late_mask_words_ * 4, cudaMemcpyHostToDevice, ctx_.stream()));
  CU_CHECK(cudaEventRecord(meta_ev_, ctx_.stream()));
  late_mask_offset_ = late_mask_words_ = 0;
}

void CudaStepIo::sample(const Tensor& logits, const DeviceBatch& b, int32_t row0) {
  INFERD_CHECK(results_dev_.defined(), "sample: reserve() was not called");
  check_dtype(logits, DType::kF32, "sample logits");
  const Mat m = as_matrix(logits, "sample logits");
  INFERD_CHECK(row0 >= 0 && row0 + m.rows <= b.num_logit_rows && m.rows <= rows_cap_,
               "sample rows [{}, +{}) of {}", row0, m.rows, b.num_logit_rows);
  INFERD_CHECK(b.sampling_rows != nullptr && b.meta != nullptr, "sample: no sampling rows");
  cuda::SamplerParams p;
  p.logits = logits.data_as<float>();
  p.ld = m.ld;
  p.vocab = int32_t(m.cols);
  p.num_rows = int32_t(m.rows);
  p.rows = b.sampling_rows + row0;
  p.header = b.header;
  p.meta = b.meta;
  p.tokens = reinterpret_cast<int32_t*>(results_dev_.data()) + row0;
  p.records =
      static_cast<char*>(results_dev_.data()) + tokens_bytes_ + size_t(row0) * record_bytes_;
  p.max_top = capacity_.max_top_logprobs;
  CU_CHECK(cuda::launch_sampler(p, ctx_.stream()));
}

void CudaStepIo::finish_samples(const DeviceBatch& b, const SamplingBatch& sampling,
                                std::span<SampledToken> out) {
  const size_t R = out.size();
  INFERD_CHECK(R <= size_t(b.num_logit_rows) && R == sampling.rows.size(),
               "finish_samples: {} outputs, {} sampling rows, {} logit rows", R,
               sampling.rows.size(), b.num_logit_rows);
  bool any_lp = false;
  for (const SamplingRow& r : sampling.rows) any_lp |= r.num_logprobs >= 0;
  const size_t bytes = any_lp ? tokens_bytes_ + R * record_bytes_ : R * 4;
  if (bytes > 0) {
    CU_CHECK(cudaMemcpyAsync(results_host_, results_dev_.data(), bytes, cudaMemcpyDeviceToHost,
                             ctx_.stream()));
  }
  CU_CHECK(cudaEventRecord(step_end_[step_idx_], ctx_.stream()));
  CU_CHECK(cudaEventSynchronize(step_end_[step_idx_]));
  account_step();
  const auto* tokens = static_cast<const int32_t*>(results_host_);
  for (size_t i = 0; i < R; ++i) {
    SampledToken& o = out[i];
    o.token_id = tokens[i];
    o.has_logprobs = sampling.rows[i].num_logprobs >= 0;
    if (!o.has_logprobs) continue;
    const char* rec = static_cast<const char*>(results_host_) + tokens_bytes_ + i * record_bytes_;
    cuda::LogprobRecordHead head;
    std::memcpy(&head, rec, sizeof(head));
    SampleLogprobs& lp = o.logprobs;
    lp.token_id = o.token_id;
    lp.logprob = head.logprob;
    lp.rank = head.rank;
    lp.top.resize(size_t(std::max(0, head.num_top)));
    const char* ids = rec + sizeof(head);
    const char* lps = ids + 4 * size_t(capacity_.max_top_logprobs);
    for (size_t k = 0; k < lp.top.size(); ++k) {
      std::memcpy(&lp.top[k].token_id, ids + 4 * k, 4);
      std::memcpy(&lp.top[k].logprob, lps + 4 * k, 4);
    }
  }
}

void CudaStepIo::advance_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t round) {
  INFERD_CHECK(b.meta == b_.meta && b.token_ids == b_.token_ids,
               "advance_decode_chain: not the batch prepare_batch returned last");
  INFERD_CHECK(round >= 1 && round < kMaxChainRounds && num_seqs >= 1 &&
                   num_seqs <= b.num_real_rows && b.num_tokens == b.num_seqs &&
                   b.num_logit_rows == b.num_tokens && num_seqs <= rows_cap_,
               "advance_decode_chain: round {} of {} sequences in a batch of {} rows ({} real)",
               round, num_seqs, b.num_tokens, b.num_real_rows);
  // The batch's metadata is ours (meta_dev_): the advance rewrites it in place, behind the round
  // just queued, for the graph replay that follows.
  auto mut = [&](const int32_t* p) { return meta_dev_ + (p - b.meta); };
  CU_CHECK(cuda::launch_advance_decode_chain(
      reinterpret_cast<const int32_t*>(results_dev_.data()),
      chain_dev_.data_as<int32_t>() + size_t(round - 1) * size_t(num_seqs), mut(b.token_ids),
      mut(b.positions), mut(b.slot_mapping), mut(b.seq_kv_len), b.block_tables,
      b.max_blocks_per_seq, block_size_, num_seqs, ctx_.stream()));
}

void CudaStepIo::finish_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t rounds,
                                     std::span<int32_t> out) {
  INFERD_CHECK(rounds >= 0 && rounds <= kMaxChainRounds && num_seqs >= 1 &&
                   num_seqs <= b.num_real_rows && out.size() == size_t(rounds) * size_t(num_seqs),
               "finish_decode_chain: {} rounds of {} sequences into {} outputs", rounds, num_seqs,
               out.size());
  const size_t n = out.size();
  if (rounds > 0) {  // the last round's argmaxes after the others, then all of them home
    CU_CHECK(cudaMemcpyAsync(chain_dev_.data_as<int32_t>() + size_t(rounds - 1) * size_t(num_seqs),
                             results_dev_.data(), size_t(num_seqs) * 4, cudaMemcpyDeviceToDevice,
                             ctx_.stream()));
    CU_CHECK(cudaMemcpyAsync(chain_host_, chain_dev_.data(), n * 4, cudaMemcpyDeviceToHost,
                             ctx_.stream()));
  }
  CU_CHECK(cudaEventRecord(step_end_[step_idx_], ctx_.stream()));
  CU_CHECK(cudaEventSynchronize(step_end_[step_idx_]));
  account_step();
  std::copy(chain_host_, chain_host_ + n, out.begin());
}

void CudaStepIo::copy_to_host_f32(const Tensor& x, float* dst) {
  if (x.device() == Device::kCPU) {
    INFERD_CHECK(x.is_contiguous(), "copy_to_host_f32 of a strided host tensor");
    convert(x.data(), x.dtype(), dst, DType::kF32, x.numel());
    return;
  }
  INFERD_CHECK(is_float(x.dtype()), "copy_to_host_f32 of dtype {}", dtype_name(x.dtype()));
  const Mat m = as_matrix(x, "copy_to_host_f32");
  const size_t es = dtype_size(x.dtype());
  const size_t n = size_t(m.rows) * size_t(m.cols);
  if (n == 0) return;
  void* host = dst;
  if (x.dtype() != DType::kF32) {
    if (down_bytes_ < n * es) {
      ctx_.synchronize();
      if (down_host_) CU_CHECK(cudaFreeHost(down_host_));
      down_host_ = nullptr;
      down_bytes_ = 0;
      CU_CHECK(cudaHostAlloc(&down_host_, n * es, cudaHostAllocDefault));
      down_bytes_ = n * es;
    }
    host = down_host_;
  }
  if (m.rows == 1 || m.ld == m.cols) {
    CU_CHECK(cudaMemcpyAsync(host, x.data(), n * es, cudaMemcpyDeviceToHost, ctx_.stream()));
  } else {
    CU_CHECK(cudaMemcpy2DAsync(host, size_t(m.cols) * es, x.data(), size_t(m.ld) * es,
                               size_t(m.cols) * es, size_t(m.rows), cudaMemcpyDeviceToHost,
                               ctx_.stream()));
  }
  ctx_.synchronize();
  if (host != dst) convert(host, x.dtype(), dst, DType::kF32, int64_t(n));
}

void CudaStepIo::reset_step_timing() {
  timing_ = StepTiming{};
  have_prev_step_ = false;
  step_open_ = false;
}

void CudaStepIo::account_step() {
  if (!step_open_) return;
  step_open_ = false;
  float busy = 0, idle = 0;
  CU_CHECK(cudaEventElapsedTime(&busy, step_start_[step_idx_], step_end_[step_idx_]));
  timing_.busy_ms += busy;
  if (have_prev_step_) {
    CU_CHECK(cudaEventElapsedTime(&idle, step_end_[step_idx_ ^ 1], step_start_[step_idx_]));
    timing_.idle_ms += idle;
  }
  ++timing_.steps;
  have_prev_step_ = true;
  step_idx_ ^= 1;
}

void CudaStepIo::grow_metadata(size_t ints) {
  graphs_.drop();  // they point into the old buffer
  if (meta_host_ || meta_dev_) ctx_.synchronize();
  if (meta_host_) CU_CHECK(cudaFreeHost(meta_host_));
  if (meta_dev_) CU_CHECK(cudaFree(meta_dev_));
  meta_host_ = nullptr;
  meta_dev_ = nullptr;
  meta_capacity_ = 0;
  CU_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&meta_host_), ints * 4, cudaHostAllocDefault));
  meta_dev_ = static_cast<int32_t*>(ctx_.alloc_raw(ints * 4));
  meta_capacity_ = ints;
}

}  // namespace inferd::cuda_impl
