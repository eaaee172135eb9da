#include "router/router.h"

#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/logging.h"
#include "router/prompt_key.h"
#include "server/api_error.h"
#include "server/api_keys.h"
#include "server/protocol.h"

namespace inferd::router {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using server::ApiError;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

Clock::duration from_seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// The handler label of a path for metrics: known routes only.
std::string handler_label(const std::string& path) {
  static const char* kRoutes[] = {"/health",    "/ready",          "/metrics",
                                  "/version",   "/tokenize",       "/detokenize",
                                  "/v1/models", "/v1/completions", "/v1/chat/completions",
                                  "/"};
  for (const char* r : kRoutes)
    if (path == r) return path;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{model}";
  return "other";
}

// The opening event of a chat stream (the assistant role, no text yet). The router holds it back
// until something more arrives, so that a replica that dies before its first token leaves the
// request retryable.
bool is_preamble_event(std::string_view data) {
  const nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
  if (!j.is_object() || j.contains("error")) return false;
  auto ch = j.find("choices");
  if (ch == j.end() || !ch->is_array() || ch->empty()) return false;
  for (const auto& c : *ch) {
    if (!c.is_object()) return false;
    if (auto f = c.find("finish_reason"); f != c.end() && !f->is_null()) return false;
    auto d = c.find("delta");
    if (d == c.end() || !d->is_object() || !d->contains("role")) return false;
    for (const auto& [k, v] : d->items()) {
      if (k == "role") continue;
      if (k == "content" && v.is_string() && v.get_ref<const std::string&>().empty()) continue;
      if (v.is_null()) continue;
      return false;
    }
  }
  return true;
}

// total_tokens of a response's (or a stream event's) "usage" object, or -1.
int64_t usage_total(std::string_view json_text) {
  if (json_text.find("\"usage\"") == std::string_view::npos) return -1;
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (!j.is_object()) return -1;
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object()) return -1;
  auto t = u->find("total_tokens");
  return t != u->end() && t->is_number_integer() ? t->get<int64_t>() : -1;
}

// Passes SSE bytes through event by event, taking the usage event's total_tokens and dropping
// that event when the router asked for it on the client's behalf.
class UsageTap {
 public:
  explicit UsageTap(bool strip) : strip_(strip) {}
  std::string feed(std::string_view bytes) {
    pending_.append(bytes);
    std::string out;
    size_t pos = 0;
    for (size_t end; (end = pending_.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
      std::string_view ev(pending_.data() + pos, end - pos);
      std::string_view data = ev;
      bool usage_only = false;
      if (data.starts_with("data:")) {
        data.remove_prefix(5);
        if (!data.empty() && data[0] == ' ') data.remove_prefix(1);
        const int64_t t = usage_total(data);
        if (t >= 0) {
          total_ = t;
          usage_only = data.find("\"choices\":[]") != std::string_view::npos;
        }
      }
      if (!(strip_ && usage_only)) out.append(ev).append("\n\n");
    }
    pending_.erase(0, pos);
    return out;
  }
  std::string flush() { return std::exchange(pending_, std::string()); }
  int64_t total() const { return total_; }

 private:
  bool strip_;
  std::string pending_;
  int64_t total_ = -1;
};

// True when `held` (the start of an SSE body) holds a complete event that is not the preamble:
// the stream may then go to the client.
bool ready_to_commit(const std::string& held) {
  size_t pos = 0;
  for (;;) {
    const size_t end = held.find("\n\n", pos);
    if (end == std::string::npos) return held.size() > (64u << 10);
    std::string_view ev(held.data() + pos, end - pos);
    pos = end + 2;
    if (!ev.starts_with("data:")) return true;  // a comment or another field: pass it on
    ev.remove_prefix(5);
    if (!ev.empty() && ev[0] == ' ') ev.remove_prefix(1);
    if (!is_preamble_event(ev)) return true;
  }
}

bool is_reset(const beast::error_code& ec) {
  return ec == net::error::connection_reset || ec == net::error::eof ||
         ec == http::error::end_of_stream || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted || ec == http::error::partial_message;
}

}  // namespace

struct Router::Exchange {
  std::string route;
  std::string target;  // with the query
  std::string method;
  Clock::time_point start = Clock::now();
  Headers cors;  // CORS headers every answer carries
};

