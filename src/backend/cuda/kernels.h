// Launchers for the CUDA backend's own kernels. Plain C++ (no Tensor, no fmt) so that both nvcc
// (kernels.cu) and the host compiler (cuda_backend.cc) can include it. Every pointer is a device
// pointer; "bf16" buffers are passed as void*; leading dimensions (ld*) count elements. Each
// launcher returns cudaGetLastError() after its launch (cudaSuccess when there was nothing to do).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace inferd::cuda {

// out[t, :] = table[ids[t], :] * scale (bf16; scale 1 copies). Ids outside [0, vocab) give a
// zero row (the host checks).
cudaError_t launch_embedding(const void* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                             int32_t num_tokens, float scale, void* out, int64_t ld_out,
                             cudaStream_t stream);

// out = rms_norm(x) * w; x, out bf16 [T, H]; w fp32 [H]; fp32 math.
cudaError_t launch_rms_norm(const void* x, int64_t ld_x, const float* w, float eps,
                            int32_t num_tokens, int64_t hidden, void* out, int64_t ld_out,
                            cudaStream_t stream);

// residual += x * x_scale (fp32 math, rounded to bf16; x_scale 1 gives exactly residual + x);
// out = rms_norm(residual) * w.
cudaError_t launch_add_rms_norm(void* residual, int64_t ld_res, const void* x, int64_t ld_x,
                                float x_scale, const float* w, float eps, int32_t num_tokens,
                                int64_t hidden, void* out, int64_t ld_out, cudaStream_t stream);

// residual += rms_norm(x) * w: the norm's output is rounded to bf16 before the add (as a bf16
// model computes norm(x) and then residual + norm(x)); OLMo 2's post-sublayer norms.
cudaError_t launch_rms_norm_add(const void* x, int64_t ld_x, const float* w, float eps,
                                int32_t num_tokens, int64_t hidden, void* residual, int64_t ld_res,
                                cudaStream_t stream);

// In place: each head_dim-wide vector of x [T, heads * head_dim] (row stride ld_x) normalised by
// w [head_dim] (fp32).
cudaError_t launch_head_rms_norm(void* x, int64_t ld_x, int32_t num_tokens, int64_t heads,
                                 int64_t head_dim, const float* w, float eps, cudaStream_t stream);

// out[t, n] += bias[n]; out is fp32 when out_f32, else bf16.
cudaError_t launch_add_bias(void* out, int64_t ld_out, bool out_f32, const float* bias,
                            int32_t num_tokens, int64_t n, cudaStream_t stream);

// Rotate-half RoPE in place on the first num_rot_heads heads of each row of qkv (bf16):
// angle = float(positions[t]) * inv_freq[i] in fp32, i < head_dim / 2.
cudaError_t launch_rope(void* qkv, int64_t ld_qkv, int32_t num_tokens, int64_t num_rot_heads,
                        int64_t head_dim, const float* inv_freq, float attention_scaling,
                        const int32_t* positions, cudaStream_t stream);

// out [T, F] = silu(gate_up[:, :F]) * gate_up[:, F:] (bf16, fp32 math).
cudaError_t launch_silu_mul(const void* gate_up, int64_t ld_gate_up, int32_t num_tokens, int64_t f,
                            void* out, int64_t ld_out, cudaStream_t stream);
// The same with GELU (tanh approximation) for SiLU.
cudaError_t launch_gelu_tanh_mul(const void* gate_up, int64_t ld_gate_up, int32_t num_tokens,
                                 int64_t f, void* out, int64_t ld_out, cudaStream_t stream);

// In place on fp32 x [rows, cols] (row stride ld): x = tanh(x / cap) * cap.
cudaError_t launch_softcap(float* x, int64_t ld, int32_t rows, int64_t cols, float cap,
                           cudaStream_t stream);

