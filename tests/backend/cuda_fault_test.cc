// Issue 32 (GPU faults), on the GPU machine (every test skips itself without a CUDA GPU):
// `inferd serve --device cuda` as a child process.
//   - IllegalAddressEndsTheServeProcess: --debug-inject-device-fault launches a kernel that
//     writes to an illegal address (a real, sticky cudaErrorIllegalAddress) during a request: the
//     request gets a 500 naming the error as a device fault, /health turns 503, and the process
//     exits with status 3 within 5 s.
//   - TooLittleMemoryNamesTheFlagsAndTheNumbers: a --gpu-memory-utilization too small for the
//     CUDA context and the weights stops the start with the flags to change and the numbers.
//   - MemoryHeldByAnotherProcessIsAccountedFor: with most of the GPU's memory held by this test
//     process (another process, for the server), the start stops with the memory in use before
//     it counted, instead of allocating past what is free.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>

#include "serve_process_util.h"

namespace inferd {
namespace {

using testing_util::http_request;
using testing_util::HttpReply;
using testing_util::ServeProcess;

const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

#define SKIP_WITHOUT_GPU()                                 \
  do {                                                     \
    int n = 0;                                             \
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) { \
      (void)cudaGetLastError();                            \
      GTEST_SKIP() << "no CUDA GPU on this machine";       \
    }                                                      \
  } while (0)

TEST(CudaFaults, IllegalAddressEndsTheServeProcess) {
  SKIP_WITHOUT_GPU();
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + " --served-model-name demo --device cuda --host 127.0.0.1 --port 0 " +
                      "--debug-inject-device-fault after_steps=4"))
      << p.log();
  const HttpReply r = http_request(
      p.port(), "POST", "/v1/completions",
      R"({"model": "demo", "prompt": "Once upon a time", "max_tokens": 200, "temperature": 0,
          "ignore_eos": true})");
  const auto failed_at = std::chrono::steady_clock::now();
  EXPECT_EQ(r.status, 500) << r.text;
  EXPECT_NE(r.text.find("device fault on CUDA device"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("cudaErrorIllegalAddress"), std::string::npos) << r.text;
  const HttpReply health = http_request(p.port(), "GET", "/health");
  EXPECT_TRUE(health.status == 503 || health.status == 0) << health.text;  // 0: already gone
  ASSERT_TRUE(p.exited(std::chrono::milliseconds(5000) -
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - failed_at)))
      << "still running 5 s after the fault\n"
      << p.log();
  EXPECT_EQ(p.exit_status(), 3) << p.log();
  EXPECT_NE(p.log().find("exiting after a device fault on CUDA device"), std::string::npos)
      << p.log();
}

TEST(CudaFaults, TooLittleMemoryNamesTheFlagsAndTheNumbers) {
  SKIP_WITHOUT_GPU();
  ServeProcess p;
  EXPECT_FALSE(p.start(kDemo + " --device cuda --port 0 --gpu-memory-utilization 0.001"));
  ASSERT_TRUE(p.exited(std::chrono::seconds(60))) << p.log();
  EXPECT_EQ(p.exit_status(), 1) << p.log();
  const std::string log = p.log();
  for (const char* s : {"not enough GPU memory for the KV cache", "--gpu-memory-utilization 0.001",
                        "raise --gpu-memory-utilization to at least", "--max-model-len",
                        "--max-num-seqs", "MiB are free now", "were in use before the start"})
    EXPECT_NE(log.find(s), std::string::npos) << s << "\n" << log;
}

TEST(CudaFaults, MemoryHeldByAnotherProcessIsAccountedFor) {
  SKIP_WITHOUT_GPU();
  size_t free_b = 0, total_b = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
  // Leave 2 GiB: room for the server's context and the demo model, not for 90 % of the GPU.
  const size_t hold = free_b - (size_t(2) << 30);
  void* held = nullptr;
  ASSERT_EQ(cudaMalloc(&held, hold), cudaSuccess);
  ServeProcess p;
  EXPECT_FALSE(p.start(kDemo + " --device cuda --port 0 --gpu-memory-utilization 0.9"));
  cudaFree(held);
  ASSERT_TRUE(p.exited(std::chrono::seconds(60))) << p.log();
  EXPECT_EQ(p.exit_status(), 1) << p.log();
  const std::string log = p.log();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"((\d+) MiB were in use before the start)")))
      << log;
  EXPECT_GE(std::stoll(m[1]), int64_t(hold >> 20)) << log;
  EXPECT_TRUE(log.find("free GPU memory held by other processes") != std::string::npos ||
              log.find("raise --gpu-memory-utilization to at least") != std::string::npos)
      << log;
}

}  // namespace
}  // namespace inferd