// One proxied request, on its connection's strand.
struct ProxyJob {
  std::shared_ptr<server::Connection> conn;
  Router::Exchange ex;
  http::verb method = http::verb::post;
  std::string body;
  std::string model;
  std::string key;  // routing key (prompt_key)
  Headers forward;  // request headers passed to the replica
  bool client_gone = false;
  beast::tcp_stream* upstream = nullptr;  // the attempt in progress
  int status = 0;                         // what the client got (499: it left)
  std::string replica = "none";           // the replica that answered
  // Tokens-per-minute accounting: the client's API key, the usage the replica reported, and
  // whether the stream's usage event is the router's own (include_usage added upstream).
  std::string api_key;
  int64_t usage_tokens = 0;
  bool strip_usage_event = false;
  bool count_usage = false;
};

struct Router::Attempt {
  bool done = false;   // the client got its answer (or left)
  std::string reason;  // why it failed (retry reason)
  int status = 0;      // a retryable HTTP answer, to pass on when nothing better comes
  std::string body;
  Headers headers;
};

// ---- Router -----------------------------------------------------------------------------------

Router::Router(RouterConfig config)
    : config_(std::move(config)),
      table_(config_.policy, config_.health),
      limiter_(config_.rate_limit_rpm, config_.rate_limit_tpm),
      http_(config_.http, *this) {
  if (config_.backends.empty() && config_.backend_file.empty() && config_.backend_dns.empty())
    fail("no replicas: pass --backend URL (repeatable), --backend-file FILE or --backend-dns URL");
  if (config_.max_retries < 0) fail("--max-retries must be >= 0, got {}", config_.max_retries);
  // Fail early on a bad URL.
  for (const auto& b : config_.backends) (void)parse_backend_url(b);
  for (const auto& b : config_.backend_dns) (void)parse_backend_url(b);
  health_ = std::make_unique<HealthChecker>(http_.io(), table_, config_.health_check);
}

Router::~Router() {
  stop();
}

void Router::apply_backends() {
  std::vector<std::string> urls = config_.backends;
  urls.insert(urls.end(), file_urls_.begin(), file_urls_.end());
  for (const auto& [name, list] : dns_urls_) urls.insert(urls.end(), list.begin(), list.end());
  for (auto& r : table_.set_backends(urls)) health_->watch(r);
  std::vector<uint32_t> ids;
  for (const auto& r : table_.replicas()) ids.push_back(r->id());
  pool_.retain(ids);
}

void Router::reload_backend_file() {
  std::ifstream f(config_.backend_file);
  if (!f) fail("--backend-file '{}': cannot read it", config_.backend_file);
  std::stringstream ss;
  ss << f.rdbuf();
  file_urls_ = parse_backend_list(ss.str(), config_.backend_file);
  apply_backends();
}

namespace {

int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// One replica URL per address a --backend-dns name resolves to.
std::vector<std::string> expand_dns(const BackendAddress& a,
                                    const tcp::resolver::results_type& results) {
  std::vector<std::string> out;
  for (const auto& r : results) {
    const auto ip = r.endpoint().address();
    const std::string host = ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string();
    std::string url = "http://" + host + ":" + std::to_string(a.port) + a.path;
    if (std::find(out.begin(), out.end(), url) == out.end()) out.push_back(std::move(url));
  }
  return out;
}

}  // namespace

