// Host-side helpers of the CUDA backend (cuda_common.h).
#include "backend/cuda/cuda_common.h"

#include <cstring>
#include <memory>

#include "backend/cuda/cuda_device.h"
#include "backend/cuda/cuda_vmm.h"

namespace inferd::cuda_impl {

bool is_sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorLaunchTimeout:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorNvlinkUncorrectable:
    case cudaErrorContextIsDestroyed:
    case cudaErrorExternalDevice:
    case cudaErrorUnknown:
      return true;
    default:
      return false;
  }
}

void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  if (is_sticky(e)) {
    int device = -1;
    (void)cudaGetDevice(&device);
    throw DeviceFault(fmt::format(
        "device fault on CUDA device {}: {} ({}) from {} at {}:{}; the GPU can run nothing more "
        "in this process (check `nvidia-smi -q` and the kernel log for Xid / ECC errors)",
        device, cudaGetErrorName(e), cudaGetErrorString(e), what, file, line));
  }
  throw Error(
      fmt::format("CUDA error '{}' from {} at {}:{}", cudaGetErrorString(e), what, file, line));
}

bool is_float(DType t) {
  return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16;
}

namespace {

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

}  // namespace

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

uint32_t alignment_of(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && u % a != 0) a /= 2;
  return a;
}

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

void check_vec(const Tensor& w, int64_t n, const char* what) {
  INFERD_CHECK(w.defined() && w.device() == Device::kCUDA && w.dtype() == DType::kF32 &&
                   w.numel() == n && w.is_contiguous(),
               "{}: expected a CUDA fp32 vector of {} elements, got {} {}", what, n,
               dtype_name(w.dtype()), w.shape_str());
}

CudaContext::CudaContext(int device) : device_(device) {
  const int n = cuda::device_count();
  if (device < 0 || device >= n)
    fail("CUDA device {} does not exist ({} CUDA devices found)", device, n);
  CU_CHECK(cudaSetDevice(device_));
  description_ = cuda::device_description(device_);
  CU_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CU_CHECK(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device_));
}

CudaContext::~CudaContext() {
  (void)cudaSetDevice(device_);
  (void)cudaStreamSynchronize(stream_);
  (void)cudaStreamDestroy(stream_);
}

Tensor CudaContext::alloc(DType dtype, std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  const size_t bytes = std::max<size_t>(size_t(n) * dtype_size(dtype), 1);
  VmmPool* pool = tag_ == MemoryTag::kWeights   ? weights_pool_.get()
                  : tag_ == MemoryTag::kKvCache ? kv_pool_.get()
                                                : nullptr;
  if (pool) {
    std::shared_ptr<void> holder = pool->allocate(bytes);
    allocated_bytes_ += int64_t((bytes + 255) / 256 * 256);
    CU_CHECK(cudaMemsetAsync(holder.get(), 0, bytes, stream_));
    void* p = holder.get();
    return Tensor(p, dtype, shape, Device::kCUDA, std::move(holder));
  }
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, (bytes + 255) / 256 * 256);
  if (e != cudaSuccess) {
    if (is_sticky(e)) CU_CHECK(e);
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    fail(
        "out of GPU memory allocating {} MiB on CUDA device {} ({}): {} MiB free of {} MiB, {} "
        "MiB allocated by inferd so far (the rest is held by the CUDA context and other "
        "processes). Free the GPU, load a smaller model or quantize it (--quantization fp8), or "
        "lower --max-num-batched-tokens / --max-num-seqs (the workspace) and --max-model-len",
        bytes >> 20, device_, cudaGetErrorString(e), free_b >> 20, total_b >> 20,
        allocated_bytes_ >> 20);
  }
  allocated_bytes_ += int64_t((bytes + 255) / 256 * 256);
  std::shared_ptr<void> holder(p, [](void* q) { (void)cudaFree(q); });
  CU_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  return Tensor(p, dtype, shape, Device::kCUDA, std::move(holder));
}

void* CudaContext::alloc_raw(size_t bytes) {
  void* p = nullptr;
  CU_CHECK(cudaMalloc(&p, bytes));
  allocated_bytes_ += int64_t(bytes);
  return p;
}

void CudaContext::enable_sleep_mode() {
  if (weights_pool_) return;
  weights_pool_ = VmmPool::create(device_, "weights");
  kv_pool_ = VmmPool::create(device_, "KV cache");
}

int64_t CudaContext::sleep_memory(int level) {
  INFERD_CHECK(weights_pool_, "sleep_memory without sleep mode");
  CU_CHECK(cudaSetDevice(device_));
  synchronize();
  int64_t released = kv_pool_->release(false, stream_);
  released += weights_pool_->release(level == 1, stream_);
  return released;
}

void CudaContext::wake_memory(int level) {
  (void)level;  // what was kept decides: level 1 copies the weights back, level 2 maps zeros
  INFERD_CHECK(weights_pool_, "wake_memory without sleep mode");
  CU_CHECK(cudaSetDevice(device_));
  weights_pool_->restore(stream_);
  kv_pool_->restore(stream_);
}

bool CudaContext::capturing() const {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  CU_CHECK(cudaStreamIsCapturing(stream_, &st));
  return st != cudaStreamCaptureStatusNone;
}

void CudaContext::synchronize() const {
  CU_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace inferd::cuda_impl
