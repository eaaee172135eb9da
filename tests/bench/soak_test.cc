// `bench soak` end to end: a short soak against the real `inferd serve` of the demo model passes
// (every kind of request, gauges idle, RSS read from /metrics), and soaks against a misbehaving
// fake server fail (a 500, streams cut before [DONE], usage beyond max_tokens).
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "bench/fake_server.h"
#include "bench/soak.h"

namespace inferd::bench {
namespace {

namespace fs = std::filesystem;
using testing::FakeBehavior;
using testing::FakeOpenAIServer;

// `inferd serve` of the demo model on a free port, its log in a file (a pipe would fill up).
class DemoServer {
 public:
  DemoServer() {
    log_ =
        (fs::temp_directory_path() / ("soak_test_" + std::to_string(getpid()) + ".log")).string();
    const std::string cmd =
        std::string(INFERD_BINARY) + " serve " + INFERD_SOURCE_DIR +
        "/models/demo --served-model-name demo --host 127.0.0.1 --port 0 --no-ui > '" + log_ +
        "' 2>&1 & echo $!";
    FILE* p = popen(cmd.c_str(), "r");
    char line[64] = {};
    if (p && fgets(line, sizeof line, p)) pid_ = pid_t(std::stol(line));
    if (p) pclose(p);
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::ifstream f(log_);
      std::string l;
      while (std::getline(f, l)) {
        const size_t at = l.find("http://127.0.0.1:");
        if (l.find("ready:") != std::string::npos && at != std::string::npos)
          port_ = uint16_t(std::stoi(l.substr(at + 17)));
      }
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~DemoServer() {
    if (pid_ > 0) kill(pid_, SIGTERM);
    fs::remove(log_);
  }
  uint16_t port() const { return port_; }
  std::string log() const {
    std::ifstream f(log_);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

 private:
  std::string log_;
  pid_t pid_ = 0;
  uint16_t port_ = 0;
};

SoakOptions options(const std::string& url, int64_t n) {
  SoakOptions o;
  o.base = parse_url(url);
  o.model = "demo";
  o.num_requests = n;
  o.concurrency = 6;
  o.seed = 3;
  o.progress = false;
  o.idle_timeout_s = 10;
  return o;
}

TEST(Soak, DemoServerPasses) {
  DemoServer server;
  ASSERT_NE(server.port(), 0) << server.log();
  SoakOptions o = options("http://127.0.0.1:" + std::to_string(server.port()), 400);
  o.mix.max_tokens = 24;
  const SoakReport r = run_soak(o);
  EXPECT_TRUE(r.passed(o)) << format_soak_report(r, o);
  EXPECT_EQ(r.server_errors, 0);
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.failed_checks, 0);
  EXPECT_GT(r.ok, 300);
  EXPECT_GT(r.aborted, 5);
  EXPECT_GT(r.hostile_refused, 3);
  EXPECT_GT(r.probe_repeats, 5);
  EXPECT_EQ(r.probe_mismatches, 0);
  EXPECT_TRUE(r.idle);
  EXPECT_EQ(r.rss_source, "/metrics process_resident_memory_bytes");
  EXPECT_GT(r.rss_base, 1e7);
  EXPECT_GT(r.completion_tokens, 1000);
  const std::string text = format_soak_report(r, o);
  EXPECT_NE(text.find("Result: PASS"), std::string::npos) << text;
}

TEST(Soak, FailsOnServerErrors) {
  // The 8th completion request (the fake also answers the soak's /metrics reads) fails.
  auto count = std::make_shared<std::atomic<int>>(0);
  FakeOpenAIServer fake([count](const nlohmann::json& body, size_t) {
    FakeBehavior b;
    if (body.is_object() && body.contains("prompt") && (*count)++ == 7) b.status = 500;
    return b;
  });
  SoakOptions o = options(fake.url(), 40);
  o.mix = SoakMix{.chat_share = 0,
                  .stream_share = 1,
                  .abort_share = 0,
                  .hostile_share = 0,
                  .slow_share = 0,
                  .determinism_share = 0};
  o.idle_timeout_s = 0.2;
  const SoakReport r = run_soak(o);
  EXPECT_EQ(r.server_errors, 1);
  EXPECT_FALSE(r.passed(o));
  EXPECT_NE(format_soak_report(r, o).find("Result: FAIL"), std::string::npos);
}

TEST(Soak, FailsOnCutStreamsAndWrongUsage) {
  SoakOptions o = options("http://127.0.0.1:9", 30);
  o.mix = SoakMix{.chat_share = 0,
                  .stream_share = 1,
                  .abort_share = 0,
                  .hostile_share = 0,
                  .slow_share = 0,
                  .determinism_share = 0};
  o.idle_timeout_s = 0.2;
  {
    FakeOpenAIServer fake([](const nlohmann::json&, size_t) {
      FakeBehavior b;
      b.send_done = false;
      return b;
    });
    o.base = parse_url(fake.url());
    const SoakReport r = run_soak(o);
    // Lost, but for requests whose max_tokens was below the fake's 4 tokens: those fail the
    // usage check first.
    EXPECT_GT(r.lost, 20);
    EXPECT_EQ(r.lost + r.failed_checks, 30);
    EXPECT_FALSE(r.passed(o));
  }
  {
    // n = 1 requests with usage: 4 chunks of 100 tokens is more than any max_tokens asked.
    FakeOpenAIServer fake([](const nlohmann::json& body, size_t) {
      FakeBehavior b;
      b.tokens_per_chunk = 100;
      (void)body;
      return b;
    });
    o.base = parse_url(fake.url());
    const SoakReport r = run_soak(o);
    EXPECT_EQ(r.server_errors, 0);
    EXPECT_EQ(r.lost, 0);
    EXPECT_GT(r.failed_checks, 5);
    bool usage_named = false;
    for (const std::string& f : r.failures) usage_named |= f.find("completion tokens") != f.npos;
    EXPECT_TRUE(usage_named);
    EXPECT_FALSE(r.passed(o));
  }
}

TEST(Soak, RefusesBadOptions) {
  SoakOptions o = options("http://127.0.0.1:9", 0);
  EXPECT_ANY_THROW(run_soak(o));
  o.num_requests = 1;
  o.mix.abort_share = 0.9;
  o.mix.hostile_share = 0.5;
  EXPECT_ANY_THROW(run_soak(o));
}

}  // namespace
}  // namespace inferd::bench
