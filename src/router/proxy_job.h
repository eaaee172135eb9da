// One proxied request (ProxyJob), on its connection's strand, and the outcome of one attempt of
// it on a replica (Router::Attempt): what proxy.cc (picking, retrying) and upstream_attempt.cc
// (one exchange with a replica) share.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "router/router.h"

namespace inferd::router {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ProxyJob {
  std::shared_ptr<server::Connection> conn;
  Router::Exchange ex;
  boost::beast::http::verb method = boost::beast::http::verb::post;
  std::string body;
  std::string model;
  std::string key;  // routing key (prompt_key)
  Headers forward;  // request headers passed to the replica
  bool client_gone = false;
  boost::beast::tcp_stream* upstream = nullptr;  // the attempt in progress
  int status = 0;                                // what the client got (499: it left)
  std::string replica = "none";                  // the replica that answered
  // Tokens-per-minute accounting: the client's API key, the usage the replica reported, and
  // whether the stream's usage event is the router's own (include_usage added upstream).
  std::string api_key;
  int64_t usage_tokens = 0;
  bool strip_usage_event = false;
  bool count_usage = false;
  // The key's place under --max-concurrent-requests-per-key; run() holds it to its end.
  server::ConcurrencyLimiter::Slot slot;
  // Multi-model serving: the request's model must be loaded first; keep_alive (seconds) is the
  // request's own (nullopt: --idle-unload-seconds).
  bool needs_model = false;
  std::optional<double> keep_alive_s;
};

// A request's keep_alive (Ollama's: seconds as a number, or a duration string), taken out of
// `body`; nullopt when it has none. Throws ApiError 400 naming the field on a bad value.
std::optional<double> take_keep_alive(nlohmann::json& body);

struct Router::Attempt {
  bool done = false;   // the client got its answer (or left)
  std::string reason;  // why it failed (retry reason)
  int status = 0;      // a retryable HTTP answer, to pass on when nothing better comes
  std::string body;
  Headers headers;
};

}  // namespace inferd::router
