// The CUDA backend: bf16 weights/activations/KV cache on one GPU, one stream. This file is the
// dispatch: the DeviceRuntime calls go to the parts that own them (cuda_weights: placement,
// cuda_gemm: cuBLASLt GEMMs, cuda_step: per-step upload/download and timing, cuda_graphs: graph
// capture/replay), and each KernelOps call checks its operands on the host (mirroring the CPU
// backend, cpu_backend.cc, the reference) and launches its kernel (kernels.cu, attention.cu,
// prefill_attention.cu, sampler.cu, fp8.cu).
//
// Per step (DESIGN.md): prepare_batch makes one host-to-device copy, finish_samples one
// device-to-host copy and the only wait; nothing is allocated per step once reserve() sized the
// buffers.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string_view>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/cuda_gemm.h"
#include "backend/cuda/cuda_ggml.h"
#include "backend/cuda/cuda_graphs.h"
#include "backend/cuda/cuda_int4.h"
#include "backend/cuda/cuda_lora.h"
#include "backend/cuda/cuda_moe.h"
#include "backend/cuda/cuda_step.h"
#include "backend/cuda/cuda_weights.h"
#include "backend/cuda/kernels.h"
#include "core/dtype.h"
#include "core/logging.h"

namespace inferd {

namespace {

using namespace cuda_impl;  // NOLINT: the backend's own implementation namespace

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, const CudaBackendOptions& opts)
      : ctx_(device),
        weights_(ctx_, opts.staging_bytes),
        gemm_(ctx_, opts.gemm_workspace_bytes),
        ggml_(ctx_, weights_, gemm_),
        int4_(ctx_, weights_, gemm_),
        graphs_(ctx_),
        step_(ctx_, graphs_, opts.metadata_bytes),
        moe_(ctx_, weights_) {}

  ~CudaBackend() override { (void)cudaStreamSynchronize(ctx_.stream()); }

  // ---- runtime ---------------------------------------------------------------------------------
  Device device() const override { return Device::kCUDA; }
  std::string name() const override { return fmt::format("cuda ({})", ctx_.description()); }
  DType activation_dtype() const override { return DType::kBF16; }
  bool memory_info(int64_t* free_bytes, int64_t* total_bytes) const override {
    size_t f = 0, t = 0;
    CU_CHECK(cudaMemGetInfo(&f, &t));
    *free_bytes = int64_t(f);
    *total_bytes = int64_t(t);
    return true;
  }
  int64_t device_bytes_allocated() const override { return ctx_.allocated_bytes(); }
  bool enable_sleep_mode() override {
    ctx_.enable_sleep_mode();
    return true;
  }
  void set_memory_tag(MemoryTag tag) override { ctx_.set_memory_tag(tag); }
  int64_t sleep_memory(int level) override {
    const int64_t released = ctx_.sleep_memory(level);
    if (level == 2) weights_.forget_cached();  // the runner drops the weights themselves
    return released;
  }
  void wake_memory(int level) override { ctx_.wake_memory(level); }
  // A sticky error shows in every later call: the stream's synchronisation reports it.
  void check_device() override {
    const cudaError_t e = cudaStreamSynchronize(ctx_.stream());
    if (is_sticky(e)) CU_CHECK(e);
  }
  void inject_device_fault() override {
    LOG_WARN("--debug-inject-device-fault: writing to an illegal device address");
    CU_CHECK(cuda::launch_illegal_write(ctx_.stream()));
    CU_CHECK(cudaStreamSynchronize(ctx_.stream()));
    // Not reached on a real GPU (the write faults); a driver that let it pass is a failed test.
    throw DeviceFault("--debug-inject-device-fault: the illegal write did not fault");
  }

