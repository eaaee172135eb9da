#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cuda/cuda_device.h"
#include "core/error_types.h"

// nvcc cannot evaluate fmt's compile-time format strings, so .cu files build messages by hand.
#define CUDA_CHECK(expr)                                                 \
  do {                                                                   \
    cudaError_t err_ = (expr);                                           \
    if (err_ != cudaSuccess)                                             \
      throw ::inferd::Error(std::string("CUDA error at " __FILE__ ":") + \
                            std::to_string(__LINE__) + ": " #expr " (" + \
                            cudaGetErrorString(err_) + ")");             \
  } while (0)

namespace inferd::cuda {

namespace {
__global__ void saxpy_kernel(int n, float a, const float* x, float* y) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
}  // namespace

namespace {
std::string g_device_count_problem;  // why the last device_count() found none
}  // namespace

int device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    g_device_count_problem =
        std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  g_device_count_problem = n == 0 ? "cudaGetDeviceCount: 0 devices" : "";
  return n;
}

std::string device_count_problem() {
  return g_device_count_problem;
}

std::string device_description(int index) {
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs, %.1f GiB)", p.name, p.major, p.minor,
                p.multiProcessorCount, double(p.totalGlobalMem) / double(1ull << 30));
  return buf;
}

double saxpy_self_test(int n) {
  const size_t un = static_cast<size_t>(n);
  std::vector<float> x(un), y(un), out(un);
  for (int i = 0; i < n; ++i) {
    x[size_t(i)] = std::sin(float(i));
    y[size_t(i)] = std::cos(float(i));
  }
  float *dx = nullptr, *dy = nullptr;
  CUDA_CHECK(cudaMalloc(&dx, size_t(n) * 4));
  CUDA_CHECK(cudaMalloc(&dy, size_t(n) * 4));
  CUDA_CHECK(cudaMemcpy(dx, x.data(), size_t(n) * 4, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(dy, y.data(), size_t(n) * 4, cudaMemcpyHostToDevice));
  saxpy_kernel<<<(n + 255) / 256, 256>>>(n, 2.5f, dx, dy);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaMemcpy(out.data(), dy, size_t(n) * 4, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(dx));
  CUDA_CHECK(cudaFree(dy));
  double err = 0;
  for (int i = 0; i < n; ++i)
    err = std::max(err, std::fabs(double(out[size_t(i)]) - (2.5 * x[size_t(i)] + y[size_t(i)])));
  return err;
}

}  // namespace inferd::cuda
