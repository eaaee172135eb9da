// Device memory that can leave the GPU and come back at the same addresses, for sleep mode (vLLM's
// --enable-sleep-mode): CUDA's virtual memory management, the approach of vLLM's CuMemAllocator.
// Each allocation gets its own range of addresses (cuMemAddressReserve) backed by physical memory
// (cuMemCreate, cuMemMap, cuMemSetAccess; sizes rounded up to cuMemGetAllocationGranularity, small
// allocations cut from a shared chunk of one granule). Sleep copies the chunks to pinned host
// memory when asked, then unmaps and releases the physical memory but keeps the address ranges;
// wake maps new physical memory at the same addresses and copies back, so pointers held anywhere
// (CUDA graphs, tensors) stay valid. The driver functions are looked up through the runtime
// (cudaGetDriverEntryPointByVersion): the backend links no libcuda, and a binary without a GPU
// driver still starts.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace inferd::cuda_impl {

struct VmmDriver;

class VmmPool : public std::enable_shared_from_this<VmmPool> {
 public:
  // A pool on CUDA device `device`; `name` names it in errors ("weights", "KV cache"). Throws
  // Error when the device or the driver has no virtual memory management.
  static std::shared_ptr<VmmPool> create(int device, std::string name);
  ~VmmPool();
  VmmPool(const VmmPool&) = delete;
  VmmPool& operator=(const VmmPool&) = delete;

  // `bytes` of device memory (not zeroed) whose holder frees it. Throws Error (out of GPU memory)
  // naming the size. Not while released.
  std::shared_ptr<void> allocate(size_t bytes);
  // Physical bytes of the live chunks (mapped now, or to be mapped back by restore()).
  int64_t chunk_bytes() const;
  // Waits for `stream`; with `keep` copies every chunk into pinned host memory (allocated at the
  // first such release and kept; grown when the chunks outgrow it), then unmaps and releases the
  // physical memory, keeping the addresses. Returns the bytes released.
  int64_t release(bool keep, cudaStream_t stream);
  // Maps new physical memory at the same addresses and copies the kept bytes back (zeros where
  // nothing was kept); waits for `stream`. Chunks still mapped are left as they are.
  void restore(cudaStream_t stream);
  bool released() const { return released_; }
  size_t granularity() const { return granularity_; }

 private:
  struct Chunk {
    size_t size = 0;
    CUmemGenericAllocationHandle handle = 0;
    bool mapped = false;
    int live = 0;     // allocations cut from it that are not freed
    size_t used = 0;  // bytes handed out (the shared chunk of small allocations)
    size_t host_offset = 0;
    bool kept = false;  // its bytes wait in host_ (released with keep)
  };
  VmmPool(int device, std::string name);
  // Physical memory for the chunk at `va`, mapped read-write for this device.
  void map_chunk(CUdeviceptr va, Chunk& c);
  void unmap_chunk(CUdeviceptr va, Chunk& c);
  void free_at(CUdeviceptr chunk_base);
  // Waits for all work on device_ (before memory is unmapped).
  void wait_for_device() const;
  std::shared_ptr<void> holder(void* p, CUdeviceptr chunk_base);

  int device_;
  std::string name_;
  const VmmDriver* drv_ = nullptr;
  size_t granularity_ = 2 << 20;
  mutable std::mutex mu_;
  std::map<CUdeviceptr, Chunk> chunks_;
  CUdeviceptr small_ = 0;  // the chunk small allocations are cut from now (0: none)
  bool released_ = false;
  void* host_ = nullptr;  // pinned copy of the chunks (level-1 sleep)
  size_t host_bytes_ = 0;
};

}  // namespace inferd::cuda_impl
