// CUDA graph capture and replay (cuda_graphs.h).
#include "backend/cuda/cuda_graphs.h"

namespace inferd::cuda_impl {

void CudaGraphs::begin_capture() {
  CU_CHECK(cudaStreamBeginCapture(ctx_.stream(), cudaStreamCaptureModeThreadLocal));
}

void CudaGraphs::end_capture(int32_t key) {
  cudaGraph_t graph = nullptr;
  CU_CHECK(cudaStreamEndCapture(ctx_.stream(), &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  CU_CHECK(e);
  auto it = graphs_.find(key);
  if (it != graphs_.end()) (void)cudaGraphExecDestroy(it->second);
  graphs_[key] = exec;
}

bool CudaGraphs::replay(int32_t key) {
  auto it = graphs_.find(key);
  if (it == graphs_.end()) return false;
  CU_CHECK(cudaGraphLaunch(it->second, ctx_.stream()));
  return true;
}

void CudaGraphs::drop() {
  for (auto& [key, exec] : graphs_) (void)cudaGraphExecDestroy(exec);
  graphs_.clear();
}

}  // namespace inferd::cuda_impl
