// Device memory that can leave the GPU and come back at the same addresses (cuda_vmm.h).
#include "backend/cuda/cuda_vmm.h"

#include <algorithm>
#include <vector>

#include "backend/cuda/cuda_common.h"
#include "core/error.h"

namespace inferd::cuda_impl {

// The driver's virtual memory functions, looked up once through the runtime.
struct VmmDriver {
  decltype(&::cuMemAddressReserve) address_reserve = nullptr;
  decltype(&::cuMemAddressFree) address_free = nullptr;
  decltype(&::cuMemCreate) create = nullptr;
  decltype(&::cuMemRelease) release = nullptr;
  decltype(&::cuMemMap) map = nullptr;
  decltype(&::cuMemUnmap) unmap = nullptr;
  decltype(&::cuMemSetAccess) set_access = nullptr;
  decltype(&::cuMemGetAllocationGranularity) granularity = nullptr;
  decltype(&::cuGetErrorName) error_name = nullptr;
  decltype(&::cuDeviceGet) device_get = nullptr;
  decltype(&::cuDeviceGetAttribute) device_attribute = nullptr;
};

namespace {

template <class F>
void lookup(const char* symbol, F& fn) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
  CU_CHECK(cudaGetDriverEntryPointByVersion(symbol, &p, 12000, cudaEnableDefault, &q));
#else
  CU_CHECK(cudaGetDriverEntryPoint(symbol, &p, cudaEnableDefault, &q));
#endif
  if (p == nullptr || q != cudaDriverEntryPointSuccess)
    fail(
        "sleep mode: the CUDA driver has no {} (virtual memory management needs driver 11.2 "
        "or newer)",
        symbol);
  fn = reinterpret_cast<F>(p);
}

const VmmDriver& driver() {
  static const VmmDriver d = [] {
    VmmDriver v;
    lookup("cuMemAddressReserve", v.address_reserve);
    lookup("cuMemAddressFree", v.address_free);
    lookup("cuMemCreate", v.create);
    lookup("cuMemRelease", v.release);
    lookup("cuMemMap", v.map);
    lookup("cuMemUnmap", v.unmap);
    lookup("cuMemSetAccess", v.set_access);
    lookup("cuMemGetAllocationGranularity", v.granularity);
    lookup("cuGetErrorName", v.error_name);
    lookup("cuDeviceGet", v.device_get);
    lookup("cuDeviceGetAttribute", v.device_attribute);
    return v;
  }();
  return d;
}

std::string error_name(const VmmDriver& d, CUresult r) {
  const char* s = nullptr;
  if (d.error_name(r, &s) != CUDA_SUCCESS || s == nullptr)
    return fmt::format("CUresult {}", int(r));
  return s;
}

CUmemAllocationProp device_prop(int device) {
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  return prop;
}

// Allocations at most this big share a chunk of one granule.
size_t small_limit(size_t granularity) {
  return granularity / 4;
}

}  // namespace

#define VMM_CHECK(expr)                                                                   \
  do {                                                                                    \
    const CUresult r_ = (expr);                                                           \
    if (r_ != CUDA_SUCCESS)                                                               \
      fail("sleep mode ({} memory): {} failed: {}", name_, #expr, error_name(*drv_, r_)); \
  } while (0)

std::shared_ptr<VmmPool> VmmPool::create(int device, std::string name) {
  return std::shared_ptr<VmmPool>(new VmmPool(device, std::move(name)));
}

VmmPool::VmmPool(int device, std::string name) : device_(device), name_(std::move(name)) {
  drv_ = &driver();
  CUdevice dev = 0;
  int supported = 0;
  VMM_CHECK(drv_->device_get(&dev, device_));
  VMM_CHECK(drv_->device_attribute(&supported,
                                   CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev));
  if (!supported)
    fail(
        "--enable-sleep-mode: CUDA device {} has no virtual memory management (cuMemCreate), "
        "which sleep mode needs to bring memory back at the same addresses",
        device_);
  const CUmemAllocationProp prop = device_prop(device_);
  size_t g = 0;
  VMM_CHECK(drv_->granularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
  granularity_ = std::max<size_t>(g, 1);
}

VmmPool::~VmmPool() {
  bool mapped = false;
  for (const auto& [va, c] : chunks_) mapped = mapped || c.mapped;
  if (mapped) wait_for_device();
  for (auto& [va, c] : chunks_) {
    if (c.mapped) {
      (void)drv_->unmap(va, c.size);
      (void)drv_->release(c.handle);
    }
    (void)drv_->address_free(va, c.size);
  }
  if (host_) (void)cudaFreeHost(host_);
}

void VmmPool::wait_for_device() const {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess) current = -1;
  if (current != device_) (void)cudaSetDevice(device_);
  (void)cudaDeviceSynchronize();  // an error here is sticky and reported by the next CUDA call
  if (current >= 0 && current != device_) (void)cudaSetDevice(current);
}

void VmmPool::map_chunk(CUdeviceptr va, Chunk& c) {
  const CUmemAllocationProp prop = device_prop(device_);
  const CUresult r = drv_->create(&c.handle, c.size, &prop, 0);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) {
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    fail(
        "out of GPU memory mapping {} MiB of {} memory on CUDA device {} (sleep mode): {} MiB "
        "free of {} MiB. Another process may have taken the memory while the model slept",
        c.size >> 20, name_, device_, free_b >> 20, total_b >> 20);
  }
  VMM_CHECK(r);
  VMM_CHECK(drv_->map(va, c.size, 0, c.handle, 0));
  CUmemAccessDesc access = {};
  access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access.location.id = device_;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  VMM_CHECK(drv_->set_access(va, c.size, &access, 1));
  c.mapped = true;
}

