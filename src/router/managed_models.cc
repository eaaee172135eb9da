// The router's multi-model side (RouterConfig::models, model_manager.h): the loaded children as
// the table's replicas, a request's model and keep_alive, the wait for a model's load, and
// /v1/models with every configured model's state.
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cmath>

#include "core/error.h"
#include "core/logging.h"
#include "router/proxy_job.h"
#include "server/api_error.h"
#include "server/json_fields.h"
#include "server/responses.h"

namespace inferd::router {

namespace net = boost::asio;
using server::ApiError;
using Clock = std::chrono::steady_clock;

std::optional<double> take_keep_alive(nlohmann::json& body) {
  const auto it = body.find("keep_alive");
  if (it == body.end()) return std::nullopt;
  const nlohmann::json v = *it;
  body.erase(it);
  if (v.is_null()) return std::nullopt;
  if (v.is_number()) {
    const double s = v.get<double>();
    if (!std::isfinite(s)) throw server::bad_param("keep_alive", "keep_alive must be finite.");
    return s;
  }
  if (v.is_string()) {
    try {
      return parse_keep_alive(v.get<std::string>());
    } catch (const Error& e) {
      throw server::bad_param("keep_alive", fmt::format("Invalid keep_alive: {}", e.what()));
    }
  }
  throw server::bad_param("keep_alive",
                          "keep_alive must be a number of seconds or a duration string such as "
                          "\"5m\" (0: unload after this request; negative: keep loaded).");
}

void Router::set_model_replicas(const std::map<std::string, std::string>& loaded) {
  std::vector<std::string> urls;
  for (const auto& [name, url] : loaded) urls.push_back(url);
  for (const std::shared_ptr<Replica>& r : table_.set_backends(urls)) {
    // Known ready: the manager saw its /ready answer 200. The health checker keeps watching it.
    HealthReport h;
    h.ready = true;
    for (const auto& [name, url] : loaded)
      if (parse_backend_url(url).url == r->addr().url) h.models = std::vector<std::string>{name};
    h.endpoints.emplace_back(net::ip::make_address("127.0.0.1"), r->addr().port);
    table_.apply(*r, h);
    health_->watch(r);
  }
}

std::string Router::managed_model(const nlohmann::json& body) const {
  const ModelManager& m = *config_.models;
  const auto name = server::get_string(body, "model");
  if (!name) {
    const std::vector<std::string> all = m.names();
    if (all.size() == 1) return all.front();
    throw server::bad_param("model",
                            fmt::format("Missing required parameter: 'model' (this server serves "
                                        "several models: {}).",
                                        fmt::join(all, ", ")));
  }
  if (auto n = m.resolve(*name)) return *n;
  throw ApiError(404,
                 fmt::format("The model `{}` does not exist (this server serves: {}).", *name,
                             fmt::join(m.names(), ", ")),
                 "invalid_request_error", "model", "model_not_found");
}

net::awaitable<std::optional<ApiError>> Router::await_model(ProxyJob& job,
                                                            ModelManager::Lease& lease) {
  ModelManager& m = *config_.models;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(m.load_timeout_s()));
  net::steady_timer timer(co_await net::this_coro::executor);
  bool logged = false;
  while (!job.client_gone) {
    const ModelManager::Wait w = m.poll(lease);
    if (w.kind == ModelManager::Wait::kReady) {
      if (logged)
        LOG_INFO("router: model {} ready after {:.2f} s for a request", job.model,
                 std::chrono::duration<double>(Clock::now() - start).count());
      co_return std::nullopt;
    }
    if (w.kind == ModelManager::Wait::kFailed)
      co_return ApiError(
          500, fmt::format("The model `{}` could not be loaded: {}.", job.model, w.message),
          "server_error", "model", "model_load_failed");
    if (Clock::now() >= deadline)
      co_return ApiError(503,
                         fmt::format("The model `{}` was not ready within {:g} s "
                                     "(--model-load-timeout): {}.",
                                     job.model, m.load_timeout_s(), w.message),
                         "service_unavailable_error", "model", "model_not_ready")
          .with_retry_after(config_.retry_after_s);
    logged = true;
    timer.expires_after(std::chrono::milliseconds(20));
    boost::system::error_code ec;
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  co_return std::nullopt;
}

// /v1/models: every configured model, loaded or not, in OpenAI's shape with its state added;
// /v1/models/{model} (a name or an alias).
void Router::serve_managed_models(const std::shared_ptr<server::Connection>& conn,
                                  const Exchange& ex) {
  const std::vector<ModelStatus> all = config_.models->status();
  const int64_t now = server::unix_now();
  auto card = [&](const ModelStatus& s) {
    nlohmann::ordered_json c = {{"id", s.name},
                                {"object", "model"},
                                {"created", now},
                                {"owned_by", "inferd"},
                                {"root", s.path},
                                {"state", to_string(s.state)},
                                {"aliases", s.aliases},
                                {"memory_estimate_bytes", s.need_bytes},
                                {"requests_in_flight", s.in_flight}};
    if (s.expires_in_s) c["expires_in_s"] = std::round(*s.expires_in_s * 10) / 10;
    if (s.loads > 0) c["last_load_seconds"] = std::round(s.last_load_s * 1000) / 1000;
    if (!s.last_error.empty()) c["last_error"] = s.last_error;
    return c;
  };
  if (ex.route == "/v1/models") {
    nlohmann::ordered_json data = nlohmann::ordered_json::array();
    for (const auto& s : all) data.push_back(card(s));
    return front_.send_json(
        conn, ex, 200,
        nlohmann::ordered_json{{"object", "list"}, {"data", std::move(data)}}.dump());
  }
  const std::string id = ex.route.substr(std::string("/v1/models/").size());
  const auto name = config_.models->resolve(id);
  for (const auto& s : all)
    if (name && s.name == *name) return front_.send_json(conn, ex, 200, card(s).dump());
  throw ApiError(404, fmt::format("The model `{}` does not exist.", id), "invalid_request_error",
                 "model", "model_not_found");
}

}  // namespace inferd::router
