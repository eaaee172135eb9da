// Issue 31 (sleep mode): `inferd serve --enable-sleep-mode` on the demo model. POST /sleep?level=N
// puts the model to sleep (GET /is_sleeping says so, /ready 503, /health 200, /metrics' gauge 1),
// a completion meanwhile gets 503 naming sleep mode (or, with --sleep-wait-seconds, waits for the
// wake), POST /wake_up restores and the greedy text is the same as before; a /sleep while a
// request runs answers once that request has finished, whole. Bad levels are 400; without the
// flag the routes are 404 naming it (runs the binary).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "serve_process_util.h"

namespace inferd {
namespace {

using testing_util::http_request;
using testing_util::HttpReply;
using testing_util::ServeProcess;

const std::string kDemo = testing_util::demo_model_dir();
const std::string kArgs =
    " --served-model-name demo --device cpu --host 127.0.0.1 --port 0 --enable-sleep-mode";

std::string completion(int max_tokens) {
  return testing_util::demo_completion("Once upon a time", max_tokens);
}

TEST(SleepServe, SleepWakeAndRequestsMeanwhile) {
  for (int level : {1, 2}) {
    SCOPED_TRACE(level);
    ServeProcess p;
    ASSERT_TRUE(p.start(kDemo + kArgs)) << p.log();
    const HttpReply before = http_request(p.port(), "POST", "/v1/completions", completion(12));
    ASSERT_EQ(before.status, 200) << before.text;
    EXPECT_NE(http_request(p.port(), "GET", "/is_sleeping").text.find(R"({"is_sleeping":false})"),
              std::string::npos);
    const HttpReply s = http_request(p.port(), "POST", "/sleep?level=" + std::to_string(level));
    ASSERT_EQ(s.status, 200) << s.text;
    EXPECT_NE(http_request(p.port(), "GET", "/is_sleeping").text.find(R"({"is_sleeping":true})"),
              std::string::npos);
    EXPECT_EQ(http_request(p.port(), "GET", "/health").status, 200);
    const HttpReply ready = http_request(p.port(), "GET", "/ready");
    EXPECT_EQ(ready.status, 503) << ready.text;
    EXPECT_NE(ready.text.find("asleep"), std::string::npos) << ready.text;
    EXPECT_NE(http_request(p.port(), "GET", "/metrics").text.find("inferd:engine_sleeping{"),
              std::string::npos);
    const std::string metrics = http_request(p.port(), "GET", "/metrics").text;
    EXPECT_NE(metrics.find("inferd:engine_sleep_level{model_name=\"demo\",engine=\"0\"} " +
                           std::to_string(level)),
              std::string::npos)
        << metrics;
    const HttpReply during = http_request(p.port(), "POST", "/v1/completions", completion(4));
    EXPECT_EQ(during.status, 503) << during.text;
    EXPECT_NE(during.text.find("sleep mode"), std::string::npos) << during.text;
    EXPECT_NE(during.text.find("model_sleeping"), std::string::npos) << during.text;
    const HttpReply w = http_request(p.port(), "POST", "/wake_up");
    ASSERT_EQ(w.status, 200) << w.text;
    EXPECT_EQ(http_request(p.port(), "GET", "/ready").status, 200);
    const HttpReply after = http_request(p.port(), "POST", "/v1/completions", completion(12));
    ASSERT_EQ(after.status, 200) << after.text;
    EXPECT_EQ(testing_util::completion_text(after), testing_util::completion_text(before));
    EXPECT_FALSE(testing_util::completion_text(after).empty()) << after.text;
  }
}

TEST(SleepServe, SleepWaitsForTheRequestInFlight) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + kArgs)) << p.log();
  const HttpReply want = http_request(p.port(), "POST", "/v1/completions", completion(150));
  ASSERT_EQ(want.status, 200) << want.text;
  auto running = std::async(std::launch::async, [&] {
    return http_request(p.port(), "POST", "/v1/completions", completion(150));
  });
  // Until the request runs (the metrics say so).
  for (int i = 0; i < 500; ++i) {
    if (http_request(p.port(), "GET", "/metrics")
            .text.find("vllm:num_requests_running{model_name=\"demo\",engine=\"0\"} 1") !=
        std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const HttpReply s = http_request(p.port(), "POST", "/sleep?level=1");
  EXPECT_EQ(s.status, 200) << s.text;
  EXPECT_EQ(running.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  const HttpReply got = running.get();
  EXPECT_EQ(got.status, 200) << got.text;
  EXPECT_EQ(testing_util::completion_text(got), testing_util::completion_text(want));
  EXPECT_EQ(http_request(p.port(), "POST", "/wake_up").status, 200);
}

TEST(SleepServe, WithSleepWaitARequestWaitsForTheWake) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + kArgs + " --sleep-wait-seconds 30")) << p.log();
  const HttpReply want = http_request(p.port(), "POST", "/v1/completions", completion(8));
  ASSERT_EQ(http_request(p.port(), "POST", "/sleep?level=2").status, 200);
  auto waiting = std::async(std::launch::async, [&] {
    return http_request(p.port(), "POST", "/v1/completions", completion(8));
  });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  ASSERT_EQ(http_request(p.port(), "POST", "/wake_up").status, 200);
  const HttpReply got = waiting.get();
  EXPECT_EQ(got.status, 200) << got.text;
  EXPECT_EQ(testing_util::completion_text(got), testing_util::completion_text(want));
}

TEST(SleepServe, BadLevelAndUnknownParameterAre400) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + kArgs)) << p.log();
  for (const char* q : {"/sleep?level=3", "/sleep?level=0", "/sleep?level=x", "/sleep?lvl=1"}) {
    const HttpReply r = http_request(p.port(), "POST", q);
    EXPECT_EQ(r.status, 400) << q << r.text;
  }
  EXPECT_NE(http_request(p.port(), "POST", "/sleep?level=3").text.find("expected 1"),
            std::string::npos);
  EXPECT_EQ(http_request(p.port(), "POST", "/wake_up?tags=weights").status, 400);
  EXPECT_EQ(http_request(p.port(), "GET", "/sleep").status, 405);
  EXPECT_NE(http_request(p.port(), "GET", "/is_sleeping").text.find("false"), std::string::npos);
}

TEST(SleepServe, WithoutTheFlagTheRoutesAre404NamingIt) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + " --served-model-name demo --device cpu --host 127.0.0.1 --port 0"))
      << p.log();
  for (const auto& [method, path] :
       {std::pair{"POST", "/sleep?level=1"}, std::pair{"POST", "/wake_up"},
        std::pair{"GET", "/is_sleeping"}}) {
    const HttpReply r = http_request(p.port(), method, path);
    EXPECT_EQ(r.status, 404) << path << r.text;
    EXPECT_NE(r.text.find("--enable-sleep-mode"), std::string::npos) << r.text;
  }
  EXPECT_EQ(http_request(p.port(), "POST", "/v1/completions", completion(2)).status, 200);
}

TEST(SleepServe, SleepWaitWithoutSleepModeIsAStartError) {
  ServeProcess p;
  EXPECT_FALSE(p.start(kDemo + " --device cpu --port 0 --sleep-wait-seconds 5"));
  EXPECT_NE(p.log().find("--sleep-wait-seconds 5 needs --enable-sleep-mode"), std::string::npos)
      << p.log();
}

}  // namespace
}  // namespace inferd
