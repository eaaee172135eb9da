// The backend interface: the kernels the decoder's forward pass is written against, once, for
// every device. Tensors passed in live on the backend's device. Activations are fp32 on the CPU
// backend and bf16 on CUDA; the backend says which through activation_dtype().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/forward_batch.h"
#include "backend/sampling.h"
#include "backend/step_timing.h"
#include "core/tensor.h"

namespace inferd {

// A linear layer y = x W^T (+ b). W may be stored as several row blocks ("parts": q/k/v or
// gate/up) that together form [out_features, in_features]; the CUDA backend concatenates them at
// load, the CPU backend reads them in place from the mmap'd file.
struct Linear {
  std::vector<Tensor> parts;  // each [rows_i, in_features], on the backend's device
  Tensor bias;                // [out_features] fp32, or undefined
  int64_t in_features = 0;
  int64_t out_features = 0;
  // FP8 weights (parts[0] is float8 e4m3fn): w[n, k] = f8(parts[0][n, k]) * weight_scale[n]
  // (fp32 [out_features] on the device); the input rows are quantized to FP8 before the GEMM,
  // per row (dynamic) or with act_scale when it is > 0 (a checkpoint's static input_scale).
  Tensor weight_scale;
  float act_scale = 0.0f;
};

struct RopeTable {
  Tensor inv_freq;  // [head_dim / 2] fp32 on the device
  int64_t head_dim = 0;
  float attention_scaling = 1.0f;  // cos and sin are multiplied by it (yarn, longrope)
};

// Batch metadata prepared on the device once per step (see model/forward_batch.h).
struct DeviceBatch {
  int32_t num_tokens = 0;
  int32_t num_seqs = 0;
  int32_t num_logit_rows = 0;
  int32_t max_q_len = 0;
  int32_t max_kv_len = 0;
  const int32_t* token_ids = nullptr;     // [T]
  const int32_t* positions = nullptr;     // [T]
  const int32_t* slot_mapping = nullptr;  // [T] KV slot (block * block_size + offset)
  const int32_t* seq_q_start = nullptr;   // [S + 1] (prefix sums of q_len)
  const int32_t* seq_kv_len = nullptr;    // [S]
  const int32_t* block_tables = nullptr;  // [S, max_blocks_per_seq] padded
  int32_t max_blocks_per_seq = 0;
  const int32_t* logit_rows = nullptr;  // [R]
  // Device backends: the metadata header kernels read on the device (block-table stride, edits
  // offset), the base of the metadata buffer, and the sampling rows [R] when they were uploaded.
  const int32_t* header = nullptr;
  int32_t* meta = nullptr;
  const SamplingRow* sampling_rows = nullptr;
  int32_t num_real_rows = 0;          // logit rows before padding (R counts the padding rows too)
  int32_t num_single_token_seqs = 0;  // sequences with exactly one new token (padding included)
};

// The largest step the model will run, so a device backend can size its per-step buffers once at
// start-up (nothing is allocated per step).
struct StepCapacity {
  int32_t max_tokens = 0;          // rows per step (also sequences and logit rows per step)
  int32_t max_blocks_per_seq = 0;  // block-table row length
  int32_t max_top_logprobs = 0;    // SamplingRow::num_logprobs at most
  int64_t max_edits = 0;           // LogitEdit entries per step (more grows the buffer once)
  int64_t max_mask_words = 0;      // bitmask words per step (structured outputs; rows x words)
};

// One layer's paged KV cache: [num_blocks, block_size, num_kv_heads, head_dim] each.
struct KvLayer {
  Tensor k, v;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  virtual DType activation_dtype() const = 0;
  // Device memory (bytes) free and in total, for sizing the KV pool from
  // --gpu-memory-utilization; false where the backend has no such budget (the CPU).
  virtual bool memory_info(int64_t* free_bytes, int64_t* total_bytes) const {
    (void)free_bytes;
    (void)total_bytes;
    return false;
  }

