// The kernel ops a model's forward pass is written against, once, for every device (model/layers
// call these; the CPU backend is the reference for every CUDA op). Tensors passed in live on the
// backend's device. Activations are fp32 on the CPU backend and bf16 on CUDA
// (DeviceRuntime::activation_dtype).
#pragma once

#include <cstdint>
#include <utility>

#include "backend/backend_types.h"
#include "backend/moe_types.h"

namespace inferd {

class KernelOps {
 public:
  virtual ~KernelOps() = default;
  // out[t] = table[ids[t]] * scale (Gemma and Granite scale their embeddings; 1 elsewhere)
  virtual void embedding(const Tensor& table, const DeviceBatch& b, float scale, Tensor out) = 0;
  // The same from a table in a GGUF block type (DeviceRuntime::supports_ggml_embedding): rows
  // dequantized as they are gathered.
  virtual void embedding_ggml(const GgmlLinear::Part& table, const DeviceBatch& b, float scale,
                              Tensor out);
  // A vocabulary-parallel embedding (tensor parallelism): `table` holds rows [vocab_begin,
  // vocab_begin + table rows) of the vocabulary; out[t] = table[ids[t] - vocab_begin] * scale for
  // the ids inside, zeros for the rest (the sum over the ranks is the whole embedding).
  virtual void embedding_shard(const Tensor& table, int64_t vocab_begin, const DeviceBatch& b,
                               float scale, Tensor out);
  // out = rms_norm(x) * w (x and out may be the same tensor)
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor out) = 0;
  // residual += x * x_scale; out = rms_norm(residual) * w. x_scale is Granite's
  // residual_multiplier (1 elsewhere: then exactly residual += x).
  virtual void add_rms_norm(Tensor residual, const Tensor& x, float x_scale, const Tensor& w,
                            float eps, Tensor out) = 0;
  void add_rms_norm(Tensor residual, const Tensor& x, const Tensor& w, float eps, Tensor out) {
    add_rms_norm(std::move(residual), x, 1.0f, w, eps, std::move(out));
  }
  // residual += rms_norm(x) * w: a norm after a sublayer, then the residual add (OLMo 2).
  virtual void rms_norm_add(const Tensor& x, const Tensor& w, float eps, Tensor residual) = 0;
  // In place: each head_dim-sized vector of x ([T, heads * head_dim]) normalised by w [head_dim].
  virtual void head_rms_norm(Tensor x, int64_t head_dim, const Tensor& w, float eps) = 0;
  // out [T, out_features] = x [T, in_features] W^T + b
  virtual void linear(const Tensor& x, const Linear& w, Tensor out) = 0;
  // The same with an FP8 weight (backends whose DeviceRuntime::fp8_gemm_supported says so).
  virtual void linear_fp8(const Tensor& x, const Fp8Linear& w, Tensor out);
  // The same with a weight in GGUF block formats (backends whose
  // DeviceRuntime::supports_ggml(type) says so).
  virtual void linear_ggml(const Tensor& x, const GgmlLinear& w, Tensor out);
  // The same with an int4 weight (backends whose DeviceRuntime::supports_int4 says so).
  virtual void linear_int4(const Tensor& x, const Int4Linear& w, Tensor out);
  // LoRA (issue 29): out[t] += (x[t] A_s^T) B_s^T for each row t whose slot s =
  // b.lora_slots[t] >= 0 (rows of one slot grouped into segments); nothing when b.lora_slots is
  // null. x [T, in], out [T, out] as linear() takes them.
  virtual void lora_add(const Tensor& x, const LoraLinear& w, const DeviceBatch& b, Tensor out);
  // Optional, before the base linear whose output lora_add(x, w, b, out) then adds into: lets a
  // device backend start the shrink (it reads only x) beside the base GEMM. Each lora_begin is
  // followed by the lora_add of the same x and w before any other LoRA call. No-op by default.
  virtual void lora_begin(const Tensor& x, const LoraLinear& w, const DeviceBatch& b) {
    (void)x;
    (void)w;
    (void)b;
  }
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
  // In place on fp32 logits [R, V]: x = x / divisor (Granite's logits_scaling).
  virtual void div_scalar(Tensor logits, float divisor) = 0;
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
  // `sinks` (gpt-oss): fp32 [num_heads] on the device, one learned logit per head that joins each
  // row's softmax denominator (exp(sink - max) added to the sum; it has no value row); undefined:
  // none.
  virtual void attention(const Tensor& qkv, int64_t num_heads, int64_t num_kv_heads,
                         const KvLayer& kv, float scale, int64_t sliding_window,
                         const DeviceBatch& b, Tensor out, const Tensor& sinks) = 0;
  void attention(const Tensor& qkv, int64_t num_heads, int64_t num_kv_heads, const KvLayer& kv,
                 float scale, int64_t sliding_window, const DeviceBatch& b, Tensor out) {
    attention(qkv, num_heads, num_kv_heads, kv, scale, sliding_window, b, std::move(out), Tensor());
  }
  // out [R, H] = x[logit_rows]
  virtual void gather_rows(const Tensor& x, const DeviceBatch& b, Tensor out) = 0;
  // dst [T, C] = src [T, C], same dtype; either may be a strided view (a column slice): EAGLE-3's
  // auxiliary hidden states are copied out of the residual stream into one [T, 3H] buffer.
  virtual void copy_rows(const Tensor& src, Tensor dst) = 0;
  // ---- mixture of experts (issue 27; backends without them throw) ------------------------------
  // Each token's experts: topk_ids [T, k] int32 and topk_weights [T, k] fp32 from router logits
  // [T, E] (activation dtype), as `r` says (moe_types.h), highest weight first.
  virtual void moe_topk(const Tensor& router_logits, const MoeRouting& r, Tensor topk_ids,
                        Tensor topk_weights);
  // out [T, H] = sum_j topk_weights[t, j] * expert_{topk_ids[t, j]}(x[t]) for x [T, H]: tokens
  // grouped by expert, gate+up, activation, down, weighted combine. `scratch`: at least
  // T * moe_scratch_bytes_per_row(...) bytes of device memory (any dtype; viewed as bytes).
  // `expert_counts`, when defined ([E] int32, on the device), gets += the tokens routed to each
  // expert (the step profile's load histogram).
  virtual void moe_experts(const Tensor& x, const MoeExperts& w, const Tensor& topk_ids,
                           const Tensor& topk_weights, Tensor scratch, Tensor expert_counts,
                           Tensor out);
  // Samples logit rows [row0, row0 + logits.size(0)) of the batch (sampling rows uploaded by
  // prepare_batch) from fp32 logits on the device; results stay on the device until
  // DeviceRuntime::finish_samples. Backends where samples_on_device() only.
  virtual void sample(const Tensor& logits, const DeviceBatch& b, int32_t row0);
};

}  // namespace inferd
