// The per-step traffic of the CUDA backend. prepare_batch packs the metadata (token ids,
// positions, slots, block tables, logit rows), the sampling rows, the logit edits and the grammar
// masks into one pinned buffer and makes one host-to-device copy (late masks: a second copy from
// upload_masks, after the host built them while the forward ran); the sampler writes tokens and
// logprob records into one device buffer that finish_samples copies back once, then waits. A
// header at the start of the metadata holds what graph-replayed kernels must read on the device
// (the block-table stride, the edits and masks offsets). Device events time each step (busy and
// idle). Nothing here allocates per step once reserve() sized the buffers.
#pragma once

#include <span>
#include <vector>

#include "backend/backend_types.h"
#include "backend/cuda/cuda_common.h"
#include "backend/cuda/cuda_graphs.h"
#include "backend/cuda/kernels.h"
#include "backend/step_timing.h"

namespace inferd::cuda_impl {

class CudaStepIo {
 public:
  // `graphs` are dropped when the metadata buffer grows (they point into it).
  CudaStepIo(CudaContext& ctx, CudaGraphs& graphs, size_t metadata_bytes);
  ~CudaStepIo();
  CudaStepIo(const CudaStepIo&) = delete;
  CudaStepIo& operator=(const CudaStepIo&) = delete;

  void reserve(const StepCapacity& c);
  const DeviceBatch& prepare_batch(const ForwardBatch& fb, int32_t block_size,
                                   const SamplingBatch* sampling, int32_t pad_to,
                                   int32_t rows_per_seq = 0);
  void upload_masks(const SamplingBatch& sampling);
  // The next prepare_batch's per-row LoRA slots (DeviceBatch::lora_slots; issue 29).
  void set_lora_rows(std::span<const int32_t> slots);
  void sample(const Tensor& logits, const DeviceBatch& b, int32_t row0);
  void finish_samples(const DeviceBatch& b, const SamplingBatch& sampling,
                      std::span<SampledToken> out);
  // Greedy decode chains (DeviceRuntime::advance_decode_chain / finish_decode_chain) over the
  // batch prepare_batch returned last; at most kMaxChainRounds rounds.
  static constexpr int32_t kMaxChainRounds = 16;
  void advance_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t round);
  void finish_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t rounds,
                           std::span<int32_t> out);
  void copy_to_host_f32(const Tensor& x, float* dst);
  StepTiming step_timing() const { return timing_; }
  void reset_step_timing();

  // The host copy of the token ids of `b` when it is the batch prepare_batch returned last (the
  // embedding checks ids on the host); null otherwise.
  const int32_t* host_token_ids(const DeviceBatch& b) const {
    return b.token_ids == b_.token_ids ? host_ids_ : nullptr;
  }
  int32_t block_size() const { return block_size_; }

 private:
  // Int offsets of the metadata segments (each 128-byte aligned): header, token ids, positions,
  // slots, q starts, kv lengths, logit rows, sampling rows, block tables, draft distributions
  // (fp32, SamplingBatch::draft_probs), edits, masks. Everything from the block tables on sits at
  // offsets that depend on more than (T, S, R), so the kernels a graph records read only what
  // precedes them, and the block-table stride and the later offsets are in the header.
  struct Layout {
    size_t ids, pos, slot, lora, ltiles, qs, kv, rows, samp, bt, drafts, edits, masks, total;
  };
  static constexpr size_t kHeaderIntsPadded = 32;
  static_assert(cuda::kHeaderInts <= int(kHeaderIntsPadded));
  static Layout layout_ints(int32_t T, int32_t S, int32_t R, int32_t stride, size_t draft_floats,
                            size_t edits, size_t mask_words, bool lora);
  // Fills the sequences' part of the metadata (q starts, kv lengths, block tables, slots);
  // returns the most new tokens of a sequence, the longest context and the one-token sequences.
  struct SeqStats {
    int32_t max_q = 0, max_kv = 0, singles = 0;
  };
  SeqStats pack_sequences(const ForwardBatch& fb, const Layout& o, int32_t stride,
                          int32_t block_size);
  // Token ids, positions, slots and LoRA rows of fb as they are, then pack_sequences, then `pad`
  // padding rows (prepare_batch's pad_to: one sequence each, no keys).
  SeqStats pack_padded_rows(const ForwardBatch& fb, const Layout& o, int32_t stride,
                            int32_t block_size, int32_t pad);
  // The same for a verification graph's shape (prepare_batch's rows_per_seq): `num_seqs`
  // sequences of `rps` rows each, token ids, positions and LoRA rows included; row_map_ gets the
  // new row of each of fb's rows.
  SeqStats pack_verify_sequences(const ForwardBatch& fb, const Layout& o, int32_t stride,
                                 int32_t block_size, int32_t rps, int32_t num_seqs);
  void pack_sampling(const SamplingBatch* sampling, const Layout& o, int32_t R0, int32_t R,
                     size_t E);
  void grow_metadata(size_t ints);
  void account_step();

  CudaContext& ctx_;
  CudaGraphs& graphs_;
  int32_t* meta_host_ = nullptr;  // pinned
  int32_t* meta_dev_ = nullptr;
  size_t meta_capacity_ = 0;  // int32 elements
  cudaEvent_t meta_ev_ = nullptr;
  size_t late_mask_offset_ = 0, late_mask_words_ = 0;  // masks upload_masks() still has to copy
  const int32_t* host_ids_ = nullptr;
  std::vector<int32_t> lora_rows_;   // set_lora_rows (capacity reserved: no allocation per step)
  std::vector<int64_t> lora_order_;  // build_lora_tiles' scratch (reserved likewise)
  std::vector<int32_t> row_map_;     // pack_verify_sequences (capacity reserved)
  bool lora_on_ = false;
  DeviceBatch b_;
  int32_t block_size_ = 0;

  void* down_host_ = nullptr;  // pinned, for bf16 -> f32 downloads
  size_t down_bytes_ = 0;

  StepCapacity capacity_;
  int32_t rows_cap_ = 0;
  size_t record_bytes_ = 0, tokens_bytes_ = 0, results_bytes_ = 0;
  Tensor results_dev_;             // [tokens | logprob records] of the step
  void* results_host_ = nullptr;   // pinned twin
  Tensor chain_dev_;               // [kMaxChainRounds, rows] int32: a chain's argmaxes by round
  int32_t* chain_host_ = nullptr;  // pinned twin
  cudaEvent_t step_start_[2] = {nullptr, nullptr}, step_end_[2] = {nullptr, nullptr};
  int step_idx_ = 0;
  bool step_open_ = false, have_prev_step_ = false;
  StepTiming timing_;
};

}  // namespace inferd::cuda_impl
