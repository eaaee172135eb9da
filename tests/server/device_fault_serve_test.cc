// Issue 32 (device faults): `inferd serve` whose device fails during a step (the test-only
// --debug-inject-device-fault; on the CPU it raises the DeviceFault a sticky CUDA error raises)
// answers the in-flight request with a 500 naming the fault (a stream: an error event, then the
// end of the stream), /health and /ready with 503, and exits with status 3 within seconds, its
// log saying why. tests/backend/cuda_fault_test.cc does the same with a real illegal address.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "serve_process_util.h"

namespace inferd {
namespace {

using testing_util::http_request;
using testing_util::HttpReply;
using testing_util::ServeProcess;

const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

std::string completion(bool stream) {
  return std::string(R"({"model": "demo", "prompt": "Once upon a time", "max_tokens": 200, )") +
         R"("temperature": 0, "ignore_eos": true, "stream": )" + (stream ? "true" : "false") + "}";
}

// After the fault: /health and /ready answer 503 naming it, the process exits with status 3
// within 5 s of the failed request, and its log says why.
void expect_clean_exit(ServeProcess& p, std::chrono::steady_clock::time_point failed_at) {
  const HttpReply health = http_request(p.port(), "GET", "/health");
  EXPECT_EQ(health.status, 503) << health.text;
  EXPECT_NE(health.text.find("device fault"), std::string::npos) << health.text;
  const HttpReply ready = http_request(p.port(), "GET", "/ready");
  EXPECT_EQ(ready.status, 503) << ready.text;
  const HttpReply late = http_request(p.port(), "POST", "/v1/completions", completion(false));
  EXPECT_EQ(late.status, 503) << late.text;
  const auto left = std::chrono::seconds(5) - (std::chrono::steady_clock::now() - failed_at);
  ASSERT_TRUE(p.exited(std::chrono::duration_cast<std::chrono::milliseconds>(left)))
      << "still running 5 s after the device fault\n"
      << p.log();
  EXPECT_EQ(p.exit_status(), 3) << p.log();
  EXPECT_NE(p.log().find("exiting after a device fault"), std::string::npos) << p.log();
}

TEST(DeviceFaultServe, InFlightRequestGets500AndTheProcessExits) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + " --served-model-name demo --device cpu --host 127.0.0.1 --port 0 " +
                      "--debug-inject-device-fault after_steps=4"))
      << p.log();
  const HttpReply r = http_request(p.port(), "POST", "/v1/completions", completion(false));
  const auto failed_at = std::chrono::steady_clock::now();
  EXPECT_EQ(r.status, 500) << r.text;
  EXPECT_NE(r.text.find("The engine failed the request: device fault on cpu"), std::string::npos)
      << r.text;
  expect_clean_exit(p, failed_at);
}

TEST(DeviceFaultServe, StreamGetsAnErrorEventAndEnds) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + " --served-model-name demo --device cpu --host 127.0.0.1 --port 0 " +
                      "--debug-inject-device-fault after_steps=6"))
      << p.log();
  const HttpReply r = http_request(p.port(), "POST", "/v1/completions", completion(true));
  const auto failed_at = std::chrono::steady_clock::now();
  EXPECT_EQ(r.status, 200) << r.text;  // the stream had started
  const size_t err = r.text.find("data: {\"error\"");
  ASSERT_NE(err, std::string::npos) << r.text;
  EXPECT_NE(r.text.find("device fault on cpu", err), std::string::npos) << r.text;
  expect_clean_exit(p, failed_at);
}

TEST(DeviceFaultServe, BadInjectionSpecIsAClearError) {
  ServeProcess p;
  EXPECT_FALSE(p.start(kDemo + " --device cpu --port 0 --debug-inject-device-fault steps=2"));
  EXPECT_EQ(p.exit_status(), 1);
  EXPECT_NE(p.log().find("--debug-inject-device-fault 'steps=2': expected after_steps=N"),
            std::string::npos)
      << p.log();
}

}  // namespace
}  // namespace inferd
