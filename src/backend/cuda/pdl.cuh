// Programmatic dependent launch (sm_90, griddepcontrol): a kernel launched with launch_pdl may
// start while the kernel before it in the stream still runs. It does what reads no earlier
// kernel's output (a GEMV's first weight loads) and then calls pdl_wait(), which returns once the
// previous kernel's grid has finished and its memory is visible; every thread of a launch_pdl
// kernel calls pdl_wait() before it reads or writes anything another kernel touches, and before it
// exits, so that each kernel still finishes after the one before it (a stream keeps its order,
// graph replays too). pdl_launch_dependents() lets the next kernel launch early; called after the
// wait, at most two kernels overlap. Without the launch attribute (INFERD_CUDA_PDL=0, or a kernel
// launched with <<<>>>), both are no-ops.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace inferd::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Brings the line at p into L2 (what a kernel may read before pdl_wait(): weights).
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

// Whether launch_pdl sets the attribute: the device is sm_90 or newer and INFERD_CUDA_PDL is not
// "0" (read once; kernels.cu).
bool pdl_enabled();

template <typename... Params, typename... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                       cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace inferd::cuda
