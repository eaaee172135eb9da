// The router's /metrics page (Prometheus text format, `inferd:router_` prefix): requests per
// replica and status, retries, routing decisions, upstream latency, each replica's health and load.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "router/replica_table.h"
#include "server/metrics.h"

namespace inferd::router {

class RouterMetrics {
 public:
  RouterMetrics();
  // A request answered to the client after it went to `replica` ("none" when no replica took it).
  void record_request(const std::string& replica, const std::string& model, int status);
  // An attempt on `replica` failed before anything reached the client; the request goes on
  // elsewhere (or fails). `reason`: connect, write, no_response, stream, status_<code>.
  void record_retry(const std::string& replica, const std::string& reason);
  // cache_hit | cache_miss | load_balanced | round_robin | least_loaded | random
  void record_decision(const std::string& reason);
  // One upstream exchange: seconds to the first body byte (< 0: none) and to its end.
  void record_upstream(const std::string& replica, double first_byte_s, double total_s);
  void record_http(const std::string& handler, const std::string& method, int status);

  std::string render(const std::vector<ReplicaState>& replicas, size_t prefix_index_entries) const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, int64_t> requests_;
  std::map<std::pair<std::string, std::string>, int64_t> retries_;
  std::map<std::string, int64_t> decisions_;
  std::map<std::string, server::Histogram> first_byte_;
  std::map<std::string, server::Histogram> upstream_;
  std::map<std::tuple<std::string, std::string, int>, int64_t> http_;
};

}  // namespace inferd::router
