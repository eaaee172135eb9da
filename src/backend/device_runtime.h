// The device runtime: what running a model on a device needs besides its kernels — memory (the
// allocation of buffers and the placement of weights), the per-step batch upload and the download
// of the sampled tokens, CUDA graphs, GEMM tuning and step timing. The model runner
// (src/runner/) drives it; model code uses it only while it loads (placement). A communicator for
// several devices joins it later (issue 33).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "backend/backend_types.h"
#include "backend/moe_types.h"
#include "backend/step_timing.h"

namespace inferd {

class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
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
  // Bytes of device memory the backend has allocated so far (0 where there is no device).
  virtual int64_t device_bytes_allocated() const { return 0; }

  // ---- device faults ---------------------------------------------------------------------------
  // Throws DeviceFault (core/error_types.h) when the device can run nothing more (a sticky CUDA
  // error); returns otherwise. Called after a step failed with another error, to tell a broken
  // device from a broken step. No-op where there is no device.
  virtual void check_device() {}
  // Test-only (--debug-inject-device-fault): makes the device fail as a real fault would and
  // throws the DeviceFault that results. CUDA launches a kernel that writes to an illegal address
  // (a sticky cudaErrorIllegalAddress); the CPU, which has no such error, throws the DeviceFault
  // itself.
  virtual void inject_device_fault();