// In place on fp32 x [rows, cols] (row stride ld): x = x / divisor (IEEE division).
cudaError_t launch_div_scalar(float* x, int64_t ld, int32_t rows, int64_t cols, float divisor,
                              cudaStream_t stream);

// A KV cache's element type: bf16, or (--kv-cache-dtype fp8) float8 e4m3 holding key / k_scale
// and value / v_scale (per tensor; KvLayer's scales).
struct KvCacheFormat {
  bool fp8 = false;
  float k_scale = 1.0f, v_scale = 1.0f;
};

// k_cache/v_cache [num_blocks, block_size, nkv, hd] (bf16 or fp8, `f`): slot slots[t] gets the k
// and v parts of row t of qkv. Negative slots are skipped.
cudaError_t launch_write_kv(const void* qkv, int64_t ld_qkv, int32_t num_tokens, int64_t num_heads,
                            int64_t num_kv_heads, int64_t head_dim, const int32_t* slots,
                            void* k_cache, void* v_cache, const KvCacheFormat& f,
                            cudaStream_t stream);

// RoPE on the q and k heads of qkv (q rotated in place) fused with the KV-cache write (rotated k,
// and v, to slot slots[t]; negative slots are skipped). The k part of qkv is left unrotated.
cudaError_t launch_rope_write_kv(void* qkv, int64_t ld_qkv, int32_t num_tokens, int64_t num_heads,
                                 int64_t num_kv_heads, int64_t head_dim, const float* inv_freq,
                                 float attention_scaling, const int32_t* positions,
                                 const int32_t* slots, void* k_cache, void* v_cache,
                                 const KvCacheFormat& f, cudaStream_t stream);

// The per-step metadata the host uploads starts with a small header that kernels read on the
// device, so that a CUDA graph captured for a batch size stays valid when these values change.
constexpr int kHeaderBlockTableStride = 0;  // ints per row of the block tables
constexpr int kHeaderEditsOffset = 1;       // int offset of the sampling edits from the header
constexpr int kHeaderMasksOffset = 2;       // int offset of the token bitmasks (structured outputs)
constexpr int kHeaderMaskWords = 3;         // words of one bitmask row
constexpr int kHeaderDraftsOffset = 4;      // int offset of the draft distributions (fp32 rows)
constexpr int kHeaderInts = 32;

