// The CUDA backend: bf16 weights/activations/KV cache, one stream, cuBLASLt GEMMs (per shape, the
// fastest of the heuristic's candidates, timed once for decode-sized shapes), the other ops in
// kernels.cu / attention.cu / sampler.cu, CUDA graphs for decode steps. Host-side checks mirror
// the CPU backend's (cpu_backend.cc is the reference).
//
// Per step (DESIGN.md): prepare_batch packs the metadata, sampling rows and edits into one pinned
// buffer and makes one host-to-device copy; finish_samples makes one device-to-host copy of the
// sampled tokens (and logprob records when a row asked) and waits. Nothing else synchronises, and
// nothing is allocated per step once reserve() sized the buffers.
#include "backend/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <map>
#include <vector>

#include "backend/cuda/cuda_device.h"
#include "backend/cuda/fp8.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/sampler.h"
#include "core/error.h"
#include "core/logging.h"

namespace inferd {

namespace {

void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) {
    throw Error(
        fmt::format("CUDA error '{}' from {} at {}:{}", cudaGetErrorString(e), what, file, line));
  }
}
void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw Error(fmt::format("cuBLASLt error '{}' from {} at {}:{}", cublasLtGetStatusString(s),
                            what, file, line));
  }
}
#define CU_CHECK(expr) check_cuda((expr), #expr, __FILE__, __LINE__)
#define CUBLAS_CHECK(expr) check_cublas((expr), #expr, __FILE__, __LINE__)

bool is_float(DType t) {
  return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16;
}

float load_float(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kF32:
      return static_cast<const float*>(p)[i];
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default:
      INFERD_CHECK(false, "not a float dtype: {}", dtype_name(t));
  }
}

void store_float(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::kF32:
      static_cast<float*>(p)[i] = v;
      return;
    case DType::kBF16:
      static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
      return;
    case DType::kF16:
      static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
      return;
    default:
      INFERD_CHECK(false, "not a float dtype: {}", dtype_name(t));
  }
}

// n elements from src (dtype s) to dst (dtype d), both host memory.
void convert(const void* src, DType s, void* dst, DType d, int64_t n) {
  if (s == d) {
    std::memcpy(dst, src, size_t(n) * dtype_size(s));
    return;
  }
  for (int64_t i = 0; i < n; ++i) store_float(dst, d, i, load_float(src, s, i));
}

int dtype_code(DType t) {
  switch (t) {
    case DType::kF32:
      return 0;
    case DType::kBF16:
      return 1;
    case DType::kF16:
      return 2;
    default:
      INFERD_CHECK(false, "no device code for dtype {}", dtype_name(t));
  }
}

// Largest power of two (at most 256) that divides the address.
uint32_t alignment_of(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && u % a != 0) a /= 2;
  return a;
}

// Row-major view of a device tensor as [rows, cols] with row stride `ld` (elements).
struct Mat {
  int64_t rows, cols, ld;
};
Mat as_matrix(const Tensor& t, const char* what) {
  INFERD_CHECK(t.defined() && t.device() == Device::kCUDA, "{}: not a CUDA tensor", what);
  if (t.ndim() == 2) {
    INFERD_CHECK(t.stride(1) == 1 || t.size(1) <= 1, "{}: columns must be contiguous ({})", what,
                 t.shape_str());
    return {t.size(0), t.size(1), t.stride(0)};
  }
  INFERD_CHECK(t.is_contiguous(), "{}: non-contiguous tensor {}", what, t.shape_str());
  return {1, t.numel(), t.numel()};
}

void check_dtype(const Tensor& t, DType want, const char* what) {
  INFERD_CHECK(t.dtype() == want, "{}: dtype {} (expected {})", what, dtype_name(t.dtype()),
               dtype_name(want));
}

