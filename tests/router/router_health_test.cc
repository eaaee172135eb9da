// Why a replica stays out of the router's rotation (issue 32): a replica that answers the health
// checks with 401/403 (the router lacks --backend-api-key, or has a wrong one), refuses the
// connection, never answers, or answers in TLS is logged once (not at every check) with what to
// do, counted on the router's /metrics by replica and reason, and named in the /ready body.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "router/router.h"
#include "server/fake_generator.h"
#include "server/server.h"
#include "server/test_client.h"

namespace inferd::router {
namespace {

using nlohmann::json;
using server::testing::FakeGenerator;
using server::testing::get;
using server::testing::metric_value;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

bool wait_for(const std::function<bool()>& cond, double seconds = 10) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

// What the process logs while it lives (spdlog's default logger gets one more sink).
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    std::erase(sinks, sink_);
  }
  size_t count(const std::string& needle) {
    spdlog::default_logger()->flush();
    const std::string s = out_.str();
    size_t n = 0;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
    return n;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

// A replica stand-in on a raw socket: answers every request with `reply` (then closes), or
// with nothing at all (`reply` empty: holds the connection open, silent).
class RawReplica {
 public:
  explicit RawReplica(std::string reply) : reply_(std::move(reply)), acceptor_(io_) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    acceptor_.listen();
    acceptor_.non_blocking(true);
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { run(); });
  }
  ~RawReplica() {
    stop_ = true;
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  void run() {
    std::vector<std::unique_ptr<tcp::socket>> held;
    while (!stop_) {
      auto s = std::make_unique<tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*s, ec);
      if (ec) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      if (reply_.empty()) {
        held.push_back(std::move(s));
        continue;
      }
      s->non_blocking(false);
      char buf[4096];
      s->read_some(net::buffer(buf), ec);  // the request (its first bytes do)
      net::write(*s, net::buffer(reply_), ec);
      s->shutdown(tcp::socket::shutdown_both, ec);
      s->close(ec);
    }
  }