// Causal paged attention over the cache (bf16 q/k/v/out, fp32 softmax); attention.cu.
struct AttentionParams {
  const void* qkv = nullptr;  // q heads start each row
  int64_t ld_qkv = 0;
  const void* k_cache = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim]
  const void* v_cache = nullptr;
  void* out = nullptr;  // [T, num_heads * head_dim]
  int64_t ld_out = 0;
  int32_t num_tokens = 0;
  int32_t num_seqs = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;  // a multiple of 8, at most kMaxAttentionHeadDim
  int32_t block_size = 0;
  const int32_t* header = nullptr;        // the metadata header (block-table stride)
  const int32_t* positions = nullptr;     // [T]
  const int32_t* seq_q_start = nullptr;   // [S + 1]
  const int32_t* seq_kv_len = nullptr;    // [S]; 0: a padding sequence (its rows get zeros)
  const int32_t* block_tables = nullptr;  // [S, header[kHeaderBlockTableStride]]
  float scale = 1.0f;
  int32_t sliding_window = 0;  // 0: none; else keys (pos - window, pos]
  int32_t num_splits = 1;      // attention_splits(); > 1 needs the partial buffers
  // Decode kernel: leave the rows of sequences with several new tokens alone (the prefill kernel
  // computes them).
  bool single_token_seqs_only = false;
  // Decode kernel: one block per (sequence, KV head, split) computing all the sequence's rows
  // (at most kMaxSeqBlockRows: speculative verification, short chunks) with one read of its keys;
  // num_splits from attention_splits(num_seqs, ...). Head dims 64, 128, 256 only.
  bool seq_blocks = false;
  float* partial_acc = nullptr;  // [T, num_heads, num_splits, head_dim]
  float* partial_m = nullptr;    // [T, num_heads, num_splits]
  float* partial_l = nullptr;
  // gpt-oss: fp32 [num_heads], one logit per head added to the softmax denominator; null: none.
  const float* sinks = nullptr;
  // The cache's element type: an FP8 cache's keys are decoded to bf16 exactly (e4m3 fits) and
  // k_scale folds into the score scale, v_scale into the output. Head dims 64, 128, 256 only.
  KvCacheFormat kv;
};
constexpr int32_t kMaxAttentionHeadDim = 256;
constexpr int32_t kMaxAttentionSplits = 32;
// Splits of the key range for a batch of `num_tokens` rows: enough blocks for about two per SM.
// Depends only on the row count (and the model), never on the context lengths.
int32_t attention_splits(int32_t num_tokens, int32_t num_kv_heads, int32_t num_sms);
// The most rows of one sequence a seq_blocks launch computes together.
constexpr int32_t kMaxSeqBlockRows = 8;
// Whether seq_blocks launches exist for this head dim (the tensor-core decode kernel's).
bool seq_block_attention_supported(int32_t head_dim);
// Partial-result rows (T * num_heads * num_splits) any launch of attention_splits() may need:
// splits from the rows (T * nkv < sms) or, seq_blocks, from the sequences (T <= kMaxSeqBlockRows
// * S, S * nkv < sms): T * nh * splits < kMaxSeqBlockRows * 3 * sms * group.
inline int64_t attention_partial_rows(int32_t num_heads, int32_t num_kv_heads, int32_t num_sms) {
  return kMaxSeqBlockRows *
         (3 * int64_t(num_sms) * (num_heads / num_kv_heads) + int64_t(num_heads));
}
// Decode / any-row kernel (attention.cu): one block per (row, KV head, split).
cudaError_t launch_attention(const AttentionParams& p, cudaStream_t stream);
// Tensor-core prefill kernel (prefill_attention.cu) for the sequences with more than one new
// token; max_q_len: the most new tokens of any sequence in the batch.
bool prefill_attention_supported(int32_t head_dim);
cudaError_t launch_prefill_attention(const AttentionParams& p, int32_t max_q_len,
                                     cudaStream_t stream);

// out[r, :] = x[rows[r], :], rows of `row_bytes` bytes (a multiple of 2).
cudaError_t launch_gather_rows(const void* x, int64_t x_stride_bytes, int64_t row_bytes,
                               const int32_t* rows, int32_t num_rows, void* out,
                               int64_t out_stride_bytes, cudaStream_t stream);

// A greedy decode chain's round (CudaStepIo::advance_decode_chain): for s < num_seqs, kept[s] =
// ids[s] = sampled[s]; pos[s] + 1, kv_len[s] = pos + 1 and slot[s] from row s of block_tables.
cudaError_t launch_advance_decode_chain(const int32_t* sampled, int32_t* kept, int32_t* ids,
                                        int32_t* pos, int32_t* slot, int32_t* kv_len,
                                        const int32_t* block_tables, int32_t stride,
                                        int32_t block_size, int32_t num_seqs, cudaStream_t stream);

// Seeded uniform random values with standard deviation `stddev` (or all `fill` when stddev is 0)
// into n contiguous elements: dtype_code 0 = fp32, 1 = bf16, 2 = f16. Element i depends only on
// (seed, i).
cudaError_t launch_fill_random(void* dst, int dtype_code, int64_t n, uint64_t seed, float stddev,
                               float fill, cudaStream_t stream);

// Test-only (--debug-inject-device-fault): one thread writes through a pointer into an unmapped
// page, which the device reports as cudaErrorIllegalAddress at the next synchronisation: a real
// sticky error (the CUDA context is unusable from then on).
cudaError_t launch_illegal_write(cudaStream_t stream);

}  // namespace inferd::cuda