void VmmPool::unmap_chunk(CUdeviceptr va, Chunk& c) {
  VMM_CHECK(drv_->unmap(va, c.size));
  VMM_CHECK(drv_->release(c.handle));
  c.handle = 0;
  c.mapped = false;
}

std::shared_ptr<void> VmmPool::holder(void* p, CUdeviceptr chunk_base) {
  std::weak_ptr<VmmPool> self = weak_from_this();
  return std::shared_ptr<void>(p, [self, chunk_base](void*) {
    if (auto pool = self.lock()) pool->free_at(chunk_base);
  });
}

std::shared_ptr<void> VmmPool::allocate(size_t bytes) {
  std::lock_guard lk(mu_);
  INFERD_CHECK(!released_, "sleep mode: allocating {} memory while it sleeps", name_);
  bytes = std::max<size_t>((bytes + 255) / 256 * 256, 256);
  if (bytes <= small_limit(granularity_)) {
    auto it = small_ ? chunks_.find(small_) : chunks_.end();
    if (it == chunks_.end() || it->second.used + bytes > it->second.size) {
      CUdeviceptr va = 0;
      VMM_CHECK(drv_->address_reserve(&va, granularity_, granularity_, 0, 0));
      Chunk c;
      c.size = granularity_;
      try {
        map_chunk(va, c);
      } catch (...) {
        (void)drv_->address_free(va, granularity_);
        throw;
      }
      it = chunks_.emplace(va, c).first;
      small_ = va;
    }
    Chunk& c = it->second;
    void* p = reinterpret_cast<void*>(it->first + c.used);
    c.used += bytes;
    ++c.live;
    return holder(p, it->first);
  }
  const size_t size = (bytes + granularity_ - 1) / granularity_ * granularity_;
  CUdeviceptr va = 0;
  VMM_CHECK(drv_->address_reserve(&va, size, granularity_, 0, 0));
  Chunk c;
  c.size = size;
  c.used = size;
  c.live = 1;
  try {
    map_chunk(va, c);
  } catch (...) {
    (void)drv_->address_free(va, size);
    throw;
  }
  chunks_.emplace(va, c);
  return holder(reinterpret_cast<void*>(va), va);
}

void VmmPool::free_at(CUdeviceptr base) {
  std::lock_guard lk(mu_);
  auto it = chunks_.find(base);
  if (it == chunks_.end() || --it->second.live > 0) return;
  if (base == small_) small_ = 0;
  Chunk& c = it->second;
  if (c.mapped) {
    // cudaFree waits for the device; cuMemUnmap does not: work still queued on any stream that
    // reads or writes this memory (a weight part filled and copied into a merged linear, then
    // dropped at once) would fault on the unmapped addresses. Frees of this pool happen at load,
    // unload and sleep, never in a step or a capture, so waiting here costs nothing that matters.
    wait_for_device();
    (void)drv_->unmap(base, c.size);
    (void)drv_->release(c.handle);
  }
  (void)drv_->address_free(base, c.size);
  chunks_.erase(it);
}

int64_t VmmPool::chunk_bytes() const {
  std::lock_guard lk(mu_);
  int64_t n = 0;
  for (const auto& [va, c] : chunks_) n += int64_t(c.size);
  return n;
}

int64_t VmmPool::release(bool keep, cudaStream_t stream) {
  std::lock_guard lk(mu_);
  CU_CHECK(cudaStreamSynchronize(stream));
  size_t total = 0;
  for (const auto& [va, c] : chunks_)
    if (c.mapped) total += c.size;
  if (keep && total > host_bytes_) {
    if (host_) CU_CHECK(cudaFreeHost(host_));
    host_ = nullptr;
    host_bytes_ = 0;
    const cudaError_t e = cudaHostAlloc(&host_, total, cudaHostAllocDefault);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      host_ = nullptr;
      fail(
          "sleep mode: cannot pin {} MiB of host memory for the {} ({}); use sleep level 2, "
          "which keeps no copy",
          total >> 20, name_, cudaGetErrorString(e));
    }
    host_bytes_ = total;
  }
  size_t off = 0;
  for (auto& [va, c] : chunks_) {
    c.kept = false;
    if (!c.mapped || !keep) continue;
    c.host_offset = off;
    c.kept = true;
    CU_CHECK(cudaMemcpyAsync(static_cast<char*>(host_) + off, reinterpret_cast<void*>(va), c.size,
                             cudaMemcpyDeviceToHost, stream));
    off += c.size;
  }
  CU_CHECK(cudaStreamSynchronize(stream));
  int64_t released = 0;
  for (auto& [va, c] : chunks_) {
    if (!c.mapped) continue;
    unmap_chunk(va, c);
    released += int64_t(c.size);
  }
  released_ = true;
  return released;
}

void VmmPool::restore(cudaStream_t stream) {
  std::lock_guard lk(mu_);
  for (auto& [va, c] : chunks_) {
    if (c.mapped) continue;
    map_chunk(va, c);
    void* dst = reinterpret_cast<void*>(va);
    if (c.kept) {
      CU_CHECK(cudaMemcpyAsync(dst, static_cast<const char*>(host_) + c.host_offset, c.size,
                               cudaMemcpyHostToDevice, stream));
    } else {
      CU_CHECK(cudaMemsetAsync(dst, 0, c.size, stream));
    }
  }
  CU_CHECK(cudaStreamSynchronize(stream));
  for (auto& [va, c] : chunks_) c.kept = false;
  released_ = false;
}

}  // namespace inferd::cuda_impl