net::awaitable<void> Router::discover() {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer timer(ex);
  tcp::resolver resolver(ex);
  while (!stopped_) {
    timer.expires_after(config_.discovery_interval);
    beast::error_code ec;
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (stopped_) break;
    bool changed = false;
    if (!config_.backend_file.empty()) {
      const int64_t m = mtime_ns(config_.backend_file);
      if (m < 0) {
        LOG_WARN("router: --backend-file '{}' is gone; keeping the replicas it listed",
                 config_.backend_file);
      } else if (m != backend_file_mtime_) {
        backend_file_mtime_ = m;
        try {
          std::ifstream f(config_.backend_file);
          std::stringstream ss;
          ss << f.rdbuf();
          file_urls_ = parse_backend_list(ss.str(), config_.backend_file);
          changed = true;
        } catch (const Error& e) {
          LOG_WARN("router: {}; keeping the previous replicas", e.what());
        }
      }
    }
    for (const auto& name : config_.backend_dns) {
      const BackendAddress a = parse_backend_url(name);
      auto results = co_await resolver.async_resolve(a.host, std::to_string(a.port),
                                                     net::redirect_error(net::use_awaitable, ec));
      if (stopped_) co_return;
      std::vector<std::string> urls;
      if (ec) {
        // A headless Service without ready pods has no addresses: no replicas, not an error.
        if (ec != net::error::host_not_found && ec != net::error::host_not_found_try_again) {
          LOG_WARN("router: --backend-dns '{}': {}; keeping the previous replicas", name,
                   ec.message());
          continue;
        }
      } else {
        urls = expand_dns(a, results);
      }
      if (dns_urls_[name] != urls) {
        dns_urls_[name] = std::move(urls);
        changed = true;
      }
    }
    if (changed) apply_backends();
  }
}

void Router::start() {
  if (!config_.backend_file.empty()) {
    backend_file_mtime_ = mtime_ns(config_.backend_file);
    std::ifstream f(config_.backend_file);
    if (!f) fail("--backend-file '{}': cannot read it", config_.backend_file);
    std::stringstream ss;
    ss << f.rdbuf();
    file_urls_ = parse_backend_list(ss.str(), config_.backend_file);
  }
  for (const auto& name : config_.backend_dns) {
    const BackendAddress a = parse_backend_url(name);
    tcp::resolver resolver(http_.io());
    beast::error_code ec;
    auto results = resolver.resolve(a.host, std::to_string(a.port), ec);
    if (ec)
      LOG_WARN("router: --backend-dns '{}': {} (no replicas from it yet)", name, ec.message());
    else
      dns_urls_[name] = expand_dns(a, results);
  }
  apply_backends();
  http_.start();
  if (!config_.backend_file.empty() || !config_.backend_dns.empty())
    net::co_spawn(net::make_strand(http_.io()), discover(), net::detached);
  LOG_INFO("routing on http://{}:{} ({} replicas, policy {})", config_.http.host, http_.port(),
           table_.replicas().size(), to_string(config_.policy.policy));
}

void Router::stop() {
  if (stopped_.exchange(true)) return;
  draining_ = true;
  if (health_) health_->stop();
  http_.stop();
}

