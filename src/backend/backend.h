// A backend is one device's runtime (device_runtime.h: memory, weight placement, per-step upload
// and download, graphs) together with its kernel ops (kernel_ops.h: what a forward pass is written
// against). The model runner holds the Backend; model layers see its KernelOps.
#pragma once

#include <memory>

#include "backend/device_runtime.h"
#include "backend/kernel_ops.h"

namespace inferd {

class Backend : public DeviceRuntime, public KernelOps {
 public:
  ~Backend() override = default;
};

std::unique_ptr<Backend> make_cpu_backend(int num_threads);

}  // namespace inferd
