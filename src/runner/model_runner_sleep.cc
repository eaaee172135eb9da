// Sleep mode of the model runner (vLLM's --enable-sleep-mode; model_runner.h): level 1 frees the
// KV pool and moves the weights off the device, level 2 drops the weights too and loads them again
// on wake. On a GPU the backend keeps every address (DeviceRuntime::sleep_memory), so the CUDA
// graphs captured at start-up replay after a level-1 wake as they are; after a level-2 wake the
// model is new and the graphs are captured again.
#include <chrono>

#include "core/error.h"
#include "core/logging.h"
#include "runner/model_runner.h"

namespace inferd {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void ModelRunner::sleep(int level) {
  if (!opts_.enable_sleep_mode)
    fail("sleep mode is off for this model: start it with --enable-sleep-mode");
  if (level != 1 && level != 2) fail("sleep level {} is not supported: expected 1 or 2", level);
  if (sleep_level_ != 0)
    fail("the model is already asleep (level {}): wake it first", sleep_level_);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t released = 0;
  if (fixed_addresses_) {
    released = backend_->sleep_memory(level);  // waits for the device first
  } else {
    for (const KvLayer& l : kv_) released += int64_t(l.k.nbytes() + l.v.nbytes());
    kv_.clear();
  }
  if (level == 2) model_.reset();  // the weights' memory (already released on a GPU) goes
  sleep_level_ = level;
  LOG_INFO("sleep level {}: {} MiB of {} memory released in {:.3f} s", level, released >> 20,
           backend_->device() == Device::kCPU ? "host" : "device", seconds_since(t0));
}

void ModelRunner::wake_up() {
  if (sleep_level_ == 0) return;
  const auto t0 = std::chrono::steady_clock::now();
  if (fixed_addresses_) backend_->wake_memory(sleep_level_);
  if (sleep_level_ == 2) {
    load_weights();
    if (!graph_sizes_.empty()) capture_graphs();  // the new weights' addresses
  }
  if (!fixed_addresses_) allocate_kv_layers();
  LOG_INFO("woke up from sleep level {} in {:.3f} s", sleep_level_, seconds_since(t0));
  sleep_level_ = 0;
}

}  // namespace inferd