  // ---- memory and weights (start-up only) ------------------------------------------------------
  virtual Tensor alloc(DType dtype, std::span<const int64_t> shape) = 0;
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape) {
    return alloc(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  // A new tensor on this backend's device (host memory for the CPU) filled with the seeded values
  // of backend/random_fill.h; make_param and make_linear accept it as it is. --load-format dummy
  // builds its weights with this, so an 8B model needs no host copy and no upload.
  virtual Tensor random_tensor(DType dtype, std::span<const int64_t> shape, uint64_t seed,
                               float stddev, float fill) = 0;
  // Norm weights, embeddings: any float dtype in, the backend's preferred storage out.
  virtual Tensor make_param(const Tensor& host) = 0;
  // A dense linear from host tensors (mmap views or owned) or tensors already on the device.
  virtual Linear make_linear(std::vector<Tensor> parts, const Tensor& bias) = 0;
  // FP8 linears, where the backend computes them in FP8 (supports_fp8): fp8_gemm_supported(out,
  // in) says whether a weight of that shape can be (quantization methods keep a dense weight
  // otherwise).
  // make_linear_fp8: host float8 parts [rows_i, in] with their fp32 per-output-channel scales
  // [rows_i]; quantize_linear_fp8: a dense linear placed by make_linear, rounded to FP8 per
  // output channel on the device (--quantization fp8).
  virtual bool supports_fp8() const { return false; }  // computes FP8 linears at all
  virtual bool fp8_gemm_supported(int64_t out_features, int64_t in_features) const {
    (void)out_features;
    (void)in_features;
    return false;
  }
  virtual Fp8Linear make_linear_fp8(std::vector<Tensor> parts, std::vector<Tensor> scales,
                                    const Tensor& bias, float act_scale);
  virtual Fp8Linear quantize_linear_fp8(const Linear& l);
  // GGUF block types (issue 35): supports_ggml(type) says whether linear_ggml computes weights of
  // that type where they are (else the GGUF method dequantizes them into a dense linear);
  // make_linear_ggml places host parts (views of the mapping or owned) as they are.
  virtual bool supports_ggml(ggml::Type type) const {
    (void)type;
    return false;
  }
  virtual GgmlLinear make_linear_ggml(std::vector<GgmlLinear::Part> parts, const Tensor& bias);
  // Int4 linears (issue 28): supports_int4 says whether linear_int4 computes a weight of that
  // shape and group size (else the integer methods dequantize it into a dense linear);
  // make_linear_int4 places a host Int4Linear (backend_types.h) in the backend's layout;
  // random_linear_int4 draws one on the device for --load-format dummy (random codes, zeros 8,
  // scales near stddev / 4.6 so the weights have about that standard deviation).
  virtual bool supports_int4(int64_t out_features, int64_t in_features, int64_t group_size) const {
    (void)out_features;
    (void)in_features;
    (void)group_size;
    return false;
  }
  virtual Int4Linear make_linear_int4(const Int4Linear& host);
  virtual Int4Linear random_linear_int4(int64_t out_features, int64_t in_features,
                                        int64_t group_size, uint64_t seed, float stddev,
                                        const Tensor& bias);
  // Whether KernelOps::embedding_ggml gathers from a table of that type kept as it is (else the
  // table is dequantized at load).
  virtual bool supports_ggml_embedding(ggml::Type type) const {
    (void)type;
    return false;
  }
  // Mixture-of-experts weights (issue 27): one layer's experts placed for KernelOps::moe_experts
  // (host backends keep per-expert views, device backends stack them: MoeExperts). `hidden` H and
  // `intermediate` F check the shapes. Throws Error where the backend has no MoE kernels.
  virtual MoeExperts make_moe_experts(MoeExpertTensors t, int64_t hidden, int64_t intermediate);
  // --quantization fp8: dense experts placed by make_moe_experts rounded to FP8 per expert and
  // output channel on the device (backends where supports_fp8()); the bf16 copy is freed.
  virtual void quantize_moe_experts_fp8(MoeExperts& w);
  // Whether make_moe_experts takes MXFP4 experts packed (MoeExperts::Format::kMxfp4, computed by
  // moe_experts as they are); elsewhere the MXFP4 method dequantizes them at load.
  virtual bool supports_mxfp4() const { return false; }
  // Whether KernelOps::lora_add, upload and set_lora_rows work here (issue 29).
  virtual bool supports_lora() const { return false; }
  // Whether write_kv / rope_write_kv / attention take a KV cache of kF8E4M3 (KvLayer's scales).
  virtual bool supports_fp8_kv_cache() const { return false; }
  // Copies fp32 host values into the contiguous tensor `dst` on this device (dst.numel() of them),
  // converting to dst's dtype. LoRA adapters swapped into their slots (issue 29); never inside a
  // graph capture.
  virtual void upload_f32(Tensor dst, std::span<const float> src);
  // Sizes the per-step buffers for the largest step (device backends; start-up only).
  virtual void reserve(const StepCapacity& capacity) { (void)capacity; }

  // ---- sleep mode (--enable-sleep-mode) --------------------------------------------------------
  // Call before any weight is placed. True: from then on what is allocated under the tags
  // kWeights and kKvCache (set_memory_tag; kOther is the default) can leave the device and come
  // back at the same addresses (sleep_memory / wake_memory), so captured CUDA graphs stay valid.
  // False: the backend holds no device memory of its own (the CPU; the runner frees host memory
  // itself).
  virtual bool enable_sleep_mode() { return false; }
  virtual void set_memory_tag(MemoryTag tag) { (void)tag; }
  // Waits for the device, then releases the device memory of the KV cache (contents dropped) and
  // of the weights (level 1: copied to pinned host memory first, kept for the next sleep; level 2:
  // dropped; the runner frees the weights themselves first). The addresses stay reserved.
  // Returns the bytes released.
  virtual int64_t sleep_memory(int level) {
    (void)level;
    return 0;
  }
  // Maps that memory again at the same addresses: level 1 copies the weights back; the KV cache
  // (and after level 2 whatever the weights tag still held) comes back zeroed.
  virtual void wake_memory(int level) { (void)level; }

  // ---- per step --------------------------------------------------------------------------------
  // Copies the metadata (and the sampling rows and edits when given) to the device in one copy.
  // Valid until the next prepare_batch. pad_to > num_tokens (decode batches of a device backend)
  // appends padding rows, each its own sequence with no keys, its own logit row and a greedy
  // sampling row, so the step has exactly pad_to rows, sequences and logit rows.
  // rows_per_seq > 0 (speculative verification steps replayed by a graph; device backends): the
  // step gets exactly pad_to sequences of rows_per_seq rows each (every sequence of `batch` has
  // 1..rows_per_seq rows), pad_to * rows_per_seq rows and as many logit rows. A sequence's rows
  // beyond its own repeat its last position and write no keys; padding sequences have no keys;
  // the batch's logit rows come first (in its order), then the padding rows' (greedy rows).
  virtual const DeviceBatch& prepare_batch(const ForwardBatch& batch, int32_t block_size,
                                           const SamplingBatch* sampling = nullptr,
                                           int32_t pad_to = 0, int32_t rows_per_seq = 0) = 0;
  // The LoRA slot of each row ([T], -1: base) for the next prepare_batch (DeviceBatch::lora_slots);
  // never called while LoRA is off. Padding rows get -1.
  virtual void set_lora_rows(std::span<const int32_t> slots);
  // Copies a device tensor to host memory (fp32 conversion if needed) and waits for it.
  virtual void copy_to_host_f32(const Tensor& x, float* dst) = 0;
  // True where tokens are sampled on the device (KernelOps::sample, then finish_samples).
  virtual bool samples_on_device() const { return false; }
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
  // Greedy decode chains (ModelExecutor::execute_greedy_chain; backends that sample on the device).
  // After round - 1 of a chain over the decode batch `b` (prepare_batch'ed, `num_seqs` real
  // sequences, the rest padding) was sampled, advance_decode_chain keeps those argmaxes and makes
  // them round `round`'s token ids, each real row one position further (kv_len + 1, its slot from
  // its block table), all on the device. finish_decode_chain keeps the last round's argmaxes, then
  // copies the rounds' tokens to `out` ([rounds, num_seqs]) in one copy and waits (rounds 0: ends
  // the step without results). max_decode_chain_rounds(): the most rounds a chain may have (0: no
  // chains).
  virtual int32_t max_decode_chain_rounds() const { return 0; }
  virtual void advance_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t round);
  virtual void finish_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t rounds,
                                   std::span<int32_t> out);
  virtual StepTiming step_timing() const { return {}; }
  virtual void reset_step_timing() {}
  // While on, a device backend times its GEMM candidates for every new shape and keeps the fastest
  // (the runner turns it on while it warms up the shapes that graphs replay); off, it takes the
  // library's first choice. Timing synchronises, so it is never on while serving.
  virtual void set_gemm_tuning(bool on) { (void)on; }

  // ---- CUDA graphs (backends where supports_graphs()) ------------------------------------------
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

}  // namespace inferd