  using DeviceRuntime::alloc;
  Tensor alloc(DType dtype, std::span<const int64_t> shape) override {
    return ctx_.alloc(dtype, shape);
  }
  Tensor random_tensor(DType dtype, std::span<const int64_t> shape, uint64_t seed, float stddev,
                       float fill) override {
    return weights_.random_tensor(dtype, shape, seed, stddev, fill);
  }
  Tensor make_param(const Tensor& host) override { return weights_.make_param(host); }
  Linear make_linear(std::vector<Tensor> parts, const Tensor& bias) override {
    return weights_.make_linear(std::move(parts), bias);
  }
  bool supports_fp8() const override { return true; }
  // cuBLASLt's FP8 GEMMs need both dimensions to be multiples of 16.
  bool fp8_gemm_supported(int64_t out_features, int64_t in_features) const override {
    return out_features % 16 == 0 && in_features % 16 == 0;
  }
  Fp8Linear make_linear_fp8(std::vector<Tensor> parts, std::vector<Tensor> scales,
                            const Tensor& bias, float act_scale) override {
    int64_t rows = 0;
    for (const Tensor& p : parts) rows += p.ndim() == 2 ? p.size(0) : 0;
    const int64_t in = parts.empty() || parts[0].ndim() != 2 ? 0 : parts[0].size(1);
    INFERD_CHECK(fp8_gemm_supported(rows, in), "fp8 linear [{}, {}]: no FP8 GEMM for this shape",
                 rows, in);
    gemm_.note_fp8_input(in);
    return weights_.make_linear_fp8(std::move(parts), std::move(scales), bias, act_scale);
  }
  Fp8Linear quantize_linear_fp8(const Linear& l) override {
    INFERD_CHECK(fp8_gemm_supported(l.out_features, l.in_features),
                 "fp8 linear [{}, {}]: no FP8 GEMM for this shape", l.out_features, l.in_features);
    gemm_.note_fp8_input(l.in_features);
    return weights_.quantize_linear_fp8(l);
  }
  // GGUF block types (issue 35): the blocks stay on the device (cuda_ggml).
  bool supports_ggml(ggml::Type type) const override { return CudaGgml::supports(type); }
  GgmlLinear make_linear_ggml(std::vector<GgmlLinear::Part> parts, const Tensor& bias) override {
    return ggml_.make_linear(std::move(parts), bias);
  }
  // Mixture of experts (issue 27): cuda_moe.
  MoeExperts make_moe_experts(MoeExpertTensors t, int64_t hidden, int64_t inter) override {
    return moe_.make_experts(std::move(t), hidden, inter);
  }
  void quantize_moe_experts_fp8(MoeExperts& w) override { moe_.quantize_fp8(w); }
  void moe_topk(const Tensor& logits, const MoeRouting& r, Tensor ids, Tensor weights) override {
    moe_.topk(logits, r, std::move(ids), std::move(weights));
  }
  void moe_experts(const Tensor& x, const MoeExperts& w, const Tensor& ids, const Tensor& weights,
                   Tensor scratch, Tensor counts, Tensor out) override {
    moe_.experts(x, w, ids, weights, std::move(scratch), std::move(counts), std::move(out));
  }
  // Int4 weights (issue 28): the tile layout and tensor-core GEMM of cuda_int4 / int4_gemm.cu.
  bool supports_int4(int64_t out_features, int64_t in_features, int64_t group_size) const override {
    return CudaInt4::supports(out_features, in_features, group_size);
  }
  Int4Linear make_linear_int4(const Int4Linear& host) override { return int4_.make_linear(host); }
  Int4Linear random_linear_int4(int64_t out_features, int64_t in_features, int64_t group_size,
                                uint64_t seed, float stddev, const Tensor& bias) override {
    return int4_.random_linear(out_features, in_features, group_size, seed, stddev, bias);
  }
  void reserve(const StepCapacity& c) override {
    step_.reserve(c);
    gemm_.reserve(c.max_tokens);
    ggml_.reserve();
    int4_.reserve(c.max_tokens);
    lora_.reserve(c);
  }
  bool supports_mxfp4() const override { return true; }  // MoE experts (moe.cu)
  // LoRA (issue 29): slots written between steps, in stream order (a slot the previous step read
  // is rewritten only after it); rows' slots travel in the step's metadata.
  bool supports_lora() const override { return true; }
  // The FP8 KV cache's kernels (write, rope + write, decode and prefill attention for head dims
  // 64 / 128 / 256) are built but have not run on a GPU yet: the runner takes them only with
  // INFERD_CUDA_FP8_KV=1 until CudaFp8KvCache.* has passed (tests/backend/cuda_kv_fp8_test.cc).
  bool supports_fp8_kv_cache() const override {
    static const bool on = [] {
      const char* e = std::getenv("INFERD_CUDA_FP8_KV");
      return e != nullptr && std::string_view(e) == "1";
    }();
    return on;
  }
  void upload_f32(Tensor dst, std::span<const float> src) override {
    INFERD_CHECK(
        dst.is_contiguous() && size_t(dst.numel()) == src.size() && dst.dtype() == DType::kBF16,
        "upload of {} values into {} {}", src.size(), dtype_name(dst.dtype()), dst.shape_str());
    lora_staging_.resize(src.size());
    for (size_t i = 0; i < src.size(); ++i) lora_staging_[i] = f32_to_bf16(src[i]);
    CU_CHECK(cudaMemcpyAsync(dst.data(), lora_staging_.data(), src.size() * 2,
                             cudaMemcpyHostToDevice, stream()));
  }
  void set_lora_rows(std::span<const int32_t> slots) override { step_.set_lora_rows(slots); }
  // Two launches a merged linear whatever the mix of adapters (lora.cu); lora_begin puts the
  // shrink beside the base GEMM (cuda_lora.h).
  void lora_begin(const Tensor& x, const LoraLinear& w, const DeviceBatch& b) override {
    lora_.begin(x, w, b);
  }
  void lora_add(const Tensor& x, const LoraLinear& w, const DeviceBatch& b, Tensor out) override {
    lora_.add(x, w, b, std::move(out));
  }
  const DeviceBatch& prepare_batch(const ForwardBatch& batch, int32_t block_size,
                                   const SamplingBatch* sampling, int32_t pad_to,
                                   int32_t rows_per_seq) override {
    return step_.prepare_batch(batch, block_size, sampling, pad_to, rows_per_seq);
  }
  void copy_to_host_f32(const Tensor& x, float* dst) override { step_.copy_to_host_f32(x, dst); }
  bool samples_on_device() const override { return true; }
  void upload_masks(const DeviceBatch& b, const SamplingBatch& sampling) override {
    (void)b;
    step_.upload_masks(sampling);
  }
  void finish_samples(const DeviceBatch& b, const SamplingBatch& sampling,
                      std::span<SampledToken> out) override {
    step_.finish_samples(b, sampling, out);
  }
  int32_t max_decode_chain_rounds() const override { return CudaStepIo::kMaxChainRounds; }
  void advance_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t round) override {
    step_.advance_decode_chain(b, num_seqs, round);
  }
  void finish_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t rounds,
                           std::span<int32_t> out) override {
    step_.finish_decode_chain(b, num_seqs, rounds, out);
  }
  StepTiming step_timing() const override { return step_.step_timing(); }
  void reset_step_timing() override { step_.reset_step_timing(); }
  void set_gemm_tuning(bool on) override { gemm_.set_tuning(on); }
  bool supports_graphs() const override { return true; }
  void begin_graph_capture() override { graphs_.begin_capture(); }
  void end_graph_capture(int32_t key) override { graphs_.end_capture(key); }
  bool replay_graph(int32_t key) override { return graphs_.replay(key); }

  // ---- kernel ops ------------------------------------------------------------------------------
  void embedding(const Tensor& table, const DeviceBatch& b, float scale, Tensor out) override {
    check_dtype(table, DType::kBF16, "embedding table");
    check_dtype(out, DType::kBF16, "embedding out");
    const Mat t = as_matrix(table, "embedding table"), o = as_matrix(out, "embedding out");
    INFERD_CHECK(t.ld == t.cols && o.cols == t.cols && o.rows >= b.num_tokens,
                 "embedding table {} out {}", table.shape_str(), out.shape_str());
    if (const int32_t* ids = step_.host_token_ids(b)) {  // our batch: ids still in pinned memory
      for (int32_t i = 0; i < b.num_tokens; ++i) {
        if (ids[i] < 0 || ids[i] >= t.rows) fail("token id {} outside vocab {}", ids[i], t.rows);
      }
    }
    CU_CHECK(cuda::launch_embedding(table.data(), t.rows, t.cols, b.token_ids, b.num_tokens, scale,
                                    out.data(), o.ld, stream()));
  }

  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor out) override {
    check_dtype(x, DType::kBF16, "rms_norm x");
    check_dtype(out, DType::kBF16, "rms_norm out");
    const Mat xm = as_matrix(x, "rms_norm x"), om = as_matrix(out, "rms_norm out");
    INFERD_CHECK(om.rows == xm.rows && om.cols == xm.cols, "rms_norm x {} out {}", x.shape_str(),
                 out.shape_str());
    check_vec(w, xm.cols, "rms_norm weight");
    CU_CHECK(cuda::launch_rms_norm(x.data(), xm.ld, w.data_as<float>(), eps, int32_t(xm.rows),
                                   xm.cols, out.data(), om.ld, stream()));
  }

  using KernelOps::add_rms_norm;
  void add_rms_norm(Tensor residual, const Tensor& x, float x_scale, const Tensor& w, float eps,
                    Tensor out) override {
    check_dtype(residual, DType::kBF16, "add_rms_norm residual");
    check_dtype(x, DType::kBF16, "add_rms_norm x");
    check_dtype(out, DType::kBF16, "add_rms_norm out");
    const Mat rm = as_matrix(residual, "add_rms_norm residual");
    const Mat xm = as_matrix(x, "add_rms_norm x"), om = as_matrix(out, "add_rms_norm out");
    INFERD_CHECK(
        rm.rows == xm.rows && rm.cols == xm.cols && om.rows == xm.rows && om.cols == xm.cols,
        "add_rms_norm residual {} x {} out {}", residual.shape_str(), x.shape_str(),
        out.shape_str());
    check_vec(w, xm.cols, "add_rms_norm weight");
    CU_CHECK(cuda::launch_add_rms_norm(residual.data(), rm.ld, x.data(), xm.ld, x_scale,
                                       w.data_as<float>(), eps, int32_t(xm.rows), xm.cols,
                                       out.data(), om.ld, stream()));
  }

  void rms_norm_add(const Tensor& x, const Tensor& w, float eps, Tensor residual) override {
    check_dtype(x, DType::kBF16, "rms_norm_add x");
    check_dtype(residual, DType::kBF16, "rms_norm_add residual");
    const Mat xm = as_matrix(x, "rms_norm_add x"), rm = as_matrix(residual, "rms_norm_add res");
    INFERD_CHECK(rm.rows == xm.rows && rm.cols == xm.cols, "rms_norm_add x {} residual {}",
                 x.shape_str(), residual.shape_str());
    check_vec(w, xm.cols, "rms_norm_add weight");
    CU_CHECK(cuda::launch_rms_norm_add(x.data(), xm.ld, w.data_as<float>(), eps, int32_t(xm.rows),
                                       xm.cols, residual.data(), rm.ld, stream()));
  }

  void head_rms_norm(Tensor x, int64_t head_dim, const Tensor& w, float eps) override {
    check_dtype(x, DType::kBF16, "head_rms_norm x");
    const Mat xm = as_matrix(x, "head_rms_norm x");
    INFERD_CHECK(head_dim > 0 && xm.cols % head_dim == 0, "head_rms_norm: {} columns, head_dim {}",
                 xm.cols, head_dim);
    check_vec(w, head_dim, "head_rms_norm weight");
    CU_CHECK(cuda::launch_head_rms_norm(x.data(), xm.ld, int32_t(xm.rows), xm.cols / head_dim,
                                        head_dim, w.data_as<float>(), eps, stream()));
  }

  void linear(const Tensor& x, const Linear& w, Tensor out) override { gemm_.linear(x, w, out); }
  void linear_fp8(const Tensor& x, const Fp8Linear& w, Tensor out) override {
    gemm_.linear_fp8(x, w, out);
  }
  void linear_int4(const Tensor& x, const Int4Linear& w, Tensor out) override {
    int4_.linear(x, w, out);
  }
  void linear_ggml(const Tensor& x, const GgmlLinear& w, Tensor out) override {
    ggml_.linear(x, w, out);
  }

  void rope(Tensor qkv, int64_t nh, int64_t nkv, const RopeTable& rope,
            const DeviceBatch& b) override {
    check_dtype(qkv, DType::kBF16, "rope qkv");
    const Mat q = as_matrix(qkv, "rope qkv");
    const int64_t hd = rope.head_dim;
    INFERD_CHECK(hd > 0 && hd % 2 == 0 && q.rows >= b.num_tokens && q.cols >= (nh + nkv) * hd,
                 "rope: qkv {} heads {}+{} head_dim {}", qkv.shape_str(), nh, nkv, hd);
    check_vec(rope.inv_freq, hd / 2, "rope inv_freq");
    CU_CHECK(cuda::launch_rope(qkv.data(), q.ld, b.num_tokens, nh + nkv, hd,
                               rope.inv_freq.data_as<float>(), rope.attention_scaling, b.positions,
                               stream()));
  }

  void silu_mul(const Tensor& gate_up, Tensor out) override {
    const auto [g, o] = act_shapes(gate_up, out, "silu_mul");
    CU_CHECK(cuda::launch_silu_mul(gate_up.data(), g.ld, int32_t(o.rows), o.cols, out.data(), o.ld,
                                   stream()));
  }

  void gelu_tanh_mul(const Tensor& gate_up, Tensor out) override {
    const auto [g, o] = act_shapes(gate_up, out, "gelu_tanh_mul");
    CU_CHECK(cuda::launch_gelu_tanh_mul(gate_up.data(), g.ld, int32_t(o.rows), o.cols, out.data(),
                                        o.ld, stream()));
  }

  void softcap(Tensor logits, float cap) override {
    check_dtype(logits, DType::kF32, "softcap logits");
    INFERD_CHECK(cap > 0, "softcap: cap {}", cap);
    const Mat m = as_matrix(logits, "softcap logits");
    CU_CHECK(cuda::launch_softcap(logits.data_as<float>(), m.ld, int32_t(m.rows), m.cols, cap,
                                  stream()));
  }

  void div_scalar(Tensor logits, float divisor) override {
    check_dtype(logits, DType::kF32, "div_scalar logits");
    INFERD_CHECK(divisor != 0, "div_scalar: divisor 0");
    const Mat m = as_matrix(logits, "div_scalar logits");
    CU_CHECK(cuda::launch_div_scalar(logits.data_as<float>(), m.ld, int32_t(m.rows), m.cols,
                                     divisor, stream()));
  }

  void write_kv(const Tensor& qkv, int64_t nh, int64_t nkv, KvLayer& kv,
                const DeviceBatch& b) override {
    check_kv(kv, nkv);
    check_dtype(qkv, DType::kBF16, "write_kv qkv");
    const Mat q = as_matrix(qkv, "write_kv qkv");
    const int64_t hd = kv.k.size(3);
    INFERD_CHECK(q.rows >= b.num_tokens && q.cols >= (nh + 2 * nkv) * hd,
                 "write_kv: qkv {} heads {}+2*{} head_dim {}", qkv.shape_str(), nh, nkv, hd);
    CU_CHECK(cuda::launch_write_kv(qkv.data(), q.ld, b.num_tokens, nh, nkv, hd, b.slot_mapping,
                                   kv.k.data(), kv.v.data(), kv_format(kv), stream()));
  }

  void rope_write_kv(Tensor qkv, int64_t nh, int64_t nkv, const RopeTable& rope, KvLayer& kv,
                     const DeviceBatch& b) override {
    check_kv(kv, nkv);
    check_dtype(qkv, DType::kBF16, "rope_write_kv qkv");
    const Mat q = as_matrix(qkv, "rope_write_kv qkv");
    const int64_t hd = kv.k.size(3);
    const bool fused =
        hd == rope.head_dim && hd % 16 == 0 && q.ld % 8 == 0 && alignment_of(qkv.data()) >= 16;
    if (!fused) {  // odd shapes: the two separate kernels
      this->rope(qkv, nh, nkv, rope, b);
      write_kv(qkv, nh, nkv, kv, b);
      return;
    }
    INFERD_CHECK(q.rows >= b.num_tokens && q.cols >= (nh + 2 * nkv) * hd,
                 "rope_write_kv: qkv {} heads {}+2*{} head_dim {}", qkv.shape_str(), nh, nkv, hd);
    check_vec(rope.inv_freq, hd / 2, "rope inv_freq");
    CU_CHECK(cuda::launch_rope_write_kv(qkv.data(), q.ld, b.num_tokens, nh, nkv, hd,
                                        rope.inv_freq.data_as<float>(), rope.attention_scaling,
                                        b.positions, b.slot_mapping, kv.k.data(), kv.v.data(),
                                        kv_format(kv), stream()));
  }

  void attention(const Tensor& qkv, int64_t nh, int64_t nkv, const KvLayer& kv, float scale,
                 int64_t window, const DeviceBatch& b, Tensor out, const Tensor& sinks) override {
    cuda::AttentionParams p = attention_params(qkv, nh, nkv, kv, scale, window, b, out);
    if (sinks.defined()) {
      check_dtype(sinks, DType::kF32, "attention sinks");
      INFERD_CHECK(sinks.numel() == nh, "attention sinks {} for {} heads", sinks.shape_str(), nh);
      p.sinks = sinks.data_as<float>();
    }
    // A batch whose sequences have at most kMaxSeqBlockRows new tokens each (speculative
    // verification, short chunks) runs on the split-KV kernel, one block per (sequence, KV head,
    // split) computing all the sequence's rows (its keys read once). Otherwise sequences with
    // several new tokens (prefill chunks) go to the tensor-core prefill kernel, the rest (decode
    // rows) to the split-KV kernel, one block per (row, KV head, split); a batch may hold both.
    const bool seq_blocks = b.max_q_len > 1 && b.max_q_len <= cuda::kMaxSeqBlockRows &&
                            cuda::seq_block_attention_supported(p.head_dim);
    const bool prefill_kernel =
        !seq_blocks && b.max_q_len > 1 && cuda::prefill_attention_supported(p.head_dim);
    if (prefill_kernel) CU_CHECK(cuda::launch_prefill_attention(p, b.max_q_len, stream()));
    if (prefill_kernel && b.num_single_token_seqs == 0) return;
    p.single_token_seqs_only = prefill_kernel;
    p.seq_blocks = seq_blocks;
    p.num_splits = cuda::attention_splits(seq_blocks ? b.num_seqs : b.num_tokens, int32_t(nkv),
                                          ctx_.num_sms());
    if (p.num_splits > 1) {
      const int64_t rows = cuda::attention_partial_rows(int32_t(nh), int32_t(nkv), ctx_.num_sms());
      INFERD_CHECK(int64_t(b.num_tokens) * nh * p.num_splits <= rows,
                   "attention partial buffer too small");
      ensure_partial(rows, p.head_dim);
      p.partial_acc = partial_acc_.data_as<float>();
      p.partial_m = partial_m_.data_as<float>();
      p.partial_l = partial_l_.data_as<float>();
    }
    CU_CHECK(cuda::launch_attention(p, stream()));
  }

  void gather_rows(const Tensor& x, const DeviceBatch& b, Tensor out) override {
    INFERD_CHECK(x.dtype() == out.dtype(), "gather_rows: x {} out {}", dtype_name(x.dtype()),
                 dtype_name(out.dtype()));
    const Mat xm = as_matrix(x, "gather_rows x"), om = as_matrix(out, "gather_rows out");
    INFERD_CHECK(om.cols == xm.cols && om.rows >= b.num_logit_rows, "gather_rows x {} out {}",
                 x.shape_str(), out.shape_str());
    const int64_t es = int64_t(dtype_size(x.dtype()));
    CU_CHECK(cuda::launch_gather_rows(x.data(), xm.ld * es, xm.cols * es, b.logit_rows,
                                      b.num_logit_rows, out.data(), om.ld * es, stream()));
  }

  void copy_rows(const Tensor& src, Tensor dst) override {
    INFERD_CHECK(src.dtype() == dst.dtype(), "copy_rows: src {} dst {}", dtype_name(src.dtype()),
                 dtype_name(dst.dtype()));
    const Mat sm = as_matrix(src, "copy_rows src"), dm = as_matrix(dst, "copy_rows dst");
    INFERD_CHECK(sm.rows == dm.rows && sm.cols == dm.cols, "copy_rows src {} dst {}",
                 src.shape_str(), dst.shape_str());
    if (sm.rows == 0) return;
    const size_t es = dtype_size(src.dtype());
    CU_CHECK(cudaMemcpy2DAsync(dst.data(), size_t(dm.ld) * es, src.data(), size_t(sm.ld) * es,
                               size_t(sm.cols) * es, size_t(sm.rows), cudaMemcpyDeviceToDevice,
                               stream()));
  }

  void sample(const Tensor& logits, const DeviceBatch& b, int32_t row0) override {
    step_.sample(logits, b, row0);
  }

  // ---- helpers behind cuda_backend.h -----------------------------------------------------------
  Tensor upload(const Tensor& host, DType dtype) { return weights_.upload(host, dtype); }
  void poison(const Tensor& t) { weights_.poison(t); }
  void fill_random(const Tensor& t, uint64_t seed, float stddev, float fill) {
    weights_.fill_random(t, seed, stddev, fill);
  }
  void synchronize() { ctx_.synchronize(); }

 private:
  cudaStream_t stream() const { return ctx_.stream(); }

  std::pair<Mat, Mat> act_shapes(const Tensor& gate_up, const Tensor& out, const char* what) {
    check_dtype(gate_up, DType::kBF16, what);
    check_dtype(out, DType::kBF16, what);
    const Mat g = as_matrix(gate_up, what), o = as_matrix(out, what);
    INFERD_CHECK(g.rows == o.rows && g.cols == 2 * o.cols, "{} gate_up {} out {}", what,
                 gate_up.shape_str(), out.shape_str());
    return {g, o};
  }

  cuda::AttentionParams attention_params(const Tensor& qkv, int64_t nh, int64_t nkv,
                                         const KvLayer& kv, float scale, int64_t window,
                                         const DeviceBatch& b, const Tensor& out) {
    check_kv(kv, nkv);
    check_dtype(qkv, DType::kBF16, "attention qkv");
    check_dtype(out, DType::kBF16, "attention out");
    const Mat q = as_matrix(qkv, "attention qkv"), o = as_matrix(out, "attention out");
    const int64_t hd = kv.k.size(3);
    if (hd > cuda::kMaxAttentionHeadDim || hd % 8 != 0)
      fail(
          "head_dim {} is not supported by the CUDA attention kernel (a multiple of 8, at most "
          "{})",
          hd, cuda::kMaxAttentionHeadDim);
    INFERD_CHECK(nkv > 0 && nh % nkv == 0 && q.rows >= b.num_tokens && q.cols >= nh * hd &&
                     o.rows >= b.num_tokens && o.cols == nh * hd,
                 "attention: qkv {} out {} heads {}/{} head_dim {}", qkv.shape_str(),
                 out.shape_str(), nh, nkv, hd);
    INFERD_CHECK(q.ld % 8 == 0 && o.ld % 8 == 0 && alignment_of(qkv.data()) >= 16 &&
                     alignment_of(out.data()) >= 16,
                 "attention: q and out rows must be 16-byte aligned");
    INFERD_CHECK(b.header != nullptr, "attention: the batch has no device metadata header");
    cuda::AttentionParams p;
    p.qkv = qkv.data();
    p.ld_qkv = q.ld;
    p.k_cache = kv.k.data();
    p.v_cache = kv.v.data();
    p.out = out.data();
    p.ld_out = o.ld;
    p.num_tokens = b.num_tokens;
    p.num_seqs = b.num_seqs;
    p.num_heads = int32_t(nh);
    p.num_kv_heads = int32_t(nkv);
    p.head_dim = int32_t(hd);
    p.block_size = int32_t(kv.k.size(1));
    p.header = b.header;
    p.positions = b.positions;
    p.seq_q_start = b.seq_q_start;
    p.seq_kv_len = b.seq_kv_len;
    p.block_tables = b.block_tables;
    p.scale = scale;
    p.sliding_window = window > 0 && window < INT32_MAX ? int32_t(window) : 0;
    p.kv = kv_format(kv);
    if (p.kv.fp8 && !cuda::seq_block_attention_supported(int32_t(hd)))
      fail(
          "--kv-cache-dtype fp8: head_dim {} is not supported by the CUDA attention kernels "
          "(64, 128 or 256)",
          hd);
    return p;
  }

  static cuda::KvCacheFormat kv_format(const KvLayer& kv) {
    cuda::KvCacheFormat f;
    f.fp8 = kv.k.dtype() == DType::kF8E4M3;
    if (f.fp8) {
      f.k_scale = kv.k_scale;
      f.v_scale = kv.v_scale;
    }
    return f;
  }

  void check_kv(const KvLayer& kv, int64_t nkv) const {
    const bool f8 = kv.k.dtype() == DType::kF8E4M3;
    INFERD_CHECK(kv.k.defined() && kv.v.defined() && kv.k.device() == Device::kCUDA &&
                     (kv.k.dtype() == DType::kBF16 || f8) && kv.v.dtype() == kv.k.dtype() &&
                     (!f8 || (kv.k_scale > 0 && kv.v_scale > 0)) && kv.k.ndim() == 4 &&
                     kv.k.size(2) == nkv && kv.k.is_contiguous() && kv.v.is_contiguous() &&
                     kv.v.numel() == kv.k.numel(),
                 "KV cache: k {} {} v {} {} (expected bf16 or fp8 [blocks, block_size, {}, "
                 "head_dim])",
                 dtype_name(kv.k.dtype()), kv.k.shape_str(), dtype_name(kv.v.dtype()),
                 kv.v.shape_str(), nkv);
    INFERD_CHECK(kv.k.size(1) == step_.block_size(), "KV cache block size {} but the batch uses {}",
                 kv.k.size(1), step_.block_size());
  }

  void ensure_partial(int64_t rows, int64_t hd) {
    if (partial_m_.defined() && partial_m_.numel() >= rows && partial_hd_ >= hd) return;
    INFERD_CHECK(!ctx_.capturing(), "attention partial buffers must exist before graph capture");
    partial_acc_ = ctx_.alloc(DType::kF32, std::initializer_list<int64_t>{rows * hd});
    partial_m_ = ctx_.alloc(DType::kF32, std::initializer_list<int64_t>{rows});
    partial_l_ = ctx_.alloc(DType::kF32, std::initializer_list<int64_t>{rows});
    partial_hd_ = hd;
  }

  // Declared in construction order; destroyed in reverse (the context, holding the stream, last).
  CudaContext ctx_;
  CudaWeights weights_;
  CudaGemm gemm_;
  CudaGgml ggml_;
  CudaInt4 int4_;
  CudaGraphs graphs_;
  CudaStepIo step_;
  CudaMoe moe_;
  CudaLora lora_{ctx_};                 // LoRA: scratch, side stream
  std::vector<uint16_t> lora_staging_;  // upload_f32's bf16 copy
  Tensor partial_acc_, partial_m_, partial_l_;
  int64_t partial_hd_ = 0;
};

