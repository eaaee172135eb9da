// The router's health poller: one loop per replica on the router's io threads. Each round resolves
// the replica's address, asks GET /ready, and when it is ready reads GET /v1/models (the models it
// serves) and GET /metrics (running and waiting requests, KV-cache usage), all on one kept-alive
// connection; the replica table takes the replica out after failed rounds and back in after good
// ones.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "router/replica_table.h"

namespace inferd::router {

struct HealthCheckConfig {
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{2000};  // one HTTP exchange
  std::string api_key;                      // sent to the replicas (their /v1/models)
};

// The load a replica's /metrics page reports (sums over label sets); a field the page lacks
// stays empty.
struct LoadMetrics {
  std::optional<double> running, waiting, kv_usage;
};
LoadMetrics parse_load_metrics(const std::string& page);

// The model ids of a /v1/models answer; nullopt when it is not one.
std::optional<std::vector<std::string>> parse_model_list(const std::string& body);

struct HealthSession;  // one replica's kept-alive connection (health_checker.cc)

class HealthChecker {
 public:
  HealthChecker(boost::asio::io_context& io, ReplicaTable& table, HealthCheckConfig config);
  // Starts the loop of one replica; it ends when the replica is removed from the table or stop().
  void watch(std::shared_ptr<Replica> replica);
  void stop() { stopped_ = true; }

 private:
  boost::asio::awaitable<void> loop(std::shared_ptr<Replica> replica);
  boost::asio::awaitable<HealthReport> check(const Replica& replica, HealthSession& session);

  boost::asio::io_context& io_;
  ReplicaTable& table_;
  HealthCheckConfig config_;
  std::atomic<bool> stopped_{false};
};

}  // namespace inferd::router
