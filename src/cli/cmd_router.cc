// `inferd router --backend URL ...`: the OpenAI-compatible front for many `inferd serve` replicas
// (prefix-aware routing, health checks, retries; flag names follow SGLang's router where it has
// one).
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/logging.h"
#include "router/router.h"
#include "server/api_keys.h"

namespace inferd::cli {

namespace {

struct RouterArgs {
  std::vector<std::string> backends;
  std::string backend_file;
  std::vector<std::string> backend_dns;
  double discovery_interval = 2;
  std::string host = "0.0.0.0";
  int port = 8000;
  std::string policy = "cache_aware";
  double cache_threshold = 0.5;
  double balance_abs_threshold = 32;
  double balance_rel_threshold = 1.5;
  size_t max_tree_size = size_t(1) << 18;
  std::vector<std::string> api_keys;
  std::string api_key_file;
  std::string backend_api_key;
  std::vector<std::string> allowed_origins{"*"};
  int64_t rate_limit_rpm = 0;
  int64_t rate_limit_tpm = 0;
  int64_t max_concurrent_per_key = 0;
  int max_retries = 2;
  double connect_timeout = 5;
  double request_timeout = 600;
  double health_check_interval = 1;
  double health_check_timeout = 2;
  int health_failure_threshold = 1;
  int health_success_threshold = 1;
  HttpFlags http;
};

std::chrono::milliseconds ms(double s) {
  return std::chrono::milliseconds(int64_t(s * 1000));
}

void run_router(const RouterArgs& a) {
  if (a.port < 0 || a.port > 65535) fail("--port must be in [0, 65535], got {}", a.port);
  if (!(a.cache_threshold >= 0 && a.cache_threshold <= 1))
    fail("--cache-threshold must be in [0, 1], got {}", a.cache_threshold);
  if (a.balance_abs_threshold < 0)
    fail("--balance-abs-threshold must be >= 0, got {}", a.balance_abs_threshold);
  if (a.balance_rel_threshold < 1)
    fail("--balance-rel-threshold must be >= 1, got {}", a.balance_rel_threshold);
  if (!(a.health_check_interval > 0))
    fail("--health-check-interval must be positive, got {}", a.health_check_interval);
  if (!(a.health_check_timeout > 0))
    fail("--health-check-timeout must be positive, got {}", a.health_check_timeout);
  if (a.health_failure_threshold < 1 || a.health_success_threshold < 1)
    fail("--health-failure-threshold and --health-success-threshold must be >= 1");
  if (!(a.discovery_interval > 0))
    fail("--discovery-interval must be positive, got {}", a.discovery_interval);
  if (!(a.connect_timeout > 0))
    fail("--connect-timeout must be positive, got {}", a.connect_timeout);
  if (a.request_timeout < 0) fail("--request-timeout must be >= 0, got {}", a.request_timeout);
  if (a.rate_limit_rpm < 0) fail("--rate-limit-rpm must be >= 0, got {}", a.rate_limit_rpm);
  if (a.rate_limit_tpm < 0) fail("--rate-limit-tpm must be >= 0, got {}", a.rate_limit_tpm);
  if (a.max_concurrent_per_key < 0)
    fail("--max-concurrent-requests-per-key must be >= 0, got {}", a.max_concurrent_per_key);

  const sigset_t sigs = prepare_process();

  router::RouterConfig c;
  c.http.host = a.host;
  c.http.port = uint16_t(a.port);
  c.http.io_threads = a.http.io_threads;
  c.http.max_body_bytes = a.http.max_request_body_bytes;
  c.http.keep_alive_timeout = ms(std::max(0.001, a.http.keep_alive_timeout));
  a.http.apply_read_timeouts(c.http);
  c.backends = split_commas(a.backends);
  c.backend_file = a.backend_file;
  c.backend_dns = split_commas(a.backend_dns);
  c.discovery_interval = ms(a.discovery_interval);
  c.policy.policy = router::parse_policy(a.policy);
  c.policy.cache_threshold = a.cache_threshold;
  c.policy.balance_abs_threshold = a.balance_abs_threshold;
  c.policy.balance_rel_threshold = a.balance_rel_threshold;
  c.policy.max_tree_size = a.max_tree_size;
  c.health.failures_to_remove = a.health_failure_threshold;
  c.health.successes_to_add = a.health_success_threshold;
  c.health_check.interval = ms(a.health_check_interval);
  c.health_check.timeout = ms(a.health_check_timeout);
  c.health_check.api_key = a.backend_api_key;
  c.api_keys = server::collect_api_keys(a.api_keys, a.api_key_file);
  c.backend_api_key = a.backend_api_key;
  c.allowed_origins = split_commas(a.allowed_origins);
  c.rate_limit_rpm = a.rate_limit_rpm;
  c.rate_limit_tpm = a.rate_limit_tpm;
  c.max_concurrent_per_key = a.max_concurrent_per_key;
  c.max_retries = a.max_retries;
  c.connect_timeout_s = a.connect_timeout;
  c.request_timeout_s = a.request_timeout;
  c.drain_timeout_s = a.http.drain_timeout;
  router::Router r(c);
  r.start();

  int sig = 0;
  sigwait(&sigs, &sig);
  LOG_INFO("received {}: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  r.drain_and_stop();
}

}  // namespace

void register_router(CLI::App& app) {
  auto a = std::make_shared<RouterArgs>();
  CLI::App* cmd = app.add_subcommand(
      "router",
      "Front many `inferd serve` replicas with one OpenAI-compatible address (prefix-aware "
      "routing, health checks, retries)");
  cmd->add_option("--backend", a->backends,
                  "A replica's URL, http://HOST:PORT (repeat or comma-separate for several)");
  cmd->add_option("--backend-file", a->backend_file,
                  "A file of replica URLs, one a line ('#' comments); re-read when it changes");
  cmd->add_option("--backend-dns", a->backend_dns,
                  "http://NAME:PORT whose every DNS address is a replica (a Kubernetes headless "
                  "Service); resolved again every --discovery-interval");
  cmd->add_option("--discovery-interval", a->discovery_interval,
                  "Seconds between re-reads of --backend-file and --backend-dns")
      ->capture_default_str();
  cmd->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->port, "Port to listen on (0: any free port)")->capture_default_str();
  cmd->add_option("--policy", a->policy,
                  "cache_aware (prefix affinity unless the replica is much busier), round_robin, "
                  "least_loaded or random")
      ->capture_default_str();
  cmd->add_option("--cache-threshold", a->cache_threshold,
                  "cache_aware: fraction of the prompt a replica must hold to be preferred")
      ->capture_default_str();
  cmd->add_option("--balance-abs-threshold", a->balance_abs_threshold,
                  "cache_aware: the holder is 'much busier' when its load exceeds the least "
                  "loaded's by more than this many requests...")
      ->capture_default_str();
  cmd->add_option("--balance-rel-threshold", a->balance_rel_threshold,
                  "...and is more than this many times it")
      ->capture_default_str();
  cmd->add_option("--max-tree-size", a->max_tree_size,
                  "cache_aware: most (prefix chunk, replica) entries remembered (LRU)")
      ->capture_default_str();
  cmd->add_option("--api-key", a->api_keys,
                  "Require 'Authorization: Bearer KEY' on /v1 routes (repeat or comma-separate)")
      ->envname("INFERD_API_KEY");
  cmd->add_option("--api-key-file", a->api_key_file,
                  "Read the API keys from this file, one a line ('#' comments and blank lines "
                  "ignored), instead of the command line where `ps` shows them");
  cmd->add_option("--backend-api-key", a->backend_api_key,
                  "Bearer key sent to the replicas (default: the client's Authorization header)")
      ->envname("INFERD_BACKEND_API_KEY");
  cmd->add_option("--allowed-origins", a->allowed_origins,
                  "CORS origins allowed ('*' for any; comma-separated); empty string: CORS off")
      ->capture_default_str();
  cmd->add_option("--rate-limit-rpm", a->rate_limit_rpm,
                  "Requests per minute per API key (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--max-concurrent-requests-per-key", a->max_concurrent_per_key,
                  "Most completion requests of one API key in flight at once; beyond, 429 with "
                  "Retry-After (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--rate-limit-tpm", a->rate_limit_tpm,
                  "Tokens (prompt + completion, from the replicas' usage) per minute per API key "
                  "(0: no limit)")
      ->capture_default_str();
  cmd->add_option("--max-retries", a->max_retries,
                  "Other replicas tried when an attempt fails before the first byte reached the "
                  "client")
      ->capture_default_str();
  cmd->add_option("--connect-timeout", a->connect_timeout, "Seconds to connect to a replica")
      ->capture_default_str();
  cmd->add_option("--request-timeout", a->request_timeout,
                  "Seconds a replica may stay silent during a request (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--health-check-interval", a->health_check_interval,
                  "Seconds between health checks of each replica (/ready, /v1/models, /metrics)")
      ->capture_default_str();
  cmd->add_option("--health-check-timeout", a->health_check_timeout,
                  "Seconds one health-check request may take")
      ->capture_default_str();
  cmd->add_option("--health-failure-threshold", a->health_failure_threshold,
                  "Failed checks in a row that take a replica out")
      ->capture_default_str();
  cmd->add_option("--health-success-threshold", a->health_success_threshold,
                  "Good checks in a row that bring it back")
      ->capture_default_str();
  a->http.add_to(cmd);
  cmd->callback([a] { run_router(*a); });
}

}  // namespace inferd::cli
