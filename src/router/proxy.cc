// Router::proxy and run(): a request is admitted (draining, its model, rate limits), its routing
// key taken, and attempted on replicas the policy picks, another after each failed attempt, up to
// --max-retries more; when none answers, the last replica's own error or the router's goes back.
#include "router/proxy_job.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/logging.h"
#include "router/prompt_key.h"
#include "server/api_error.h"
#include "server/protocol.h"
#include "server/responses.h"

namespace inferd::router {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using server::ApiError;

namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

ApiError no_replica_ready(int retry_after_s) {
  return ApiError(503, "No replica is ready.", "service_unavailable_error", std::nullopt,
                  "no_replica")
      .with_retry_after(retry_after_s);
}

}  // namespace

void Router::proxy(const std::shared_ptr<server::Connection>& conn, server::Request& req,
                   Exchange& ex, ProxyKind kind) {
  front_.check_accepting();
  const bool completion = kind == ProxyKind::kCompletion;
  server::json body =
      kind == ProxyKind::kPage ? server::json::object() : server::parse_json_body(req.body());
  auto job = std::make_shared<ProxyJob>();
  bool rewrite = false;  // the body goes on changed (keep_alive taken out, an alias resolved)
  if (config_.models && kind != ProxyKind::kPage) {
    job->model = managed_model(body);
    job->needs_model = true;
    rewrite = body.contains("keep_alive");
    job->keep_alive_s = take_keep_alive(body);
    if (auto m = server::get_string(body, "model"); m && *m != job->model) {
      body["model"] = job->model;
      rewrite = true;
    }
  } else {
    job->model = route_model(kind, body);
  }
  if (completion)
    job->slot = front_.acquire_slot(server::bearer_token(req[http::field::authorization]));
  job->ex = ex;
  if (completion && front_.limiter().enabled()) admit(*job, req, body);
  if (completion) job->key = prompt_key(body, ex.route == "/v1/chat/completions");
  job->conn = conn;
  job->method = req.method();
  job->body = job->strip_usage_event || rewrite ? body.dump() : std::move(req.body());
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

std::string Router::route_model(ProxyKind kind, const nlohmann::json& body) const {
  // A page: any replica.
  if (kind == ProxyKind::kPage) {
    if (table_.num_healthy() == 0) throw no_replica_ready(config_.retry_after_s);
    return "";
  }
  std::string model;
  if (auto m = server::get_string(body, "model")) {
    model = *m;
  } else {
    const std::vector<std::string> models = table_.served_models();
    if (models.size() != 1) {
      if (models.empty()) throw no_replica_ready(config_.retry_after_s);
      throw server::bad_param("model", fmt::format("Missing required parameter: 'model' (this "
                                                   "router serves several models: {}).",
                                                   fmt::join(models, ", ")));
    }
    model = models.front();
  }
  if (!table_.knows_model(model)) {
    if (table_.num_healthy() == 0) throw no_replica_ready(config_.retry_after_s);
    throw ApiError(404, fmt::format("The model `{}` does not exist.", model),
                   "invalid_request_error", "model", "model_not_found");
  }
  return model;
}

void Router::admit(ProxyJob& job, const server::Request& req, nlohmann::json& body) {
  job.api_key = server::bearer_token(req[http::field::authorization]);
  // Tokens are charged once the replica reports them: a key over its token budget is refused
  // from then on, until the bucket refills.
  front_.admit(job.api_key, 0);
  if (config_.rate_limit_tpm <= 0) return;
  job.count_usage = true;
  // Only the OpenAI completion routes have stream_options (the usage event the router reads).
  if (job.ex.route != "/v1/chat/completions" && job.ex.route != "/v1/completions") return;
  const auto st = body.find("stream");
  if (st != body.end() && st->is_boolean() && st->get<bool>()) {
    const auto so = body.find("stream_options");
    const bool asked = so != body.end() && so->is_object() && so->contains("include_usage") &&
                       (*so)["include_usage"].is_boolean() && (*so)["include_usage"].get<bool>();
    if (!asked && (so == body.end() || so->is_object() || so->is_null())) {
      body["stream_options"]["include_usage"] = true;
      job.strip_usage_event = true;
    }
  }
}

net::awaitable<void> Router::run(std::shared_ptr<ProxyJob> job) {
  struct Active {
    std::atomic<int64_t>& n;
    ~Active() { --n; }
  } active_guard{active_};
  // The key's slot is given back before the answer's last bytes go out (finish() and the error
  // answers below), so a client that sends its next request as soon as it has the answer is not
  // refused; and at the latest here, however the request ends.
  struct SlotGuard {
    ProxyJob& j;
    ~SlotGuard() { j.slot.release(); }
  } slot_guard{*job};
  job->conn->on_peer_gone([job] {
    job->client_gone = true;
    if (job->upstream) {
      beast::error_code ec;
      job->upstream->socket().close(ec);
    }
  });
  // Multi-model serving: the model loaded first, and held (not unloaded) until the end.
  ModelManager::Lease lease;
  if (job->needs_model) {
    lease = config_.models->acquire(job->model, job->keep_alive_s);
    std::optional<ApiError> e = co_await await_model(*job, lease);
    if (job->client_gone) co_return;
    if (e) {
      job->conn->on_peer_gone(nullptr);
      job->slot.release();
      metrics_.record_request("none", job->model, e->status());
      LOG_INFO("router request route={} model={} status={} error=\"{}\"", job->ex.route, job->model,
               e->status(), e->what());
      front_.send_error(job->conn, job->ex, *e);
      co_return;
    }
  }
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
    job->slot.release();
    front_.send(job->conn, job->ex, std::move(res));
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
  job->slot.release();
  front_.send_error(job->conn, job->ex, e);
}

// Called before the answer's last bytes are written: the request counts (metrics, usage) and
// its key's slot is free by the time the client has the answer.
void Router::finish(ProxyJob& job, const std::string& replica, int status) {
  job.slot.release();
  if (job.count_usage && job.usage_tokens > 0)
    front_.limiter().charge(job.api_key, job.usage_tokens);
  job.status = status;
  job.replica = replica;
  metrics_.record_request(replica, job.model, status);
  front_.record(job.ex, status);
}

}  // namespace inferd::router