  // ---- placement (start-up only) --------------------------------------------------------
  virtual Tensor alloc(DType dtype, std::span<const int64_t> shape) = 0;
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape) {
    return alloc(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  // Takes host tensors (mmap views or owned) and returns them placed for this backend.
  virtual Linear make_linear(std::vector<Tensor> host_parts, const Tensor& host_bias) = 0;
  // Norm weights, embeddings: any float dtype in, backend's preferred storage out.
  virtual Tensor make_param(const Tensor& host) = 0;
  // FP8 linears (a backend that computes them in FP8: supports_fp8() true). make_linear_fp8:
  // host float8 parts [rows_i, in] with their fp32 per-output-channel scales [rows_i];
  // quantize_linear_fp8: a bf16 linear made by make_linear, rounded to FP8 per output channel
  // on the device (--quantization fp8).
  virtual bool supports_fp8() const { return false; }
  virtual Linear make_linear_fp8(std::vector<Tensor> parts, std::vector<Tensor> scales,
                                 const Tensor& bias, float act_scale);
  virtual Linear quantize_linear_fp8(const Linear& l);
  // A new tensor on this backend's device (host memory for the CPU) filled with the seeded values
  // of backend/random_fill.h; make_param and make_linear accept it as it is. --load-format dummy
  // builds its weights with this, so an 8B model needs no host copy and no upload.
  virtual Tensor random_tensor(DType dtype, std::span<const int64_t> shape, uint64_t seed,
                               float stddev, float fill) = 0;

  // Sizes the per-step buffers for the largest step (device backends; start-up only).
  virtual void reserve(const StepCapacity& capacity) { (void)capacity; }

  // ---- per-step batch ---------------------------------------------------------------------
  // Copies the metadata (and the sampling rows and edits when given) to the device in one copy.
  // Valid until the next prepare_batch. pad_to > num_tokens (decode batches of a device backend)
  // appends padding rows, each its own sequence with no keys, its own logit row and a greedy
  // sampling row, so the step has exactly pad_to rows, sequences and logit rows.
  virtual const DeviceBatch& prepare_batch(const ForwardBatch& batch, int32_t block_size,
                                           const SamplingBatch* sampling = nullptr,
                                           int32_t pad_to = 0) = 0;

  // ---- kernels --------------------------------------------------------------------------
  // out[t] = table[ids[t]] * scale (Gemma scales its embeddings; 1 elsewhere)
  virtual void embedding(const Tensor& table, const DeviceBatch& b, float scale, Tensor out) = 0;
  // out = rms_norm(x) * w
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor out) = 0;
  // residual += x; out = rms_norm(residual) * w
  virtual void add_rms_norm(Tensor residual, const Tensor& x, const Tensor& w, float eps,
                            Tensor out) = 0;
  // In place: each head_dim-sized vector of x ([T, heads * head_dim]) normalised by w [head_dim].
  virtual void head_rms_norm(Tensor x, int64_t head_dim, const Tensor& w, float eps) = 0;
  // out [T, out_features] = x [T, in_features] W^T + b
  virtual void linear(const Tensor& x, const Linear& w, Tensor out) = 0;
  // Rotary embedding in place on the q and k parts of qkv [T, (nh + 2 nkv) * hd] (rotate-half).
  virtual void rope(Tensor qkv, int64_t num_heads, int64_t num_kv_heads, const RopeTable& rope,
                    const DeviceBatch& b) = 0;
  // out [T, F] = silu(gate_up[:, :F]) * gate_up[:, F:]
  virtual void silu_mul(const Tensor& gate_up, Tensor out) = 0;
  // out [T, F] = gelu_tanh(gate_up[:, :F]) * gate_up[:, F:], GELU with the tanh approximation
  // (PyTorch's gelu(approximate="tanh")).
  virtual void gelu_tanh_mul(const Tensor& gate_up, Tensor out) = 0;
  // In place on fp32 logits [R, V]: x = tanh(x / cap) * cap (Gemma's final soft-capping).
  virtual void softcap(Tensor logits, float cap) = 0;
  // Writes the k and v parts of qkv to the cache at the batch's slots.
  virtual void write_kv(const Tensor& qkv, int64_t num_heads, int64_t num_kv_heads, KvLayer& kv,
                        const DeviceBatch& b) = 0;
  // rope() on q and k, then k and v written to the cache; a device backend fuses the two (the k
  // part of qkv may then stay unrotated: only the cache is read afterwards).
  virtual void rope_write_kv(Tensor qkv, int64_t num_heads, int64_t num_kv_heads,
                             const RopeTable& rope, KvLayer& kv, const DeviceBatch& b) {
    this->rope(qkv, num_heads, num_kv_heads, rope, b);
    write_kv(qkv, num_heads, num_kv_heads, kv, b);
  }
  // Causal paged attention: out [T, nh * hd] from the q part of qkv and the cache.
  virtual void attention(const Tensor& qkv, int64_t num_heads, int64_t num_kv_heads,
                         const KvLayer& kv, float scale, int64_t sliding_window,
                         const DeviceBatch& b, Tensor out) = 0;
  // out [R, H] = x[logit_rows]
  virtual void gather_rows(const Tensor& x, const DeviceBatch& b, Tensor out) = 0;
  // Copies a device tensor to host memory (fp32 conversion if needed) and waits for it.
  virtual void copy_to_host_f32(const Tensor& x, float* dst) = 0;

  // ---- sampling on the device (backends where samples_on_device()) -------------------------
  virtual bool samples_on_device() const { return false; }
  // Samples logit rows [row0, row0 + logits.size(0)) of the batch (sampling rows uploaded by
  // prepare_batch) from fp32 logits on the device; results stay on the device.
  virtual void sample(const Tensor& logits, const DeviceBatch& b, int32_t row0);
  // Structured outputs produced late (SamplingBatch::fill_masks): calls it into the step's pinned
  // metadata buffer and copies the masks to the device behind the work already queued, so the
  // host builds them while the device runs the forward. Call before sample(); no-op otherwise.
  virtual void upload_masks(const DeviceBatch& b, const SamplingBatch& sampling) {
    (void)b;
    (void)sampling;
  }
  // One copy of the step's results to the host, then waits: out[i] for the first out.size()
  // logit rows (padding rows are dropped).
  virtual void finish_samples(const DeviceBatch& b, const SamplingBatch& sampling,
                              std::span<SampledToken> out);
  virtual StepTiming step_timing() const { return {}; }
  virtual void reset_step_timing() {}

  // While on, a device backend times its GEMM candidates for every new shape and keeps the fastest
  // (the model turns it on while it warms up the shapes that graphs replay); off, it takes the
  // library's first choice. Timing synchronises, so it is never on while serving.
  virtual void set_gemm_tuning(bool on) { (void)on; }
  // Bytes of device memory the backend has allocated so far (0 where there is no device).
  virtual int64_t device_bytes_allocated() const { return 0; }

  // ---- CUDA graphs (backends where supports_graphs()) --------------------------------------
  // Work issued between begin and end is recorded, not run, and replayed by replay_graph(key).
  // Kernels recorded this way must take everything that changes per step from device memory.
  virtual bool supports_graphs() const { return false; }
  virtual void begin_graph_capture();
  virtual void end_graph_capture(int32_t key);
  // False when no graph was captured under `key` (or the captured ones were dropped because the
  // metadata buffer had to grow).
  virtual bool replay_graph(int32_t key) {
    (void)key;
    return false;
  }
};

std::unique_ptr<Backend> make_cpu_backend(int num_threads);

}  // namespace inferd