  std::string reply_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class RouterHealthTest : public ::testing::Test {
 protected:
  // An in-process replica (the HTTP server over the fake generator) that requires `api_key`.
  std::string add_keyed_replica(const std::string& api_key) {
    server::ServerConfig cfg;
    cfg.http.host = "127.0.0.1";
    cfg.http.port = 0;
    cfg.http.io_threads = 1;
    cfg.served_model_names = {"tiny"};
    if (!api_key.empty()) cfg.api_keys = {api_key};
    gens_.push_back(std::make_shared<FakeGenerator>());
    servers_.push_back(std::make_unique<server::Server>(cfg, gens_.back()));
    servers_.back()->start();
    servers_.back()->set_ready(true);
    return "http://127.0.0.1:" + std::to_string(servers_.back()->port());
  }
  RouterConfig config(std::vector<std::string> backends) {
    RouterConfig c;
    c.http.host = "127.0.0.1";
    c.http.port = 0;
    c.http.io_threads = 2;
    c.health_check.interval = std::chrono::milliseconds(30);
    c.health_check.timeout = std::chrono::milliseconds(300);
    c.backends = std::move(backends);
    return c;
  }
  void start_router(RouterConfig c) {
    router_ = std::make_unique<Router>(std::move(c));
    router_->start();
    port_ = router_->port();
  }
  // Waits until the router has seen `url` fail at least `checks` times for `reason`.
  void wait_failures(const std::string& url, const std::string& reason, double checks) {
    const std::string match = "replica=\"" + url + "\",reason=\"" + reason + "\"";
    ASSERT_TRUE(wait_for([&] {
      return metric_value(get(port_, "/metrics").body, "inferd:router_health_check_failures_total",
                          match) >= checks;
    })) << get(port_, "/metrics").body;
  }
  double problem(const std::string& url, const std::string& reason) {
    return metric_value(get(port_, "/metrics").body, "inferd:router_replica_problem",
                        "replica=\"" + url + "\",reason=\"" + reason + "\"");
  }
  // /ready is 503 and its message names the replica and holds `hint`.
  void expect_ready_names(const std::string& url, const std::string& hint) {
    const auto r = get(port_, "/ready");
    EXPECT_EQ(r.status, 503) << r.body;
    const std::string msg = json::parse(r.body)["error"]["message"].get<std::string>();
    EXPECT_NE(msg.find(url), std::string::npos) << msg;
    EXPECT_NE(msg.find(hint), std::string::npos) << msg;
  }
  void TearDown() override {
    if (router_) router_->stop();
    for (auto& s : servers_) s->stop();
    for (auto& g : gens_) g->shutdown();
  }

  std::vector<std::shared_ptr<FakeGenerator>> gens_;
  std::vector<std::unique_ptr<server::Server>> servers_;
  std::unique_ptr<Router> router_;
  uint16_t port_ = 0;
};

TEST_F(RouterHealthTest, MissingBackendKeyIsLoggedOnceCountedAndNamedInReady) {
  LogCapture log;
  const std::string url = add_keyed_replica("replica-key");
  start_router(config({url}));
  wait_failures(url, "unauthorized", 10);  // ten checks, one log line
  EXPECT_EQ(log.count("--backend-api-key"), 1u);
  EXPECT_EQ(log.count("router: replica " + url + " not in rotation"), 1u);
  EXPECT_EQ(problem(url, "unauthorized"), 1.0);
  expect_ready_names(url, "--backend-api-key");
  expect_ready_names(url, "401");
}

TEST_F(RouterHealthTest, AWrongBackendKeyIsSaidSo) {
  LogCapture log;
  const std::string url = add_keyed_replica("replica-key");
  RouterConfig c = config({url});
  c.backend_api_key = c.health_check.api_key = "not-the-key";
  start_router(c);
  wait_failures(url, "unauthorized", 5);
  EXPECT_EQ(log.count("refused the router's --backend-api-key"), 1u);
  expect_ready_names(url, "refused the router's --backend-api-key");
}

TEST_F(RouterHealthTest, Forbidden403IsUnauthorizedToo) {
  RawReplica forbidden("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  start_router(config({forbidden.url()}));
  wait_failures(forbidden.url(), "unauthorized", 3);
  EXPECT_EQ(problem(forbidden.url(), "unauthorized"), 1.0);
  expect_ready_names(forbidden.url(), "403");
}

TEST_F(RouterHealthTest, ConnectionRefused) {
  LogCapture log;
  uint16_t closed_port = 0;
  {
    net::io_context io;
    tcp::acceptor a(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    closed_port = a.local_endpoint().port();
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port);
  start_router(config({url}));
  wait_failures(url, "connection_refused", 10);
  EXPECT_EQ(log.count("router: replica " + url + " not in rotation"), 1u);
  EXPECT_EQ(problem(url, "connection_refused"), 1.0);
  expect_ready_names(url, "nothing listens there");
}

TEST_F(RouterHealthTest, ASilentReplicaTimesOut) {
  RawReplica silent("");
  start_router(config({silent.url()}));
  wait_failures(silent.url(), "timeout", 2);
  EXPECT_EQ(problem(silent.url(), "timeout"), 1.0);
  expect_ready_names(silent.url(), "--health-check-timeout");
}

TEST_F(RouterHealthTest, AReplicaThatSpeaksTls) {
  // What a TLS server sends to a client that speaks plain HTTP: an alert record.
  LogCapture log;
  RawReplica tls(std::string("\x15\x03\x01\x00\x02\x02\x46", 7));
  start_router(config({tls.url()}));
  wait_failures(tls.url(), "tls", 5);
  EXPECT_EQ(log.count("serves https"), 1u);
  EXPECT_EQ(problem(tls.url(), "tls"), 1.0);
  expect_ready_names(tls.url(), "serves https");
}

TEST_F(RouterHealthTest, ReadyWithSomeReplicasOutListsThem) {
  const std::string good = add_keyed_replica("");
  const std::string keyed = add_keyed_replica("replica-key");
  start_router(config({good, keyed}));
  ASSERT_TRUE(wait_for([&] { return router_->table().num_healthy() == 1; }));
  wait_failures(keyed, "unauthorized", 2);
  const auto r = get(port_, "/ready");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["status"], "ready");
  ASSERT_EQ(j["replicas_out"].size(), 1u) << r.body;
  EXPECT_EQ(j["replicas_out"][0]["replica"], keyed);
  EXPECT_EQ(j["replicas_out"][0]["reason"], "unauthorized");
  EXPECT_NE(j["replicas_out"][0]["error"].get<std::string>().find("--backend-api-key"),
            std::string::npos);
  // The healthy one has no problem series.
  EXPECT_EQ(metric_value(get(port_, "/metrics").body, "inferd:router_replica_problem",
                         "replica=\"" + good + "\""),
            -1);
}

TEST_F(RouterHealthTest, AProblemIsLoggedAgainOnlyAfterTheReplicaCameBack) {
  LogCapture log;
  const std::string url = add_keyed_replica("");
  start_router(config({url}));
  ASSERT_TRUE(wait_for([&] { return router_->table().num_healthy() == 1; }));
  servers_[0]->set_ready(false);  // /ready 503
  wait_failures(url, "not_ready", 5);
  EXPECT_EQ(log.count("router: replica " + url + " out"), 1u);
  EXPECT_EQ(log.count("router: replica " + url + " not in rotation"), 0u);
  servers_[0]->set_ready(true);
  ASSERT_TRUE(wait_for([&] { return router_->table().num_healthy() == 1; }));
  EXPECT_EQ(problem(url, "not_ready"), -1);
  servers_[0]->set_ready(false);
  wait_failures(url, "not_ready", 10);
  EXPECT_EQ(log.count("router: replica " + url + " out"), 2u);
}

}  // namespace
}  // namespace inferd::router
