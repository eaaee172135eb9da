// GPU smoke test: runs where a GPU is present (scripts/gpu-check.sh on the GPU machine) and
// skips itself elsewhere (CI has no GPU).
#include <gtest/gtest.h>

#include "backend/cuda/cuda_device.h"

namespace inferd {
namespace {

TEST(Cuda, KernelRunsAndMatchesHost) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  std::printf("device 0: %s\n", cuda::device_description(0).c_str());
  for (int n : {1, 255, 256, 257, 1 << 20}) EXPECT_LT(cuda::saxpy_self_test(n), 1e-6) << n;
}

}  // namespace
}  // namespace inferd
