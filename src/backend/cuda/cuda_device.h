// CUDA device discovery. The CUDA backend proper (kernels behind the Backend interface) is issue 6;
// this is the part the rest of the program uses to decide whether a GPU is present.
#pragma once

#include <string>

namespace inferd::cuda {

// Number of usable CUDA devices (0 when there is no driver or no GPU; never throws).
int device_count();
// Why the last device_count() returned 0 (the CUDA runtime's error), empty when it found some.
std::string device_count_problem();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)" for device `index`.
std::string device_description(int index);
// Runs a small kernel (y = a*x + y on n elements) on the device and returns max |error| against
// the host result; used by the GPU smoke test.
double saxpy_self_test(int n);

}  // namespace inferd::cuda
