// CUDA graphs of the backend's stream: capture (work issued between begin and end is recorded,
// not run), replay by key (the runner keys decode steps by their padded batch size), and drop
// (when a buffer the recorded kernels point into is reallocated).
#pragma once

#include <map>

#include "backend/cuda/cuda_common.h"

namespace inferd::cuda_impl {

class CudaGraphs {
 public:
  explicit CudaGraphs(CudaContext& ctx) : ctx_(ctx) {}
  ~CudaGraphs() { drop(); }
  CudaGraphs(const CudaGraphs&) = delete;
  CudaGraphs& operator=(const CudaGraphs&) = delete;

  void begin_capture();
  void end_capture(int32_t key);
  bool replay(int32_t key);
  void drop();
  bool empty() const { return graphs_.empty(); }

 private:
  CudaContext& ctx_;
  std::map<int32_t, cudaGraphExec_t> graphs_;
};

}  // namespace inferd::cuda_impl
