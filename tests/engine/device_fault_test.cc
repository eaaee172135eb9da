// Issue 32 (device faults): a DeviceFault during a step (a sticky GPU error) stops the engine:
// every live request finishes with the fault as its error, later submits are refused with
// EngineStoppedError naming it, and Engine::device_fault() says what happened. Another error
// during a step is a device fault when the device then reports one (ModelExecutor::check_device);
// on a healthy device it fails only the requests of that step and the engine keeps serving.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/fake_model.h"
#include "inferd/engine.h"

namespace inferd {
namespace {

using testing::FakeExecutor;
using testing::FakeModelSpec;

enum class Failure { kDeviceFault, kStepErrorOnBrokenDevice, kStepErrorOnHealthyDevice };

// The fake model, failing its forward number `fail_at` (0-based) as `failure` says. Its forwards
// wait until open() so that a test submits all its requests before the first step (otherwise the
// engine may reach the fault, and stop, before the last submit).
class FailingExecutor final : public FakeExecutor {
 public:
  FailingExecutor(Failure failure, int fail_at)
      : FakeExecutor(FakeModelSpec{}), failure_(failure), fail_at_(fail_at) {}
  void open() { open_ = true; }
  void forward(const ForwardBatch& b, float* logits) override {
    while (!open_.load()) std::this_thread::yield();
    if (steps_++ == fail_at_) {
      if (failure_ == Failure::kDeviceFault)
        throw DeviceFault("device fault on test device: cudaErrorIllegalAddress");
      broken_ = failure_ == Failure::kStepErrorOnBrokenDevice;
      throw std::runtime_error("cuBLAS: execution failed");
    }
    FakeExecutor::forward(b, logits);
  }
  void check_device() override {
    if (broken_) throw DeviceFault("device fault on test device: cudaErrorLaunchFailure");
  }

 private:
  Failure failure_;
  int fail_at_;
  std::atomic<bool> open_{false};
  int steps_ = 0;
  bool broken_ = false;
};

GenerateRequest request(int32_t max_tokens) {
  GenerateRequest r;
  r.prompt_token_ids = {1, 2, 3, 4, 5};
  r.params.max_tokens = max_tokens;
  r.params.temperature = 0;
  r.params.ignore_eos = true;
  return r;
}

// Drains a stream; returns its finished output's error.
std::string finished_error(RequestStream& s) {
  std::string error;
  while (auto o = s.next()) {
    if (o->finished) error = o->error;
  }
  return error;
}

void expect_stopped_by(Engine& engine, std::vector<std::shared_ptr<RequestStream>>& streams,
                       const std::string& fault) {
  for (auto& s : streams) EXPECT_EQ(finished_error(*s), fault);
  EXPECT_EQ(engine.device_fault(), fault);
  try {
    engine.submit_stream(request(4));
    ADD_FAILURE() << "a submit after the fault was accepted";
  } catch (const EngineStoppedError& e) {
    EXPECT_NE(std::string(e.what()).find(fault), std::string::npos) << e.what();
  }
  engine.shutdown();  // the engine thread has ended already: returns at once
}

TEST(DeviceFault, FailsEveryLiveRequestAndStopsTheEngine) {
  auto exec = std::make_shared<FailingExecutor>(Failure::kDeviceFault, 3);
  Engine engine(exec);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 3; ++i) streams.push_back(engine.submit_stream(request(50)));
  exec->open();
  expect_stopped_by(engine, streams, "device fault on test device: cudaErrorIllegalAddress");
}

TEST(DeviceFault, AStepErrorOnABrokenDeviceIsTheDevicesFault) {
  auto exec = std::make_shared<FailingExecutor>(Failure::kStepErrorOnBrokenDevice, 2);
  Engine engine(exec);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 2; ++i) streams.push_back(engine.submit_stream(request(50)));
  exec->open();
  expect_stopped_by(engine, streams, "device fault on test device: cudaErrorLaunchFailure");
}

TEST(DeviceFault, AStepErrorOnAHealthyDeviceFailsThatStepOnly) {
  auto exec = std::make_shared<FailingExecutor>(Failure::kStepErrorOnHealthyDevice, 1);
  Engine engine(exec);
  auto first = engine.submit_stream(request(50));
  exec->open();
  EXPECT_EQ(finished_error(*first), "the engine failed: cuBLAS: execution failed");
  EXPECT_EQ(engine.device_fault(), "");
  auto second = engine.submit_stream(request(4));
  EXPECT_EQ(finished_error(*second), "");
}

}  // namespace
}  // namespace inferd