// Norm weights and inv_freq: fp32 on the device with `n` elements.
void check_vec(const Tensor& w, int64_t n, const char* what) {
  INFERD_CHECK(w.defined() && w.device() == Device::kCUDA && w.dtype() == DType::kF32 &&
                   w.numel() == n && w.is_contiguous(),
               "{}: expected a CUDA fp32 vector of {} elements, got {} {}", what, n,
               dtype_name(w.dtype()), w.shape_str());
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, const CudaBackendOptions& opts) : device_(device), opts_(opts) {
    const int n = cuda::device_count();
    if (device < 0 || device >= n)
      fail("CUDA device {} does not exist ({} CUDA devices found)", device, n);
    CU_CHECK(cudaSetDevice(device_));
    description_ = cuda::device_description(device_);
    CU_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasLtCreate(&lt_));
    gemm_ws_bytes_ = opts_.gemm_workspace_bytes;
    if (gemm_ws_bytes_ > 0) CU_CHECK(cudaMalloc(&gemm_ws_, gemm_ws_bytes_));
    staging_half_ = std::max<size_t>(opts_.staging_bytes / 2, 1 << 20) / 256 * 256;
    for (int i = 0; i < 2; ++i) {
      CU_CHECK(cudaHostAlloc(&staging_[i], staging_half_, cudaHostAllocDefault));
      CU_CHECK(cudaEventCreateWithFlags(&staging_ev_[i], cudaEventDisableTiming));
    }
    CU_CHECK(cudaEventCreateWithFlags(&meta_ev_, cudaEventDisableTiming));
    for (int i = 0; i < 2; ++i) {
      CU_CHECK(cudaEventCreate(&step_start_[i]));
      CU_CHECK(cudaEventCreate(&step_end_[i]));
    }
    for (auto& e : tune_ev_) CU_CHECK(cudaEventCreate(&e));
    CU_CHECK(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device_));
    grow_metadata(std::max<size_t>(opts_.metadata_bytes / 4, 1024));
  }

  ~CudaBackend() override {
    // No throwing here: errors are ignored on the way out.
    (void)cudaSetDevice(device_);
    (void)cudaStreamSynchronize(stream_);
    for (auto& [key, plan] : plans_) {
      (void)cublasLtMatrixLayoutDestroy(plan.a);
      (void)cublasLtMatrixLayoutDestroy(plan.b);
      (void)cublasLtMatrixLayoutDestroy(plan.c);
      (void)cublasLtMatmulDescDestroy(plan.op);
    }
    (void)cublasLtDestroy(lt_);
    if (gemm_ws_) (void)cudaFree(gemm_ws_);
    for (int i = 0; i < 2; ++i) {
      (void)cudaFreeHost(staging_[i]);
      (void)cudaEventDestroy(staging_ev_[i]);
    }
    (void)cudaEventDestroy(meta_ev_);
    for (int i = 0; i < 2; ++i) {
      (void)cudaEventDestroy(step_start_[i]);
      (void)cudaEventDestroy(step_end_[i]);
    }
    for (auto& e : tune_ev_) (void)cudaEventDestroy(e);
    drop_graphs();
    if (results_host_) (void)cudaFreeHost(results_host_);
    if (meta_host_) (void)cudaFreeHost(meta_host_);
    if (meta_dev_) (void)cudaFree(meta_dev_);
    if (down_host_) (void)cudaFreeHost(down_host_);
    (void)cudaStreamDestroy(stream_);
  }

  Device device() const override { return Device::kCUDA; }
  std::string name() const override { return fmt::format("cuda ({})", description_); }
  DType activation_dtype() const override { return DType::kBF16; }
  bool memory_info(int64_t* free_bytes, int64_t* total_bytes) const override {
    size_t f = 0, t = 0;
    CU_CHECK(cudaMemGetInfo(&f, &t));
    *free_bytes = int64_t(f);
    *total_bytes = int64_t(t);
    return true;
  }

  // ---- placement ------------------------------------------------------------------------
  using Backend::alloc;
  Tensor alloc(DType dtype, std::span<const int64_t> shape) override {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const size_t bytes = std::max<size_t>(size_t(n) * dtype_size(dtype), 1);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, (bytes + 255) / 256 * 256);
    if (e == cudaSuccess) allocated_bytes_ += int64_t((bytes + 255) / 256 * 256);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      fail("out of GPU memory allocating {} MiB on CUDA device {} ({})", bytes >> 20, device_,
           cudaGetErrorString(e));
    }
    std::shared_ptr<void> holder(p, [](void* q) { (void)cudaFree(q); });
    CU_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
    return Tensor(p, dtype, shape, Device::kCUDA, std::move(holder));
  }

  Linear make_linear(std::vector<Tensor> parts, const Tensor& bias) override {
    INFERD_CHECK(!parts.empty(), "linear without weights");
    Linear l;
    l.in_features = parts[0].size(1);
    for (const Tensor& p : parts) {
      INFERD_CHECK(
          p.ndim() == 2 && p.size(1) == l.in_features && p.is_contiguous() && is_float(p.dtype()),
          "bad linear part {} {}", dtype_name(p.dtype()), p.shape_str());
      l.out_features += p.size(0);
    }
    if (parts.size() == 1) {
      const Tensor& p = parts[0];
      if (p.device() == Device::kCUDA && p.dtype() == DType::kBF16) {
        l.parts = {p};  // already placed (tied embeddings under --load-format dummy)
      } else if (embed_dev_.defined() && p.data() == embed_src_ && p.dtype() == embed_src_dtype_ &&
                 p.numel() == embed_dev_.numel() && !embed_holder_.expired()) {
        l.parts = {embed_dev_};  // tied embeddings: the table uploaded by make_param
      }
    }
    if (l.parts.empty()) {
      Tensor w = alloc(DType::kBF16, {l.out_features, l.in_features});
      int64_t row = 0;
      for (const Tensor& p : parts) {
        char* dst = static_cast<char*>(w.data()) + row * l.in_features * 2;
        if (p.device() == Device::kCUDA) {
          check_dtype(p, DType::kBF16, "device linear part");
          CU_CHECK(cudaMemcpyAsync(dst, p.data(), p.nbytes(), cudaMemcpyDeviceToDevice, stream_));
        } else {
          upload_into(p, dst, DType::kBF16);
        }
        row += p.size(0);
      }
      l.parts = {w};
    }
    if (bias.defined()) {
      INFERD_CHECK(bias.numel() == l.out_features, "bias of {} for {} outputs", bias.numel(),
                   l.out_features);
      l.bias = place_vector(bias);
    }
    return l;
  }

  bool supports_fp8() const override { return true; }

  static int64_t total_rows(const std::vector<Tensor>& parts) {
    int64_t n = 0;
    for (const Tensor& p : parts) n += p.size(0);
    return n;
  }
  // f8(q[r, :]) * scale[r] as an fp32 host tensor.
  static Tensor dequantize_rows(const Tensor& q, const Tensor& scale) {
    Tensor out = Tensor::empty_host(DType::kF32, q.shape());
    const int64_t R = q.size(0), C = q.size(1);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c)
        out.data_as<float>()[r * C + c] =
            f8e4m3_to_f32(q.data_as<uint8_t>()[r * C + c]) * scale.data_as<float>()[r];
    return out;
  }
  void warn_fp8_fallback(int64_t k, int64_t n) {
    if (fp8_fallback_warned_) return;
    fp8_fallback_warned_ = true;
    LOG_WARN("a linear of {} inputs and {} outputs runs in bf16: FP8 GEMMs need multiples of 16", k,
             n);
  }

  Linear make_linear_fp8(std::vector<Tensor> parts, std::vector<Tensor> scales, const Tensor& bias,
                         float act_scale) override {
    INFERD_CHECK(!parts.empty() && parts.size() == scales.size(), "fp8 linear: {} parts, {} scales",
                 parts.size(), scales.size());
    if (parts[0].size(1) % 16 != 0 || total_rows(parts) % 16 != 0) {
      // cuBLASLt's FP8 GEMMs need both dimensions to be multiples of 16: dequantized to bf16.
      std::vector<Tensor> deq;
      for (size_t i = 0; i < parts.size(); ++i) deq.push_back(dequantize_rows(parts[i], scales[i]));
      warn_fp8_fallback(parts[0].size(1), total_rows(parts));
      Linear l = make_linear(std::move(deq), bias);
      return l;
    }
    Linear l;
    l.in_features = parts[0].size(1);
    std::vector<float> scale_host;
    for (size_t i = 0; i < parts.size(); ++i) {
      const Tensor& p = parts[i];
      INFERD_CHECK(p.ndim() == 2 && p.size(1) == l.in_features && p.is_contiguous() &&
                       p.dtype() == DType::kF8E4M3 && p.device() == Device::kCPU,
                   "bad fp8 linear part {} {}", dtype_name(p.dtype()), p.shape_str());
      INFERD_CHECK(scales[i].numel() == p.size(0) && scales[i].dtype() == DType::kF32,
                   "fp8 linear part of {} rows with {} scales", p.size(0), scales[i].numel());
      l.out_features += p.size(0);
      scale_host.insert(scale_host.end(), scales[i].data_as<float>(),
                        scales[i].data_as<float>() + scales[i].numel());
    }
    Tensor w = alloc(DType::kF8E4M3, {l.out_features, l.in_features});
    int64_t off = 0;
    for (const Tensor& p : parts) {
      CU_CHECK(cudaMemcpyAsync(static_cast<char*>(w.data()) + off, p.data(), p.nbytes(),
                               cudaMemcpyHostToDevice, stream_));
      off += int64_t(p.nbytes());
    }
    CU_CHECK(cudaStreamSynchronize(stream_));  // the host parts may be temporaries
    l.parts = {w};
    l.weight_scale = place_vector(Tensor(scale_host.data(), DType::kF32, {l.out_features}));
    CU_CHECK(cudaStreamSynchronize(stream_));
    l.act_scale = act_scale;
    if (bias.defined()) l.bias = place_vector(bias);
    fp8_max_k_ = std::max(fp8_max_k_, l.in_features);
    return l;
  }

  Linear quantize_linear_fp8(const Linear& src) override {
    INFERD_CHECK(src.parts.size() == 1 && src.parts[0].dtype() == DType::kBF16 &&
                     src.parts[0].device() == Device::kCUDA,
                 "quantize_linear_fp8: a bf16 linear made by this backend expected");
    const int64_t N = src.out_features, K = src.in_features;
    if (N % 16 != 0 || K % 16 != 0) {  // no FP8 GEMM for this shape: stays bf16
      warn_fp8_fallback(K, N);
      return src;
    }
    Linear l = src;
    l.parts = {alloc(DType::kF8E4M3, {N, K})};
    l.weight_scale = alloc(DType::kF32, {N});
    CU_CHECK(cuda::launch_quantize_rows_fp8(src.parts[0].data(), K, N, K,
                                            l.parts[0].data_as<uint8_t>(), K,
                                            l.weight_scale.data_as<float>(), 0.0f, stream_));
    CU_CHECK(cudaStreamSynchronize(stream_));  // the bf16 weight is freed by the caller
    fp8_max_k_ = std::max(fp8_max_k_, K);
    return l;
  }

  Tensor make_param(const Tensor& host) override {
    if (host.device() == Device::kCUDA) return host;
    INFERD_CHECK(is_float(host.dtype()) && host.is_contiguous(), "bad parameter {} {}",
                 dtype_name(host.dtype()), host.shape_str());
    if (host.ndim() == 1) return place_vector(host);
    Tensor d = alloc(DType::kBF16, host.shape());
    upload_into(host, d.data(), DType::kBF16);
    if (host.ndim() == 2 && host.holder()) {
      // Remember the table, so that a tied lm_head naming the same mmap'd bytes reuses it. The
      // weak holder tells whether those bytes are still the same allocation.
      embed_src_ = host.data();
      embed_src_dtype_ = host.dtype();
      embed_holder_ = host.holder();
      embed_dev_ = d;
    }
    return d;
  }

  // ---- per-step batch -----------------------------------------------------------------------
  void reserve(const StepCapacity& c) override {
    INFERD_CHECK(c.max_tokens > 0 && c.max_blocks_per_seq > 0 && c.max_top_logprobs >= 0,
                 "reserve: bad capacity");
    capacity_ = c;
    const size_t need = layout_ints(c.max_tokens, c.max_tokens, c.max_tokens, c.max_blocks_per_seq,
                                    size_t(std::max<int64_t>(0, c.max_edits)),
                                    size_t(std::max<int64_t>(0, c.max_mask_words)))
                            .total;
    if (need > meta_capacity_) grow_metadata(need);
    rows_cap_ = c.max_tokens;
    if (fp8_max_k_ > 0) {  // FP8 linears: the quantized input rows and their scales
      act_q_ = alloc(DType::kF8E4M3, {int64_t(c.max_tokens), fp8_max_k_});
      act_scales_ = alloc(DType::kF32, {int64_t(c.max_tokens)});
    }
    record_bytes_ = size_t(cuda::logprob_record_bytes(c.max_top_logprobs));
    tokens_bytes_ = (size_t(rows_cap_) * 4 + 255) / 256 * 256;
    results_bytes_ = tokens_bytes_ + size_t(rows_cap_) * record_bytes_;
    results_dev_ = alloc(DType::kU8, {int64_t(results_bytes_)});
    if (results_host_) CU_CHECK(cudaFreeHost(results_host_));
    results_host_ = nullptr;
    CU_CHECK(cudaHostAlloc(&results_host_, results_bytes_, cudaHostAllocDefault));
  }

  const DeviceBatch& prepare_batch(const ForwardBatch& fb, int32_t block_size,
                                   const SamplingBatch* sampling, int32_t pad_to) override {
    CU_CHECK(cudaSetDevice(device_));
    INFERD_CHECK(block_size > 0, "block size {}", block_size);
    const int32_t T0 = fb.num_tokens();
    const int32_t S0 = int32_t(fb.seqs.size());
    const int32_t R0 = int32_t(fb.logit_rows.size());
    const int32_t pad = pad_to > T0 ? pad_to - T0 : 0;
    const int32_t T = T0 + pad, S = S0 + pad, R = R0 + pad;
    INFERD_CHECK(fb.positions.size() == size_t(T0), "{} positions for {} tokens",
                 fb.positions.size(), T0);
    INFERD_CHECK(!sampling || sampling->rows.size() == size_t(R0),
                 "{} sampling rows for {} logit rows", sampling ? sampling->rows.size() : 0, R0);
    int32_t stride = 1, max_q = pad > 0 ? 1 : 0, max_kv = 0, singles = pad;
    for (const auto& sq : fb.seqs) stride = std::max(stride, sq.num_blocks);
    const size_t E = sampling ? sampling->edits.size() : 0;
    const bool late_masks = sampling && sampling->fill_masks && sampling->num_mask_rows > 0;
    const size_t MW = !sampling    ? 0
                      : late_masks ? size_t(sampling->num_mask_rows) * size_t(sampling->mask_words)
                                   : sampling->masks.size();
    INFERD_CHECK(MW == 0 || sampling->mask_words > 0, "{} mask words with rows of 0 words", MW);
    const Layout o = layout_ints(T, S, R, stride, E, MW);
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
    std::copy(fb.token_ids.begin(), fb.token_ids.end(), h + o.ids);
    std::copy(fb.positions.begin(), fb.positions.end(), h + o.pos);
    std::fill(h + o.ids + T0, h + o.ids + T, 0);
    std::fill(h + o.pos + T0, h + o.pos + T, 0);
    std::fill(h + o.slot + T0, h + o.slot + T, -1);
    std::fill(h + o.bt, h + o.bt + size_t(S) * size_t(stride), 0);
    int32_t next_row = 0;
    for (int32_t i = 0; i < S0; ++i) {
      const SeqBatchInfo& sq = fb.seqs[size_t(i)];
      INFERD_CHECK(sq.kv_len >= sq.q_len && sq.q_len >= 0 &&
                       int64_t(sq.num_blocks) * block_size >= sq.kv_len,
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
      max_q = std::max(max_q, sq.q_len);
      max_kv = std::max(max_kv, sq.kv_len);
      singles += sq.q_len == 1 ? 1 : 0;
      const int32_t* bt = fb.block_tables.data() + sq.block_table_offset;
      std::copy(bt, bt + sq.num_blocks, h + o.bt + size_t(i) * size_t(stride));
      for (int32_t j = 0; j < sq.q_len; ++j) {
        const int32_t row = sq.q_start + j;
        const int32_t pos = fb.positions[size_t(row)];
        INFERD_CHECK(pos >= 0 && pos < sq.kv_len, "position {} outside kv_len {}", pos, sq.kv_len);
        h[o.slot + size_t(row)] = bt[pos / block_size] * block_size + pos % block_size;
      }
    }
    INFERD_CHECK(next_row == T0, "sequences cover {} rows of {}", next_row, T0);
    for (int32_t j = 0; j < pad; ++j) {  // padding: one sequence per row, no keys
      h[o.qs + size_t(S0 + j)] = T0 + j;
      h[o.kv + size_t(S0 + j)] = 0;
    }
    h[o.qs + size_t(S)] = T;
    for (int32_t r = 0; r < R0; ++r) {
      const int32_t row = fb.logit_rows[size_t(r)];
      INFERD_CHECK(row >= 0 && row < T0, "logit row {} outside {} tokens", row, T0);
      h[o.rows + size_t(r)] = row;
    }
    for (int32_t j = 0; j < pad; ++j) h[o.rows + size_t(R0 + j)] = T0 + j;
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
    if (MW > 0 && !late_masks) {
      std::memcpy(h + o.masks, sampling->masks.data(), MW * sizeof(uint32_t));
    }

    CU_CHECK(cudaEventRecord(step_start_[step_idx_], stream_));
    step_open_ = true;
    // Late masks: everything before them now, the masks in upload_masks().
    const size_t first_copy = late_masks ? o.masks : o.total;
    CU_CHECK(
        cudaMemcpyAsync(meta_dev_, meta_host_, first_copy * 4, cudaMemcpyHostToDevice, stream_));
    CU_CHECK(cudaEventRecord(meta_ev_, stream_));
    late_mask_offset_ = late_masks ? o.masks : 0;
    late_mask_words_ = late_masks ? MW : 0;

    int32_t* d = meta_dev_;
    b_ = DeviceBatch{};
    b_.num_tokens = T;
    b_.num_seqs = S;
    b_.num_logit_rows = R;
    b_.num_real_rows = R0;
    b_.num_single_token_seqs = singles;
    b_.max_q_len = max_q;
    b_.max_kv_len = max_kv;
    b_.token_ids = d + o.ids;
    b_.positions = d + o.pos;
    b_.slot_mapping = d + o.slot;
    b_.seq_q_start = d + o.qs;
    b_.seq_kv_len = d + o.kv;
    b_.block_tables = d + o.bt;
    b_.max_blocks_per_seq = stride;
    b_.logit_rows = d + o.rows;
    b_.header = d;
    b_.meta = d;
    b_.sampling_rows = reinterpret_cast<const SamplingRow*>(d + o.samp);
    host_ids_ = h + o.ids;
    block_size_ = block_size;
    return b_;
  }

  // ---- kernels --------------------------------------------------------------------------
  void embedding(const Tensor& table, const DeviceBatch& b, float scale, Tensor out) override {
    check_dtype(table, DType::kBF16, "embedding table");
    check_dtype(out, DType::kBF16, "embedding out");
    const Mat t = as_matrix(table, "embedding table"), o = as_matrix(out, "embedding out");
    INFERD_CHECK(t.ld == t.cols && o.cols == t.cols && o.rows >= b.num_tokens,
                 "embedding table {} out {}", table.shape_str(), out.shape_str());
    if (b.token_ids == b_.token_ids) {  // our batch: the ids are still in the pinned buffer
      for (int32_t i = 0; i < b.num_tokens; ++i) {
        const int32_t id = host_ids_[i];
        if (id < 0 || id >= t.rows) fail("token id {} outside vocab {}", id, t.rows);
      }
    }
    CU_CHECK(cuda::launch_embedding(table.data(), t.rows, t.cols, b.token_ids, b.num_tokens, scale,
                                    out.data(), o.ld, stream_));
  }

  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor out) override {
    check_dtype(x, DType::kBF16, "rms_norm x");
    check_dtype(out, DType::kBF16, "rms_norm out");
    const Mat xm = as_matrix(x, "rms_norm x"), om = as_matrix(out, "rms_norm out");
    INFERD_CHECK(om.rows == xm.rows && om.cols == xm.cols, "rms_norm x {} out {}", x.shape_str(),
                 out.shape_str());
    check_vec(w, xm.cols, "rms_norm weight");
    CU_CHECK(cuda::launch_rms_norm(x.data(), xm.ld, w.data_as<float>(), eps, int32_t(xm.rows),
                                   xm.cols, out.data(), om.ld, stream_));
  }

  void add_rms_norm(Tensor residual, const Tensor& x, const Tensor& w, float eps,
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
    CU_CHECK(cuda::launch_add_rms_norm(residual.data(), rm.ld, x.data(), xm.ld, w.data_as<float>(),
                                       eps, int32_t(xm.rows), xm.cols, out.data(), om.ld, stream_));
  }

  void head_rms_norm(Tensor x, int64_t head_dim, const Tensor& w, float eps) override {
    check_dtype(x, DType::kBF16, "head_rms_norm x");
    const Mat xm = as_matrix(x, "head_rms_norm x");
    INFERD_CHECK(head_dim > 0 && xm.cols % head_dim == 0, "head_rms_norm: {} columns, head_dim {}",
                 xm.cols, head_dim);
    check_vec(w, head_dim, "head_rms_norm weight");
    CU_CHECK(cuda::launch_head_rms_norm(x.data(), xm.ld, int32_t(xm.rows), xm.cols / head_dim,
                                        head_dim, w.data_as<float>(), eps, stream_));
  }

  void linear(const Tensor& x, const Linear& w, Tensor out) override {
    check_dtype(x, DType::kBF16, "linear x");
    INFERD_CHECK(out.dtype() == DType::kBF16 || out.dtype() == DType::kF32,
                 "linear out: dtype {} (expected bf16 or f32)", dtype_name(out.dtype()));
    const Mat xm = as_matrix(x, "linear x"), om = as_matrix(out, "linear out");
    const int64_t T = xm.rows, K = w.in_features, N = w.out_features;
    INFERD_CHECK(xm.cols == K && om.cols == N && om.rows == T,
                 "linear shapes x {} W [{}, {}] out {}", x.shape_str(), N, K, out.shape_str());
    const bool fp8 = w.weight_scale.defined();
    INFERD_CHECK(w.parts.size() == 1 && w.parts[0].device() == Device::kCUDA &&
                     w.parts[0].dtype() == (fp8 ? DType::kF8E4M3 : DType::kBF16) &&
                     w.parts[0].size(0) == N,
                 "linear weight was not placed by the CUDA backend");
    if (T == 0) return;
    const bool out_f32 = out.dtype() == DType::kF32;
    if (fp8 && T <= cuda::kFp8GemvMaxTokens && xm.ld % 8 == 0 && alignment_of(x.data()) >= 16) {
      // Decode-sized: one pass over the FP8 weights, the bf16 inputs as they are.
      CU_CHECK(cuda::launch_fp8_gemv(x.data(), xm.ld, int32_t(T), w.parts[0].data_as<uint8_t>(),
                                     w.weight_scale.data_as<float>(),
                                     w.bias.defined() ? w.bias.data_as<float>() : nullptr, N, K,
                                     out.data(), om.ld, out_f32, stream_));
      return;
    }
    const void* b_ptr = x.data();
    int64_t ldb = xm.ld;
    if (fp8) {  // the input rows to FP8, one scale per row (or the static input scale)
      INFERD_CHECK(act_q_.defined() && T <= act_q_.size(0) && K <= act_q_.size(1),
                   "fp8 linear of {} x {} beyond the reserved activation buffer", T, K);
      CU_CHECK(cuda::launch_quantize_rows_fp8(x.data(), xm.ld, T, K, act_q_.data_as<uint8_t>(), K,
                                              act_scales_.data_as<float>(), w.act_scale, stream_));
      b_ptr = act_q_.data();
      ldb = K;
    }
    const ScalePtrs sp{fp8 ? w.weight_scale.data() : nullptr, fp8 ? act_scales_.data() : nullptr};
    const Plan& plan =
        gemm_plan(N, T, K, K, ldb, om.ld, out_f32, w.parts[0].data(), b_ptr, out.data(), sp);
    const float alpha = 1.0f, beta = 0.0f;
    if (fp8) set_scale_pointers(plan, sp);
    CUBLAS_CHECK(cublasLtMatmul(lt_, plan.op, &alpha, w.parts[0].data(), plan.a, b_ptr, plan.b,
                                &beta, out.data(), plan.c, out.data(), plan.c, &plan.algo, gemm_ws_,
                                gemm_ws_bytes_, stream_));
    if (w.bias.defined()) {
      check_vec(w.bias, N, "linear bias");
      CU_CHECK(cuda::launch_add_bias(out.data(), om.ld, out_f32, w.bias.data_as<float>(),
                                     int32_t(T), N, stream_));
    }
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
                               stream_));
  }

  void silu_mul(const Tensor& gate_up, Tensor out) override {
    check_dtype(gate_up, DType::kBF16, "silu_mul gate_up");
    check_dtype(out, DType::kBF16, "silu_mul out");
    const Mat g = as_matrix(gate_up, "silu_mul gate_up"), o = as_matrix(out, "silu_mul out");
    INFERD_CHECK(g.rows == o.rows && g.cols == 2 * o.cols, "silu_mul gate_up {} out {}",
                 gate_up.shape_str(), out.shape_str());
    CU_CHECK(cuda::launch_silu_mul(gate_up.data(), g.ld, int32_t(o.rows), o.cols, out.data(), o.ld,
                                   stream_));
  }

  void gelu_tanh_mul(const Tensor& gate_up, Tensor out) override {
    check_dtype(gate_up, DType::kBF16, "gelu_tanh_mul gate_up");
    check_dtype(out, DType::kBF16, "gelu_tanh_mul out");
    const Mat g = as_matrix(gate_up, "gelu_tanh_mul gate_up"),
              o = as_matrix(out, "gelu_tanh_mul out");
    INFERD_CHECK(g.rows == o.rows && g.cols == 2 * o.cols, "gelu_tanh_mul gate_up {} out {}",
                 gate_up.shape_str(), out.shape_str());
    CU_CHECK(cuda::launch_gelu_tanh_mul(gate_up.data(), g.ld, int32_t(o.rows), o.cols, out.data(),
                                        o.ld, stream_));
  }

  void softcap(Tensor logits, float cap) override {
    check_dtype(logits, DType::kF32, "softcap logits");
    INFERD_CHECK(cap > 0, "softcap: cap {}", cap);
    const Mat m = as_matrix(logits, "softcap logits");
    CU_CHECK(
        cuda::launch_softcap(logits.data_as<float>(), m.ld, int32_t(m.rows), m.cols, cap, stream_));
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
                                   kv.k.data(), kv.v.data(), stream_));
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
    CU_CHECK(cuda::launch_rope_write_kv(
        qkv.data(), q.ld, b.num_tokens, nh, nkv, hd, rope.inv_freq.data_as<float>(),
        rope.attention_scaling, b.positions, b.slot_mapping, kv.k.data(), kv.v.data(), stream_));
  }

  void attention(const Tensor& qkv, int64_t nh, int64_t nkv, const KvLayer& kv, float scale,
                 int64_t window, const DeviceBatch& b, Tensor out) override {
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
    // Sequences with several new tokens (prefill chunks) go to the tensor-core kernel, the rest
    // (decode rows) to the split-KV kernel; a batch may hold both.
    const bool prefill_kernel = b.max_q_len > 1 && cuda::prefill_attention_supported(int32_t(hd));
    if (prefill_kernel) CU_CHECK(cuda::launch_prefill_attention(p, b.max_q_len, stream_));
    if (prefill_kernel && b.num_single_token_seqs == 0) return;
    p.single_token_seqs_only = prefill_kernel;
    p.num_splits = cuda::attention_splits(b.num_tokens, int32_t(nkv), num_sms_);
    if (p.num_splits > 1) {
      const int64_t rows = cuda::attention_partial_rows(int32_t(nh), int32_t(nkv), num_sms_);
      INFERD_CHECK(int64_t(b.num_tokens) * nh * p.num_splits <= rows,
                   "attention partial buffer too small");
      ensure_partial(rows, hd);
      p.partial_acc = partial_acc_.data_as<float>();
      p.partial_m = partial_m_.data_as<float>();
      p.partial_l = partial_l_.data_as<float>();
    }
    CU_CHECK(cuda::launch_attention(p, stream_));
  }

  void gather_rows(const Tensor& x, const DeviceBatch& b, Tensor out) override {
    INFERD_CHECK(x.dtype() == out.dtype(), "gather_rows: x {} out {}", dtype_name(x.dtype()),
                 dtype_name(out.dtype()));
    const Mat xm = as_matrix(x, "gather_rows x"), om = as_matrix(out, "gather_rows out");
    INFERD_CHECK(om.cols == xm.cols && om.rows >= b.num_logit_rows, "gather_rows x {} out {}",
                 x.shape_str(), out.shape_str());
    const int64_t es = int64_t(dtype_size(x.dtype()));
    CU_CHECK(cuda::launch_gather_rows(x.data(), xm.ld * es, xm.cols * es, b.logit_rows,
                                      b.num_logit_rows, out.data(), om.ld * es, stream_));
  }

  void copy_to_host_f32(const Tensor& x, float* dst) override {
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
        CU_CHECK(cudaStreamSynchronize(stream_));
        if (down_host_) CU_CHECK(cudaFreeHost(down_host_));
        down_host_ = nullptr;
        down_bytes_ = 0;
        CU_CHECK(cudaHostAlloc(&down_host_, n * es, cudaHostAllocDefault));
        down_bytes_ = n * es;
      }
      host = down_host_;
    }
    if (m.rows == 1 || m.ld == m.cols) {
      CU_CHECK(cudaMemcpyAsync(host, x.data(), n * es, cudaMemcpyDeviceToHost, stream_));
    } else {
      CU_CHECK(cudaMemcpy2DAsync(host, size_t(m.cols) * es, x.data(), size_t(m.ld) * es,
                                 size_t(m.cols) * es, size_t(m.rows), cudaMemcpyDeviceToHost,
                                 stream_));
    }
    CU_CHECK(cudaStreamSynchronize(stream_));
    if (host != dst) convert(host, x.dtype(), dst, DType::kF32, int64_t(n));
  }

  // ---- sampling on the device ----------------------------------------------------------------
  bool samples_on_device() const override { return true; }

  void sample(const Tensor& logits, const DeviceBatch& b, int32_t row0) override {
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
    CU_CHECK(cuda::launch_sampler(p, stream_));
  }

  void upload_masks(const DeviceBatch& b, const SamplingBatch& sampling) override {
    (void)b;
    if (late_mask_words_ == 0) return;
    INFERD_CHECK(sampling.fill_masks, "late masks announced by prepare_batch but no fill_masks");
    // The host builds the masks now, while the device runs the work queued before; the copy
    // follows that work on the stream.
    sampling.fill_masks(reinterpret_cast<uint32_t*>(meta_host_ + late_mask_offset_));
    CU_CHECK(cudaMemcpyAsync(meta_dev_ + late_mask_offset_, meta_host_ + late_mask_offset_,
                             late_mask_words_ * 4, cudaMemcpyHostToDevice, stream_));
    CU_CHECK(cudaEventRecord(meta_ev_, stream_));
    late_mask_offset_ = late_mask_words_ = 0;
  }

  void finish_samples(const DeviceBatch& b, const SamplingBatch& sampling,
                      std::span<SampledToken> out) override {
    const size_t R = out.size();
    INFERD_CHECK(R <= size_t(b.num_logit_rows) && R == sampling.rows.size(),
                 "finish_samples: {} outputs, {} sampling rows, {} logit rows", R,
                 sampling.rows.size(), b.num_logit_rows);
    bool any_lp = false;
    for (const SamplingRow& r : sampling.rows) any_lp |= r.num_logprobs >= 0;
    const size_t bytes = any_lp ? tokens_bytes_ + R * record_bytes_ : R * 4;
    if (bytes > 0) {
      CU_CHECK(cudaMemcpyAsync(results_host_, results_dev_.data(), bytes, cudaMemcpyDeviceToHost,
                               stream_));
    }
    CU_CHECK(cudaEventRecord(step_end_[step_idx_], stream_));
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

  StepTiming step_timing() const override { return timing_; }
  void set_gemm_tuning(bool on) override { gemm_tuning_ = on; }
  int64_t device_bytes_allocated() const override { return allocated_bytes_; }
  void reset_step_timing() override {
    timing_ = StepTiming{};
    have_prev_step_ = false;
    step_open_ = false;
  }

  // ---- CUDA graphs ----------------------------------------------------------------------------
  bool supports_graphs() const override { return true; }

  void begin_graph_capture() override {
    CU_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  }

  void end_graph_capture(int32_t key) override {
    cudaGraph_t graph = nullptr;
    CU_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    (void)cudaGraphDestroy(graph);
    CU_CHECK(e);
    auto it = graphs_.find(key);
    if (it != graphs_.end()) (void)cudaGraphExecDestroy(it->second);
    graphs_[key] = exec;
  }

  bool replay_graph(int32_t key) override {
    auto it = graphs_.find(key);
    if (it == graphs_.end()) return false;
    CU_CHECK(cudaGraphLaunch(it->second, stream_));
    return true;
  }

  // ---- helpers behind cuda_backend.h --------------------------------------------------------
  Tensor upload(const Tensor& host, DType dtype) {
    INFERD_CHECK(host.device() == Device::kCPU && is_float(host.dtype()) && is_float(dtype),
                 "cuda_upload: {} tensor to {}", dtype_name(host.dtype()), dtype_name(dtype));
    Tensor d = alloc(dtype, host.shape());
    upload_into(host, d.data(), dtype);
    return d;
  }

  void poison(const Tensor& t) {
    const Mat m = as_matrix(t, "cuda_poison");
    const size_t es = dtype_size(t.dtype());
    if (m.rows == 1 || m.ld == m.cols) {
      CU_CHECK(cudaMemsetAsync(t.data(), 0xFF, size_t(m.rows) * size_t(m.cols) * es, stream_));
    } else {
      CU_CHECK(cudaMemset2DAsync(t.data(), size_t(m.ld) * es, 0xFF, size_t(m.cols) * es,
                                 size_t(m.rows), stream_));
    }
  }

  Tensor random_tensor(DType dtype, std::span<const int64_t> shape, uint64_t seed, float stddev,
                       float fill) override {
    Tensor t = alloc(dtype, shape);
    fill_random(t, seed, stddev, fill);
    return t;
  }

  void fill_random(const Tensor& t, uint64_t seed, float stddev, float fill) {
    INFERD_CHECK(t.device() == Device::kCUDA && t.is_contiguous(),
                 "cuda_fill_random: contiguous CUDA tensor expected");
    CU_CHECK(cuda::launch_fill_random(t.data(), dtype_code(t.dtype()), t.numel(), seed, stddev,
                                      fill, stream_));
  }

  void synchronize() { CU_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  static constexpr int kGemmCandidates = 8;
  static constexpr int kAutotuneReps = 5;

  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  using PlanKey = std::array<int64_t, 11>;
  // FP8 GEMMs: the per-output-channel weight scales (A) and per-row input scales (B), both fp32
  // vectors (cuBLASLt's outer-vector scaling); null for bf16 GEMMs.
  struct ScalePtrs {
    const void* a;
    const void* b;
  };
  void set_scale_pointers(const Plan& p, const ScalePtrs& sp) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sp.a,
                                                sizeof(sp.a)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sp.b,
                                                sizeof(sp.b)));
  }

  // Row-major out [T, N] = x [T, K] W [N, K]^T, seen column-major: C (N x T, ld ldc) =
  // op(A) (N x K) * B (K x T), where A is W read as a column-major K x N matrix (ld lda) and
  // transposed, and B is x read as a column-major K x T matrix (ld ldb).
  const Plan& gemm_plan(int64_t N, int64_t T, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                        bool out_f32, const void* a, const void* b, const void* c,
                        const ScalePtrs& sp) {
    const bool fp8 = sp.a != nullptr;
    const uint32_t al_a = alignment_of(a), al_b = alignment_of(b), al_c = alignment_of(c);
    const PlanKey key{N, T, K, lda, ldb, ldc, out_f32 ? 1 : 0, al_a, al_b, al_c, fp8 ? 1 : 0};
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    Plan p;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    const cudaDataType_t in_type = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, in_type, uint64_t(K), uint64_t(N), lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, in_type, uint64_t(K), uint64_t(T), ldb));
    if (fp8) {
      const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode,
                                                  sizeof(mode)));
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode,
                                                  sizeof(mode)));
      set_scale_pointers(p, sp);
    }
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, out_f32 ? CUDA_R_32F : CUDA_R_16BF, uint64_t(N),
                                            uint64_t(T), ldc));
    cublasLtMatmulPreference_t pref = nullptr;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = gemm_ws_bytes_;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));
    std::array<cublasLtMatmulHeuristicResult_t, kGemmCandidates> res{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_, p.op, p.a, p.b, p.c, p.c, pref,
                                                             kGemmCandidates, res.data(), &found);
    (void)cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
      (void)cublasLtMatrixLayoutDestroy(p.a);
      (void)cublasLtMatrixLayoutDestroy(p.b);
      (void)cublasLtMatrixLayoutDestroy(p.c);
      (void)cublasLtMatmulDescDestroy(p.op);
      throw Error(fmt::format(
          "cuBLASLt found no {} GEMM algorithm for out [{}, {}] = x [{}, {}] W^T (lds {} {} {}, "
          "alignment {} {} {}): {}",
          fp8 ? "fp8" : "bf16", T, N, T, K, lda, ldb, ldc, al_a, al_b, al_c,
          cublasLtGetStatusString(st)));
    }
    p.algo = res[0].algo;
    // While tuning (the shapes CUDA graphs replay, step after step, warmed up at start-up): time
    // the candidates once on the real operands and keep the fastest. Other shapes (prefill and
    // mixed steps of every length) keep the heuristic's first choice: timing synchronises.
    if (found > 1 && gemm_tuning_ && !capturing()) {
      float best = INFINITY;
      const float alpha = 1.0f, beta = 0.0f;
      for (int i = 0; i < found; ++i) {
        auto run = [&] {
          return cublasLtMatmul(lt_, p.op, &alpha, a, p.a, b, p.b, &beta, const_cast<void*>(c), p.c,
                                const_cast<void*>(c), p.c, &res[size_t(i)].algo, gemm_ws_,
                                gemm_ws_bytes_, stream_);
        };
        if (run() != CUBLAS_STATUS_SUCCESS) continue;
        CU_CHECK(cudaEventRecord(tune_ev_[0], stream_));
        bool ok = true;
        for (int rep = 0; rep < kAutotuneReps && ok; ++rep) ok = run() == CUBLAS_STATUS_SUCCESS;
        CU_CHECK(cudaEventRecord(tune_ev_[1], stream_));
        CU_CHECK(cudaEventSynchronize(tune_ev_[1]));
        float ms = 0;
        CU_CHECK(cudaEventElapsedTime(&ms, tune_ev_[0], tune_ev_[1]));
        if (ok && ms < best) {
          best = ms;
          p.algo = res[size_t(i)].algo;
        }
      }
      ++autotuned_shapes_;
    }
    return plans_.emplace(key, p).first->second;
  }

  // Host tensor -> device memory in `dst_dtype`, through the pinned staging halves: the host
  // converts one chunk while the previous one is being copied.
  void upload_into(const Tensor& host, void* dst, DType dst_dtype) {
    INFERD_CHECK(host.device() == Device::kCPU && host.is_contiguous() && is_float(host.dtype()),
                 "upload of a {} {} tensor", dtype_name(host.dtype()), host.shape_str());
    const int64_t n = host.numel();
    const size_t des = dtype_size(dst_dtype), ses = dtype_size(host.dtype());
    const int64_t chunk = int64_t(staging_half_ / des);
    int half = 0;
    for (int64_t i0 = 0; i0 < n; i0 += chunk, half ^= 1) {
      const int64_t m = std::min(chunk, n - i0);
      CU_CHECK(cudaEventSynchronize(staging_ev_[half]));
      convert(static_cast<const char*>(host.data()) + size_t(i0) * ses, host.dtype(),
              staging_[half], dst_dtype, m);
      CU_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + size_t(i0) * des, staging_[half],
                               size_t(m) * des, cudaMemcpyHostToDevice, stream_));
      CU_CHECK(cudaEventRecord(staging_ev_[half], stream_));
    }
  }

  // fp32 device copy of a 1-D parameter (host or device, any float dtype).
  Tensor place_vector(const Tensor& v) {
    if (v.device() == Device::kCUDA) {
      check_dtype(v, DType::kF32, "device vector parameter");
      return v;
    }
    Tensor d = alloc(DType::kF32, {v.numel()});
    upload_into(v, d.data(), DType::kF32);
    return d;
  }

  void check_kv(const KvLayer& kv, int64_t nkv) const {
    INFERD_CHECK(kv.k.defined() && kv.v.defined() && kv.k.device() == Device::kCUDA &&
                     kv.k.dtype() == DType::kBF16 && kv.v.dtype() == DType::kBF16 &&
                     kv.k.ndim() == 4 && kv.k.size(2) == nkv && kv.k.is_contiguous() &&
                     kv.v.is_contiguous() && kv.v.numel() == kv.k.numel(),
                 "KV cache: k {} v {} (expected bf16 [blocks, block_size, {}, head_dim])",
                 kv.k.shape_str(), kv.v.shape_str(), nkv);
    INFERD_CHECK(kv.k.size(1) == block_size_, "KV cache block size {} but the batch uses {}",
                 kv.k.size(1), block_size_);
  }

  // Int offsets of the metadata segments (each 128-byte aligned): header, token ids, positions,
  // slots, q starts, kv lengths, logit rows, sampling rows, block tables, edits. Everything but the
  // edits sits at offsets that depend only on (T, S, R), so a graph captured for a batch size reads
  // the right places; the block-table stride and the edits offset are in the header.
  struct Layout {
    size_t ids, pos, slot, qs, kv, rows, samp, bt, edits, masks, total;
  };
  static constexpr size_t kHeaderIntsPadded = 32;
  static_assert(cuda::kHeaderInts <= int(kHeaderIntsPadded));
  static Layout layout_ints(int32_t T, int32_t S, int32_t R, int32_t stride, size_t edits,
                            size_t mask_words) {
    auto seg = [](size_t n) { return (n + 31) / 32 * 32; };
    Layout o;
    o.ids = kHeaderIntsPadded;
    o.pos = o.ids + seg(size_t(T));
    o.slot = o.pos + seg(size_t(T));
    o.qs = o.slot + seg(size_t(T));
    o.kv = o.qs + seg(size_t(S) + 1);
    o.rows = o.kv + seg(size_t(S));
    o.samp = o.rows + seg(size_t(R));
    o.bt = o.samp + seg(size_t(R) * sizeof(SamplingRow) / 4);
    o.edits = o.bt + seg(size_t(S) * size_t(stride));
    o.masks = o.edits + seg(edits * sizeof(LogitEdit) / 4);
    o.total = o.masks + seg(mask_words);
    return o;
  }
  static_assert(sizeof(SamplingRow) % 8 == 0 && sizeof(LogitEdit) % 4 == 0);

  bool capturing() const {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    CU_CHECK(cudaStreamIsCapturing(stream_, &st));
    return st != cudaStreamCaptureStatusNone;
  }

  void drop_graphs() {
    for (auto& [key, exec] : graphs_) (void)cudaGraphExecDestroy(exec);
    graphs_.clear();
  }

  void account_step() {
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

  void ensure_partial(int64_t rows, int64_t hd) {
    if (partial_m_.defined() && partial_m_.numel() >= rows && partial_hd_ >= hd) return;
    INFERD_CHECK(!capturing(), "attention partial buffers must exist before graph capture");
    partial_acc_ = alloc(DType::kF32, {rows * hd});
    partial_m_ = alloc(DType::kF32, {rows});
    partial_l_ = alloc(DType::kF32, {rows});
    partial_hd_ = hd;
  }

  void grow_metadata(size_t ints) {
    drop_graphs();  // they point into the old buffer
    if (meta_host_ || meta_dev_) CU_CHECK(cudaStreamSynchronize(stream_));
    if (meta_host_) CU_CHECK(cudaFreeHost(meta_host_));
    if (meta_dev_) CU_CHECK(cudaFree(meta_dev_));
    meta_host_ = nullptr;
    meta_dev_ = nullptr;
    meta_capacity_ = 0;
    CU_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&meta_host_), ints * 4, cudaHostAllocDefault));
    CU_CHECK(cudaMalloc(reinterpret_cast<void**>(&meta_dev_), ints * 4));
    allocated_bytes_ += int64_t(ints * 4);
    meta_capacity_ = ints;
  }

  int device_;
  CudaBackendOptions opts_;
  std::string description_;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* gemm_ws_ = nullptr;
  size_t gemm_ws_bytes_ = 0;
  int64_t fp8_max_k_ = 0;  // widest input of an FP8 linear
  bool fp8_fallback_warned_ = false;
  Tensor act_q_, act_scales_;  // FP8 input rows [max_tokens, fp8_max_k_] and their scales
  std::map<PlanKey, Plan> plans_;
  int64_t autotuned_shapes_ = 0;
  bool gemm_tuning_ = false;
  int64_t allocated_bytes_ = 0;

  size_t staging_half_ = 0;
  void* staging_[2] = {nullptr, nullptr};
  cudaEvent_t staging_ev_[2] = {nullptr, nullptr};

  int32_t* meta_host_ = nullptr;  // pinned
  int32_t* meta_dev_ = nullptr;
  size_t meta_capacity_ = 0;  // int32 elements
  cudaEvent_t meta_ev_ = nullptr;
  size_t late_mask_offset_ = 0, late_mask_words_ = 0;  // masks upload_masks() still has to copy
  const int32_t* host_ids_ = nullptr;
  DeviceBatch b_;
  int32_t block_size_ = 0;

  void* down_host_ = nullptr;  // pinned, for bf16 -> f32 downloads
  size_t down_bytes_ = 0;

  int num_sms_ = 1;
  StepCapacity capacity_;
  int32_t rows_cap_ = 0;
  size_t record_bytes_ = 0, tokens_bytes_ = 0, results_bytes_ = 0;
  Tensor results_dev_;            // [tokens | logprob records] of the step
  void* results_host_ = nullptr;  // pinned twin
  Tensor partial_acc_, partial_m_, partial_l_;
  int64_t partial_hd_ = 0;
  std::map<int32_t, cudaGraphExec_t> graphs_;
  cudaEvent_t step_start_[2] = {nullptr, nullptr}, step_end_[2] = {nullptr, nullptr};
  int step_idx_ = 0;
  bool step_open_ = false, have_prev_step_ = false;
  StepTiming timing_;
  cudaEvent_t tune_ev_[2] = {nullptr, nullptr};

  const void* embed_src_ = nullptr;
  DType embed_src_dtype_ = DType::kF32;
  std::weak_ptr<void> embed_holder_;
  Tensor embed_dev_;
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
