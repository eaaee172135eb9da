// The CUDA backend: bf16 weights, activations and KV cache on one GPU, one CUDA stream, GEMMs
// through cuBLASLt, the other ops through the kernels in kernels.cu. Include from .cc files only
// (this header pulls in the Tensor/fmt headers, which nvcc cannot compile).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "backend/backend.h"

namespace inferd {

struct CudaBackendOptions {
  // Per-step batch metadata (pinned host buffer and its device twin); grows, after a
  // synchronisation, if a batch ever needs more.
  size_t metadata_bytes = size_t(4) << 20;
  // Pinned staging for weight uploads (two halves, so conversion overlaps the copy).
  size_t staging_bytes = size_t(64) << 20;
  // cuBLASLt workspace.
  size_t gemm_workspace_bytes = size_t(32) << 20;
};

// Creates the backend on CUDA device `device`. Throws Error when there is no such device.
std::unique_ptr<Backend> make_cuda_backend(int device, const CudaBackendOptions& options = {});

// ---- helpers for tests and tools; `backend` must come from make_cuda_backend ------------------
// A contiguous device copy of a host tensor (f32/bf16/f16) in `dtype` (f32, bf16 or f16).
Tensor cuda_upload(Backend& backend, const Tensor& host, DType dtype);
// A host f32 copy of a device tensor (waits for the stream).
Tensor cuda_download_f32(Backend& backend, const Tensor& device_tensor);
// Fills every byte of a (contiguous or row-strided 2-D) device tensor with 0xFF: NaN in f32,
// bf16 and f16, so unwritten outputs show.
void cuda_poison(Backend& backend, const Tensor& device_tensor);
// Seeded uniform random values with standard deviation `stddev` (all `fill` when stddev is 0) in a
// contiguous f32/bf16/f16 device tensor; element i depends only on (seed, i). This is what
// `--load-format dummy` should use to fill weights on the device (see the report of issue 6).
void cuda_fill_random(Backend& backend, const Tensor& device_tensor, uint64_t seed, float stddev,
                      float fill = 0.f);
// A new device tensor filled by cuda_fill_random. make_param returns device tensors as they are
// and make_linear concatenates device parts on the device, so `--load-format dummy` can create
// its weights on the GPU with this instead of on the host (needs the decoder change described
// in the report of issue 6).
Tensor cuda_random_tensor(Backend& backend, DType dtype, std::span<const int64_t> shape,
                          uint64_t seed, float stddev, float fill = 0.f);
// Waits for all work queued on the backend's stream.
void cuda_synchronize(Backend& backend);

}  // namespace inferd