CudaBackend& as_cuda(Backend& b) {
  auto* c = dynamic_cast<CudaBackend*>(&b);
  INFERD_CHECK(c != nullptr, "backend '{}' is not the CUDA backend", b.name());
  return *c;
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(device, options);
}

Tensor cuda_upload(Backend& backend, const Tensor& host, DType dtype) {
  return as_cuda(backend).upload(host, dtype);
}

Tensor cuda_download_f32(Backend& backend, const Tensor& device_tensor) {
  Tensor h = Tensor::empty_host(DType::kF32, device_tensor.shape());
  as_cuda(backend).copy_to_host_f32(device_tensor, h.data_as<float>());
  return h;
}

void cuda_poison(Backend& backend, const Tensor& device_tensor) {
  as_cuda(backend).poison(device_tensor);
}

void cuda_fill_random(Backend& backend, const Tensor& device_tensor, uint64_t seed, float stddev,
                      float fill) {
  as_cuda(backend).fill_random(device_tensor, seed, stddev, fill);
}

Tensor cuda_random_tensor(Backend& backend, DType dtype, std::span<const int64_t> shape,
                          uint64_t seed, float stddev, float fill) {
  return as_cuda(backend).random_tensor(dtype, shape, seed, stddev, fill);
}

void cuda_synchronize(Backend& backend) {
  as_cuda(backend).synchronize();
}

}  // namespace inferd
