// The router's replica table: every `inferd serve` replica behind it, with what the health poller
// last saw (ready or not, the models it serves, its load from /metrics) and the requests the
// router has open on it; and the routing decision, taken under the same mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "router/routing_policy.h"
#include "server/http_client.h"

namespace inferd::router {

// http://host[:port][/prefix] (https is not supported).
// A replica's URL (server/http_client.h).
using BackendAddress = server::HttpUrl;
// Throws Error naming the URL and what was expected.
BackendAddress parse_backend_url(const std::string& url);

// A backend file: one URL a line; blank lines and '#' comments are skipped. Throws Error.
std::vector<std::string> parse_backend_list(const std::string& text, const std::string& source);

// Why a health check failed (HealthReport::reason; the label of the router's metrics).
namespace health_reason {
inline constexpr const char* kUnauthorized = "unauthorized";  // 401 / 403: --backend-api-key
inline constexpr const char* kConnectRefused = "connection_refused";
inline constexpr const char* kTimeout = "timeout";  // connect or answer past --health-check-timeout
inline constexpr const char* kTls = "tls";          // the replica answers in TLS (https)
inline constexpr const char* kConnection = "connection";     // reset, closed without an answer, ...
inline constexpr const char* kResolve = "resolve";           // the host name does not resolve
inline constexpr const char* kNotReady = "not_ready";        // /ready answered another status
inline constexpr const char* kBadResponse = "bad_response";  // /v1/models: no model list
}  // namespace health_reason

// What one health check found.
struct HealthReport {
  bool ready = false;
  std::string error;                               // why not ready
  std::string reason;                              // why not ready, one of health_reason
  std::optional<std::vector<std::string>> models;  // when /v1/models was read
  std::optional<double> running, waiting, kv_usage;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // resolved address
};

// A copy of one replica's state (for metrics, logs and tests).
struct ReplicaState {
  uint32_t id = 0;
  std::string url;
  bool healthy = false;
  bool removed = false;
  std::string last_error;
  std::string problem;  // the last failed check's reason (health_reason) while out; else empty
  std::map<std::string, int64_t> check_failures;  // failed health checks by reason
  std::vector<std::string> models;
  double running = 0, waiting = 0, kv_usage = 0;
  int64_t in_flight = 0;
  double load() const;
};

class Replica {
 public:
  Replica(uint32_t id, BackendAddress addr) : id_(id), addr_(std::move(addr)) {}
  uint32_t id() const { return id_; }
  const BackendAddress& addr() const { return addr_; }

 private:
  friend class ReplicaTable;
  const uint32_t id_;
  const BackendAddress addr_;
  // Guarded by the table's mutex.
  ReplicaState state_;
  int failures_ = 0;
  int successes_ = 0;
  std::string logged_problem_;  // the problem last logged: each is logged once, not every check
  std::vector<boost::asio::ip::tcp::endpoint> endpoints_;
};

struct HealthThresholds {
  int failures_to_remove = 1;  // consecutive failed checks that take a replica out
  int successes_to_add = 1;    // consecutive good checks that bring it back
};

class ReplicaTable {
 public:
  ReplicaTable(PolicyConfig policy, HealthThresholds health);

  // Makes the set of backends exactly `urls` (parsed with parse_backend_url): adds the new ones
  // (not healthy until checked) and marks the ones no longer listed removed. Returns the added.
  std::vector<std::shared_ptr<Replica>> set_backends(const std::vector<std::string>& urls);

  struct Pick {
    std::shared_ptr<Replica> replica;
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;
    const char* reason = "";
  };
  // Chooses among the healthy replicas that serve `model` (any model when empty), except those in
  // `exclude`, and counts one more request open on the chosen one (release() it). nullopt when
  // there is none.
  std::optional<Pick> pick(const std::string& model, std::string_view key,
                           const std::vector<uint32_t>& exclude);
  void release(Replica& r);

  // A request could not reach the replica (connection refused or reset): out until the poller
  // sees it ready again.
  void mark_failed(Replica& r, const std::string& error);
  // Applies a health check. Returns true when the replica changed between in and out.
  bool apply(Replica& r, const HealthReport& h);

  // Models of the healthy replicas (sorted, unique).
  std::vector<std::string> served_models() const;
  // True when some replica, healthy or not, reported `model`.
  bool knows_model(const std::string& model) const;
  size_t num_healthy() const;
  std::vector<ReplicaState> states() const;  // replicas not removed, by id
  std::vector<std::shared_ptr<Replica>> replicas() const;
  size_t prefix_index_size() const;
  bool removed(const Replica& r) const;

 private:
  mutable std::mutex mu_;
  RoutingPolicy policy_;
  HealthThresholds health_;
  std::vector<std::shared_ptr<Replica>> replicas_;  // not removed
  uint32_t next_id_ = 1;
};

}  // namespace inferd::router