void Router::drain_and_stop() {
  if (stopped_) return;
  draining_ = true;
  http_.stop_accepting();
  LOG_INFO("draining: {} request(s) in flight, waiting up to {} s", active_.load(),
           config_.drain_timeout_s);
  const auto deadline = Clock::now() + from_seconds(config_.drain_timeout_s);
  while (active_ > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (active_ > 0) LOG_WARN("drain timeout: closing {} request(s)", active_.load());
  stop();
  LOG_INFO("drained; stopped");
}

server::Response Router::http_error(int status, const std::string& message, unsigned version) {
  ApiError e(status, message, "invalid_request_error", std::nullopt,
             status == 413 ? std::optional<std::string>("request_too_large") : std::nullopt);
  server::Response res{http::status(status), version};
  res.set(http::field::content_type, "application/json");
  res.body() = e.body();
  metrics_.record_http("-", "-", status);
  return res;
}

void Router::send(const std::shared_ptr<server::Connection>& conn, const Exchange& ex,
                  server::Response&& res) {
  for (const auto& [k, v] : ex.cors) res.set(k, v);
  metrics_.record_http(handler_label(ex.route), ex.method, res.result_int());
  conn->respond(std::move(res));
}

void Router::send_json(const std::shared_ptr<server::Connection>& conn, const Exchange& ex,
                       int status, const std::string& body) {
  server::Response res{http::status(status), 11};
  res.set(http::field::content_type, "application/json");
  res.body() = body;
  send(conn, ex, std::move(res));
}

void Router::send_error(const std::shared_ptr<server::Connection>& conn, const Exchange& ex,
                        const ApiError& e) {
  server::Response res{http::status(e.status()), 11};
  res.set(http::field::content_type, "application/json");
  if (e.retry_after_s() > 0) res.set(http::field::retry_after, std::to_string(e.retry_after_s()));
  if (e.status() == 401) res.set(http::field::www_authenticate, "Bearer");
  res.body() = e.body();
  send(conn, ex, std::move(res));
}

void Router::check_auth(const server::Request& req) const {
  server::check_bearer(req[http::field::authorization], config_.api_keys);
}

void Router::handle(const std::shared_ptr<server::Connection>& conn, server::Request&& req) {
  Exchange ex;
  ex.target = std::string(req.target());
  ex.route = ex.target.substr(0, ex.target.find('?'));
  ex.method = req.method() == http::verb::unknown ? "other" : std::string(req.method_string());
  // CORS, as the server answers it (--allowed-origins).
  const std::string origin(req[http::field::origin]);
  const bool origin_ok = server::cors_headers(origin, config_.allowed_origins, ex.cors);
  try {
    if (req.method() == http::verb::options && !origin.empty() &&
        req.find(http::field::access_control_request_method) != req.end()) {
      if (!origin_ok)
        throw ApiError(400, fmt::format("Disallowed CORS origin '{}'.", origin),
                       "invalid_request_error", std::nullopt, "cors_origin");
      server::Response res{http::status::ok, req.version()};
      res.set(http::field::access_control_allow_methods, "GET, POST, OPTIONS");
      const std::string_view rh = req[http::field::access_control_request_headers];
      res.set(http::field::access_control_allow_headers,
              rh.empty() ? std::string("Authorization, Content-Type") : std::string(rh));
      res.set(http::field::access_control_max_age, "600");
      return send(conn, ex, std::move(res));
    }
    route(conn, req, ex);
  } catch (const ApiError& e) {
    LOG_INFO("router request route={} status={} error=\"{}\"", ex.route, e.status(), e.what());
    send_error(conn, ex, e);
  } catch (const std::exception& e) {
    LOG_ERROR("router request route={} status=500 error=\"{}\"", ex.route, e.what());
    send_error(conn, ex,
               ApiError(500, std::string("Internal server error: ") + e.what(), "server_error"));
  }
}

void Router::route(const std::shared_ptr<server::Connection>& conn, server::Request& req,
                   Exchange& ex) {
  const std::string& path = ex.route;
  const bool is_get = req.method() == http::verb::get;
  const bool is_post = req.method() == http::verb::post;
  auto allow = [&](const char* methods) {
    ApiError e(
        405, fmt::format("Method {} is not allowed on {}; allowed: {}.", ex.method, path, methods),
        "invalid_request_error", std::nullopt, "method_not_allowed");
    server::Response res{http::status::method_not_allowed, 11};
    res.set(http::field::allow, methods);
    res.set(http::field::content_type, "application/json");
    res.body() = e.body();
    send(conn, ex, std::move(res));
  };
  if (path == "/") {
    // The chat page of the replicas (`inferd serve` at /): from any ready one. It talks to this
    // router's /v1 routes, so it offers every model behind it.
    if (!is_get) return allow("GET");
    return proxy(conn, req, ex, ProxyKind::kPage);
  }
  if (path == "/health") {
    if (!is_get) return allow("GET");
    return send(conn, ex, server::Response{http::status::ok, 11});
  }
  if (path == "/ready") {
    if (!is_get) return allow("GET");
    if (draining_)
      throw ApiError(503, "The router is shutting down.", "service_unavailable_error", std::nullopt,
                     "not_ready");
    if (table_.num_healthy() == 0)
      throw ApiError(503, "No replica is ready.", "service_unavailable_error", std::nullopt,
                     "not_ready");
    return send_json(conn, ex, 200, R"({"status":"ready"})");
  }
  if (path == "/metrics") {
    if (!is_get) return allow("GET");
    server::Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = metrics_.render(table_.states(), table_.prefix_index_size());
    return send(conn, ex, std::move(res));
  }
  if (path == "/version") {
    if (!is_get) return allow("GET");
    return send_json(conn, ex, 200, R"({"version":"0.1.0"})");
  }
  if (path == "/v1/models" || path.rfind("/v1/models/", 0) == 0) {
    check_auth(req);
    if (!is_get) return allow("GET");
    const std::vector<std::string> models = table_.served_models();
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto card = [&](const std::string& id) {
      return nlohmann::ordered_json{
          {"id", id}, {"object", "model"}, {"created", now}, {"owned_by", "inferd"}};
    };
    if (path == "/v1/models") {
      nlohmann::ordered_json data = nlohmann::ordered_json::array();
      for (const auto& m : models) data.push_back(card(m));
      return send_json(
          conn, ex, 200,
          nlohmann::ordered_json{{"object", "list"}, {"data", std::move(data)}}.dump());
    }
    const std::string id = path.substr(std::string("/v1/models/").size());
    if (std::find(models.begin(), models.end(), id) == models.end())
      throw ApiError(404, fmt::format("The model `{}` does not exist.", id),
                     "invalid_request_error", "model", "model_not_found");
    return send_json(conn, ex, 200, card(id).dump());
  }
  if (path == "/v1/chat/completions" || path == "/v1/completions") {
    check_auth(req);
    if (!is_post) return allow("POST");
    return proxy(conn, req, ex, ProxyKind::kCompletion);
  }
  if (path == "/tokenize" || path == "/detokenize") {
    if (!is_post) return allow("POST");
    return proxy(conn, req, ex, ProxyKind::kModel);
  }
  if (path.rfind("/v1/", 0) == 0) check_auth(req);
  throw ApiError(404, fmt::format("Unknown route: {} {}", ex.method, path), "invalid_request_error",
                 std::nullopt, "not_found");
}

void Router::proxy(const std::shared_ptr<server::Connection>& conn, server::Request& req,
                   Exchange& ex, ProxyKind kind) {
  if (draining_)
    throw ApiError(503, "The router is shutting down.", "service_unavailable_error", std::nullopt,
                   "server_shutdown")
        .with_retry_after(config_.retry_after_s);
  const bool completion = kind == ProxyKind::kCompletion;
  server::json body =
      kind == ProxyKind::kPage ? server::json::object() : server::parse_json_body(req.body());
  auto job = std::make_shared<ProxyJob>();
  // The model: named, or the only one served (a page: any replica).
  if (kind == ProxyKind::kPage) {
    if (table_.num_healthy() == 0)
      throw ApiError(503, "No replica is ready.", "service_unavailable_error", std::nullopt,
                     "no_replica")
          .with_retry_after(config_.retry_after_s);
  } else if (auto m = server::get_string(body, "model")) {
    job->model = *m;
  } else {
    const std::vector<std::string> models = table_.served_models();
    if (models.size() != 1) {
      if (models.empty())
        throw ApiError(503, "No replica is ready.", "service_unavailable_error", std::nullopt,
                       "no_replica")
            .with_retry_after(config_.retry_after_s);
      throw server::bad_param("model", fmt::format("Missing required parameter: 'model' (this "
                                                   "router serves several models: {}).",
                                                   fmt::join(models, ", ")));
    }
    job->model = models.front();
  }
  if (kind != ProxyKind::kPage && !table_.knows_model(job->model)) {
    if (table_.num_healthy() == 0)
      throw ApiError(503, "No replica is ready.", "service_unavailable_error", std::nullopt,
                     "no_replica")
          .with_retry_after(config_.retry_after_s);
    throw ApiError(404, fmt::format("The model `{}` does not exist.", job->model),
                   "invalid_request_error", "model", "model_not_found");
  }
  if (completion && limiter_.enabled()) {
    const std::string_view auth = req[http::field::authorization];
    job->api_key = auth.size() > 7 ? std::string(auth.substr(7)) : "";
    // Tokens are charged once the replica reports them: a key over its token budget is refused
    // from then on, until the bucket refills.
    const auto v = limiter_.admit(job->api_key, 0);
    if (!v.allowed)
      throw ApiError(429,
                     fmt::format("Rate limit reached for {} per minute on this API key. "
                                 "Try again in {:.1f} s.",
                                 v.kind, v.retry_after_s),
                     v.kind, std::nullopt, "rate_limit_exceeded")
          .with_retry_after(std::max(1, int(std::ceil(v.retry_after_s))));
    if (config_.rate_limit_tpm > 0) {
      job->count_usage = true;
      const auto st = body.find("stream");
      if (st != body.end() && st->is_boolean() && st->get<bool>()) {
        const auto so = body.find("stream_options");
        const bool asked = so != body.end() && so->is_object() && so->contains("include_usage") &&
                           (*so)["include_usage"].is_boolean() &&
                           (*so)["include_usage"].get<bool>();
        if (!asked && (so == body.end() || so->is_object() || so->is_null())) {
          body["stream_options"]["include_usage"] = true;
          job->strip_usage_event = true;
        }
      }
    }
  }
  if (completion) job->key = prompt_key(body, ex.route == "/v1/chat/completions");
  job->conn = conn;
  job->ex = ex;
  job->method = req.method();
  job->body = job->strip_usage_event ? body.dump() : std::move(req.body());
  if (kind != ProxyKind::kPage) job->forward.emplace_back("Content-Type", "application/json");
  if (auto a = req[http::field::accept]; !a.empty()) job->forward.emplace_back("Accept", a);
  if (auto id = req["X-Request-Id"]; !id.empty()) job->forward.emplace_back("X-Request-Id", id);
  if (!config_.backend_api_key.empty())
    job->forward.emplace_back("Authorization", "Bearer " + config_.backend_api_key);
  else if (auto a = req[http::field::authorization]; !a.empty())
    job->forward.emplace_back("Authorization", a);
  ++active_;  // here, not in run(): a drain that starts before run() does must still see it
  net::co_spawn(conn->executor(), run(job), net::detached);
}

net::awaitable<void> Router::run(std::shared_ptr<ProxyJob> job) {
  struct Active {
    std::atomic<int64_t>& n;
    ~Active() { --n; }
  } active_guard{active_};
  job->conn->on_peer_gone([job] {
    job->client_gone = true;
    if (job->upstream) {
      beast::error_code ec;
      job->upstream->socket().close(ec);
    }
  });
  std::vector<uint32_t> tried;
  std::optional<Attempt> last;
  std::string last_replica = "none";
  for (int n = 0; n <= config_.max_retries; ++n) {
    std::optional<ReplicaTable::Pick> pick = table_.pick(job->model, job->key, tried);
    if (!pick) break;
    tried.push_back(pick->replica->id());
    metrics_.record_decision(pick->reason);
    struct InFlight {
      ReplicaTable& t;
      Replica& r;
      ~InFlight() { t.release(r); }
    } in_flight{table_, *pick->replica};
    Attempt a = co_await attempt(*job, *pick);
    if (a.done) {
      // A client that left: nginx's 499 (the replica aborts as its socket closes).
      if (job->client_gone) finish(*job, pick->replica->addr().url, 499);
      LOG_INFO(
          "router request route={} model={} replica={} status={} attempts={} decision={} "
          "total_ms={:.1f}",
          job->ex.route, job->model, job->replica, job->status, tried.size(), pick->reason,
          seconds(Clock::now() - job->ex.start) * 1e3);
      co_return;
    }
    metrics_.record_retry(pick->replica->addr().url, a.reason);
    LOG_INFO("router: attempt on {} failed ({}){}", pick->replica->addr().url, a.reason,
             n < config_.max_retries ? "; retrying on another replica" : "");
    last_replica = pick->replica->addr().url;
    last = std::move(a);
  }
  if (job->client_gone) co_return;
  job->conn->on_peer_gone(nullptr);
  if (last && last.value().status > 0) {
    // A replica's own error answer (busy, shutting down): pass the last one on.
    server::Response res{http::status(last->status), 11};
    for (const auto& [k, v] : last->headers) res.set(k, v);
    res.body() = std::move(last->body);
    metrics_.record_request(last_replica, job->model, last->status);
    LOG_INFO("router request route={} model={} replica={} status={} attempts={}", job->ex.route,
             job->model, last_replica, last->status, tried.size());
    send(job->conn, job->ex, std::move(res));
    co_return;
  }
  ApiError e =
      last ? ApiError(502,
                      fmt::format("No replica could answer the request (last: {} at {}).",
                                  last->reason, last_replica),
                      "server_error", std::nullopt, "upstream_error")
           : ApiError(503, fmt::format("No ready replica serves the model `{}`.", job->model),
                      "service_unavailable_error", std::nullopt, "no_replica")
                 .with_retry_after(config_.retry_after_s);
  metrics_.record_request(last_replica, job->model, e.status());
  LOG_INFO("router request route={} model={} status={} attempts={} error=\"{}\"", job->ex.route,
           job->model, e.status(), tried.size(), e.what());
  send_error(job->conn, job->ex, e);
}

void Router::finish(ProxyJob& job, const std::string& replica, int status) {
  if (job.count_usage && job.usage_tokens > 0) limiter_.charge(job.api_key, job.usage_tokens);
  job.status = status;
  job.replica = replica;
  metrics_.record_request(replica, job.model, status);
  metrics_.record_http(handler_label(job.ex.route), job.ex.method, status);
}

net::awaitable<Router::Attempt> Router::attempt(ProxyJob& job, const ReplicaTable::Pick& pick) {
  Attempt out;
  Replica& rep = *pick.replica;
  const std::string& url = rep.addr().url;
  struct Clear {
    ProxyJob& j;
    ~Clear() { j.upstream = nullptr; }
  } clear{job};
  auto mark_failed = [&](const std::string& why) {
    table_.mark_failed(rep, why);
    pool_.drop(rep.id());
  };
  const Clock::time_point t0 = Clock::now();
  auto timed = [&](beast::tcp_stream& s) {
    if (config_.request_timeout_s > 0)
      s.expires_after(from_seconds(config_.request_timeout_s));
    else
      s.expires_never();
  };
  auto failed = [&](std::string reason) {
    out.reason = std::move(reason);
    return std::move(out);
  };
  http::request<http::string_body> req{job.method, rep.addr().path + job.ex.target, 11};
  req.set(http::field::host, rep.addr().host_header());
  req.set(http::field::user_agent, "inferd-router");
  for (const auto& [k, v] : job.forward) req.set(k, v);
  req.keep_alive(true);
  req.body() = job.body;
  req.prepare_payload();
  beast::error_code ec, ignored;
  beast::flat_buffer buf;
  std::optional<http::response_parser<http::buffer_body>> parser;
  // A kept-alive connection from the pool when there is one; when the replica closed it meanwhile
  // (the write or the response fails at once), once more on a fresh connection.
  std::unique_ptr<beast::tcp_stream> up = pool_.take(rep.id());
  bool reused = up != nullptr;
  for (;;) {
    if (!up) {
      up = std::make_unique<beast::tcp_stream>(http_.io().get_executor());
      job.upstream = up.get();
      up->expires_after(from_seconds(config_.connect_timeout_s));
      co_await up->async_connect(pick.endpoints, net::redirect_error(net::use_awaitable, ec));
      if (job.client_gone) co_return Attempt{true};
      if (ec) {
        mark_failed("connect: " + ec.message());
        co_return failed("connect");
      }
      up->socket().set_option(tcp::no_delay(true), ignored);
    }
    job.upstream = up.get();
    timed(*up);
    co_await http::async_write(*up, req, net::redirect_error(net::use_awaitable, ec));
    if (job.client_gone) co_return Attempt{true};
    if (!ec) {
      buf.clear();
      parser.emplace();
      parser->body_limit(std::numeric_limits<uint64_t>::max());
      co_await http::async_read_header(*up, buf, *parser,
                                       net::redirect_error(net::use_awaitable, ec));
      if (job.client_gone) co_return Attempt{true};
    }
    if (ec && reused && is_reset(ec)) {
      up.reset();
      reused = false;
      continue;
    }
    break;
  }
  if (ec) {
    if (is_reset(ec)) mark_failed("no response: " + ec.message());
    co_return failed(ec == beast::error::timeout ? "timeout" : "no_response");
  }
  auto& p = *parser;
  const int status = int(p.get().result_int());
  Headers headers;
  for (const auto& f : p.get()) {
    const auto name = f.name();
    if (name == http::field::content_type || name == http::field::cache_control ||
        name == http::field::retry_after || name == http::field::www_authenticate ||
        beast::iequals(f.name_string(), "Content-Security-Policy") ||
        beast::iequals(f.name_string(), "X-Content-Type-Options") ||
        beast::iequals(f.name_string(), "X-Request-Id"))
      headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }
  headers.insert(headers.end(), job.ex.cors.begin(), job.ex.cors.end());
  headers.emplace_back("X-Inferd-Replica", url);
  const bool chunked = p.chunked();
  std::optional<UsageTap> tap;  // tokens-per-minute accounting of a stream
  if (job.count_usage && chunked && status == 200) tap.emplace(job.strip_usage_event);
  std::string held;  // body bytes not yet passed on
  bool committed = false;
  double first_byte_s = -1;
  char chunk[16384];
  while (!p.is_done()) {
    p.get().body().data = chunk;
    p.get().body().size = sizeof(chunk);
    timed(*up);
    co_await http::async_read_some(*up, buf, p, net::redirect_error(net::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (job.client_gone) co_return Attempt{true};
    size_t n = sizeof(chunk) - p.get().body().size;
    if (n > 0 && first_byte_s < 0) first_byte_s = seconds(Clock::now() - t0);
    std::string tapped;
    const char* data = chunk;
    if (tap && n > 0) {
      tapped = tap->feed(std::string_view(chunk, n));
      if (p.is_done()) tapped += tap->flush();
      data = tapped.data();
      n = tapped.size();
    }
    if (committed) {
      if (n > 0) job.conn->write_chunk(std::string(data, n));
    } else if (n > 0) {
      held.append(data, n);
      if (chunked && status == 200 && ready_to_commit(held)) {
        Headers h = headers;
        job.conn->begin_stream(http::status(status), std::move(h));
        job.conn->write_chunk(std::move(held));
        held.clear();
        committed = true;
      } else if (!chunked && held.size() > (256u << 20)) {
        ec = http::error::body_limit;
      }
    }
    if (ec) break;
    // A client that reads slower than the replica writes: wait rather than buffer without bound.
    while (committed && job.conn->pending_write_bytes() > (4u << 20) && !job.client_gone &&
           !job.conn->closed()) {
      net::steady_timer t(job.conn->executor());
      t.expires_after(std::chrono::milliseconds(2));
      co_await t.async_wait(net::redirect_error(net::use_awaitable, ignored));
    }
    if (job.client_gone || job.conn->closed()) co_return Attempt{true};
  }
  const double total_s = seconds(Clock::now() - t0);
  metrics_.record_upstream(url, first_byte_s, total_s);
  if (job.count_usage && status == 200) {
    const int64_t t = tap ? tap->total() : usage_total(held);
    if (t > 0) job.usage_tokens = t;
  }
  if (ec) {
    if (!committed) {
      if (is_reset(ec)) mark_failed("response cut: " + ec.message());
      co_return failed(ec == beast::error::timeout ? "timeout" : "stream");
    }
    // Too late to retry: the client already has part of the stream. End it with an error event.
    LOG_WARN("router: replica {} failed mid-stream: {}", url, ec.message());
    if (is_reset(ec)) mark_failed("stream cut: " + ec.message());
    const ApiError e(
        502, fmt::format("The replica serving this request failed mid-stream ({}).", ec.message()),
        "server_error", std::nullopt, "upstream_error");
    job.conn->write_chunk("data: " + e.body() + "\n\n");
    job.conn->write_chunk("data: [DONE]\n\n");
    job.conn->end_stream();
    job.conn->on_peer_gone(nullptr);
    finish(job, url, 502);
    co_return Attempt{true};
  }
  job.conn->on_peer_gone(nullptr);
  // The response ended cleanly: the connection can carry the next request to this replica.
  if (p.is_done() && p.get().keep_alive() && buf.size() == 0) {
    job.upstream = nullptr;
    pool_.put(rep.id(), std::move(up));
  }
  if (committed) {
    job.conn->end_stream();
    finish(job, url, status);
    co_return Attempt{true};
  }
  const bool queue_full = status == 429 && held.find("queue_full") != std::string::npos;
  if (status == 502 || status == 503 || status == 504 || queue_full) {
    if (status == 503) mark_failed("answered 503");
    out.status = status;
    out.body = std::move(held);
    out.headers = std::move(headers);
    co_return failed("status_" + std::to_string(status));
  }
  if (chunked && status == 200) {
    // A stream that held only its preamble: pass it on as it is.
    job.conn->begin_stream(http::status(status), std::move(headers));
    job.conn->write_chunk(std::move(held));
    job.conn->end_stream();
  } else {
    server::Response res{http::status(status), 11};
    for (const auto& [k, v] : headers) res.set(k, v);
    res.body() = std::move(held);
    job.conn->respond(std::move(res));
  }
  finish(job, url, status);
  co_return Attempt{true};
}

}  // namespace inferd::router
