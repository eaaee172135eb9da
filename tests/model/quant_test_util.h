// Helpers of the quantized-checkpoint tests (fp8_test, int4_test): a CPU runner of a checkpoint
// under a --quantization value, and the message of the Error a load or parse throws.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/error.h"
#include "runner/model_runner.h"

namespace inferd::testing_util {

// `dir` on the CPU backend (2 threads) with `quantization` ("" = the checkpoint's own).
inline std::unique_ptr<ModelRunner> cpu_runner(const std::string& dir,
                                               const std::string& quantization,
                                               int32_t num_kv_blocks, int32_t max_batched_tokens) {
  RunnerOptions o;
  o.num_kv_blocks = num_kv_blocks;
  o.block_size = 16;
  o.max_num_batched_tokens = max_batched_tokens;
  o.load.quantization = quantization;
  return std::make_unique<ModelRunner>(dir, o, make_cpu_backend(2));
}

// What f throws as an inferd Error, or "<no error>".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace inferd::testing_util
