#include "router/router_metrics.h"

#include <fmt/format.h>

#include <cmath>

namespace inferd::router {

namespace {

void head(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

const std::vector<double> kLatencyBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06,  0.08,
                                             0.1,   0.25,  0.5,  0.75, 1.0,  2.5,   5.0,
                                             7.5,   10.0,  20.0, 40.0, 80.0, 160.0, 640.0};

}  // namespace

RouterMetrics::RouterMetrics() {
  for (const char* d : {"cache_hit", "cache_miss", "load_balanced"}) decisions_[d] = 0;
}

void RouterMetrics::record_request(const std::string& replica, const std::string& model,
                                   int status) {
  std::lock_guard lk(mu_);
  requests_[{replica, model, status}]++;
}

void RouterMetrics::record_retry(const std::string& replica, const std::string& reason) {
  std::lock_guard lk(mu_);
  retries_[{replica, reason}]++;
}

void RouterMetrics::record_decision(const std::string& reason) {
  std::lock_guard lk(mu_);
  decisions_[reason]++;
}

void RouterMetrics::record_upstream(const std::string& replica, double first_byte_s,
                                    double total_s) {
  std::lock_guard lk(mu_);
  if (first_byte_s >= 0)
    first_byte_.try_emplace(replica, kLatencyBuckets).first->second.observe(first_byte_s);
  upstream_.try_emplace(replica, kLatencyBuckets).first->second.observe(total_s);
}

void RouterMetrics::record_http(const std::string& handler, const std::string& method, int status) {
  std::lock_guard lk(mu_);
  http_[{handler, method, status}]++;
}

std::string RouterMetrics::render(const std::vector<ReplicaState>& replicas,
                                  size_t prefix_index_entries) const {
  std::lock_guard lk(mu_);
  std::string out;
  head(out, "inferd:router_requests", "counter",
       "Requests answered, by the replica that served them (none: no replica), model and status.");
  for (const auto& [k, n] : requests_) {
    const auto& [rep, model, status] = k;
    out += fmt::format(
        "inferd:router_requests_total{{replica=\"{}\",model_name=\"{}\",status=\"{}\"}} {}\n",
        server::prom_label(rep), server::prom_label(model), status, server::prom_number(double(n)));
  }
  head(out, "inferd:router_retries", "counter",
       "Attempts that failed before the first byte reached the client and were retried, by the "
       "replica that failed and why.");
  for (const auto& [k, n] : retries_)
    out += fmt::format("inferd:router_retries_total{{replica=\"{}\",reason=\"{}\"}} {}\n",
                       server::prom_label(k.first), server::prom_label(k.second),
                       server::prom_number(double(n)));
  head(out, "inferd:router_routing_decisions", "counter",
       "Routing decisions: cache_hit (the replica holding the prompt's prefix), cache_miss (no "
       "replica held enough of it: least loaded), load_balanced (the holder was much busier: "
       "least loaded), or the fixed policy's name.");
  for (const auto& [d, n] : decisions_)
    out += fmt::format("inferd:router_routing_decisions_total{{decision=\"{}\"}} {}\n",
                       server::prom_label(d), server::prom_number(double(n)));
  head(out, "inferd:router_upstream_first_byte_seconds", "histogram",
       "Seconds from sending a request to a replica to the first byte of its response body.");
  for (const auto& [rep, h] : first_byte_)
    h.render(out, "inferd:router_upstream_first_byte_seconds",
             fmt::format("replica=\"{}\"", server::prom_label(rep)));
  head(out, "inferd:router_upstream_latency_seconds", "histogram",
       "Seconds from sending a request to a replica to the end of its response.");
  for (const auto& [rep, h] : upstream_)
    h.render(out, "inferd:router_upstream_latency_seconds",
             fmt::format("replica=\"{}\"", server::prom_label(rep)));
  head(out, "inferd:router_replica_healthy", "gauge",
       "1 when the replica is in rotation (ready, models known), else 0.");
  for (const auto& r : replicas)
    out += fmt::format("inferd:router_replica_healthy{{replica=\"{}\"}} {}\n",
                       server::prom_label(r.url), r.healthy ? "1.0" : "0.0");
  head(out, "inferd:router_replica_problem", "gauge",
       "1 for a replica out of rotation, labelled with why its last health check failed: "
       "unauthorized (401/403: --backend-api-key), connection_refused, timeout, tls, connection, "
       "resolve, not_ready, bad_response.");
  for (const auto& r : replicas)
    if (!r.problem.empty())
      out += fmt::format("inferd:router_replica_problem{{replica=\"{}\",reason=\"{}\"}} 1.0\n",
                         server::prom_label(r.url), server::prom_label(r.problem));
  head(out, "inferd:router_health_check_failures", "counter",
       "Failed health checks by replica and reason (the reasons of "
       "inferd:router_replica_problem).");
  for (const auto& r : replicas)
    for (const auto& [reason, n] : r.check_failures)
      out += fmt::format(
          "inferd:router_health_check_failures_total{{replica=\"{}\",reason=\"{}\"}} {}\n",
          server::prom_label(r.url), server::prom_label(reason), server::prom_number(double(n)));
  head(out, "inferd:router_replica_in_flight", "gauge",
       "Requests the router has open on the replica.");
  for (const auto& r : replicas)
    out += fmt::format("inferd:router_replica_in_flight{{replica=\"{}\"}} {}\n",
                       server::prom_label(r.url), server::prom_number(double(r.in_flight)));
  head(out, "inferd:router_replica_waiting", "gauge",
       "The replica's vllm:num_requests_waiting at its last health check.");
  for (const auto& r : replicas)
    out += fmt::format("inferd:router_replica_waiting{{replica=\"{}\"}} {}\n",
                       server::prom_label(r.url), server::prom_number(r.waiting));
  head(out, "inferd:router_replica_running", "gauge",
       "The replica's vllm:num_requests_running at its last health check.");
  for (const auto& r : replicas)
    out += fmt::format("inferd:router_replica_running{{replica=\"{}\"}} {}\n",
                       server::prom_label(r.url), server::prom_number(r.running));
  head(out, "inferd:router_replica_kv_cache_usage_perc", "gauge",
       "The replica's vllm:kv_cache_usage_perc at its last health check.");
  for (const auto& r : replicas)
    out += fmt::format("inferd:router_replica_kv_cache_usage_perc{{replica=\"{}\"}} {}\n",
                       server::prom_label(r.url), server::prom_number(r.kv_usage));
  head(out, "inferd:router_prefix_index_entries", "gauge",
       "Entries (prefix chunk, replica) in the router's approximate radix tree.");
  out += fmt::format("inferd:router_prefix_index_entries {}\n",
                     server::prom_number(double(prefix_index_entries)));
  head(out, "inferd:router_http_requests", "counter",
       "HTTP requests to the router by handler, method and status.");
  for (const auto& [k, n] : http_) {
    const auto& [h, m, st] = k;
    out += fmt::format(
        "inferd:router_http_requests_total{{handler=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
        server::prom_label(h), server::prom_label(m), st, server::prom_number(double(n)));
  }
  return out;
}

}  // namespace inferd::router
