// Host-side helpers shared by the CUDA backend's files (host compiler only: uses fmt through
// core/error.h): error checks, dtype conversion on the host, matrix views of device tensors, and
// the CudaContext every part of the backend shares (device, stream, allocation).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include "backend/backend_types.h"
#include "core/error.h"
#include "core/tensor.h"

namespace inferd::cuda_impl {

// Throws DeviceFault for a sticky error (is_sticky: the context is unusable), Error otherwise.
void check_cuda(cudaError_t e, const char* what, const char* file, int line);
// Errors after which every CUDA call of the process fails (illegal address, launch failure,
// uncorrectable ECC, device-side assert, ...).
bool is_sticky(cudaError_t e);
#define CU_CHECK(expr) ::inferd::cuda_impl::check_cuda((expr), #expr, __FILE__, __LINE__)

bool is_float(DType t);
// n elements from src (dtype s) to dst (dtype d), both host memory (f32, bf16, f16).
void convert(const void* src, DType s, void* dst, DType d, int64_t n);
// 0 = fp32, 1 = bf16, 2 = f16: the dtype codes of the random-fill kernel.
int dtype_code(DType t);
// Largest power of two (at most 256) that divides the address.
uint32_t alignment_of(const void* p);

// Row-major view of a device tensor as [rows, cols] with row stride `ld` (elements).
struct Mat {
  int64_t rows, cols, ld;
};
Mat as_matrix(const Tensor& t, const char* what);
void check_dtype(const Tensor& t, DType want, const char* what);
// Norm weights, biases and inv_freq: fp32 on the device with `n` elements.
void check_vec(const Tensor& w, int64_t n, const char* what);

// What every part of the backend shares: the device, its one stream, and allocation (accounted,
// so tests can prove nothing is allocated per step).
class VmmPool;

class CudaContext {
 public:
  explicit CudaContext(int device);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  int num_sms() const { return num_sms_; }
  const std::string& description() const { return description_; }
  // A zeroed device tensor; throws Error (out of GPU memory) naming the size.
  Tensor alloc(DType dtype, std::span<const int64_t> shape);
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape) {
    return alloc(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  // Raw device bytes counted in allocated_bytes() (the caller frees them with cudaFree).
  void* alloc_raw(size_t bytes);
  int64_t allocated_bytes() const { return allocated_bytes_; }
  // Sleep mode (DeviceRuntime's contract): from now on alloc() under MemoryTag::kWeights and
  // kKvCache goes through a VmmPool each (cuda_vmm.h), whose memory sleep_memory() releases and
  // wake_memory() maps back at the same addresses.
  void enable_sleep_mode();
  void set_memory_tag(MemoryTag tag) { tag_ = tag; }
  int64_t sleep_memory(int level);
  void wake_memory(int level);
  bool capturing() const;  // the stream is recording a graph
  void synchronize() const;

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  int num_sms_ = 1;
  std::string description_;
  int64_t allocated_bytes_ = 0;
  MemoryTag tag_ = MemoryTag::kOther;
  std::shared_ptr<VmmPool> weights_pool_, kv_pool_;  // sleep mode only
};

}  // namespace inferd::cuda_impl
