// The server's own routes: the chat page at / (when --ui is on), /health and SageMaker's /ping,
// /ready (503 until warm, while draining and while the model sleeps; both 503 after a device
// fault), /metrics (Prometheus text) and /version.
#include <string>

#include "server/api_error.h"
#include "server/responses.h"
#include "server/routes/routes.h"
#include "server/ui_page.h"

namespace inferd::server {

namespace {

// The chat page (ui/chat.html, compiled in).
void chat_page_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/html; charset=utf-8");
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  // The page is self-contained: nothing may load from elsewhere.
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
          "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'");
  res.body() = std::string(chat_page());
  s.send(conn, ex, std::move(res));
}

// After a device fault (the engine has stopped; the process is exiting): 503 naming it.
void check_device(Server& s) {
  const std::string fault = s.generator().device_fault();
  if (!fault.empty()) {
    throw ApiError(503, "The engine stopped after a " + fault + "; the server is exiting.",
                   "service_unavailable_error", std::nullopt, "device_fault");
  }
}

void health_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  check_device(s);
  s.send(conn, ex, Response{http::status::ok, 11});
}

// SageMaker's health check (GET or POST), as vLLM serves it.
void ping_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  check_device(s);
  s.send(conn, ex, Response{http::status::ok, 11});
}

void ready_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  check_device(s);
  if (!s.ready() || s.draining())
    throw ApiError(503, s.draining() ? "The server is shutting down." : "The server is warming up.",
                   "service_unavailable_error", std::nullopt, "not_ready");
  if (s.generator().sleep_level() > 0)
    throw ApiError(503, "The model is asleep (sleep mode); POST /wake_up wakes it.",
                   "service_unavailable_error", std::nullopt, "model_sleeping");
  s.send_json(conn, ex, 200, R"({"status":"ready"})");
}

void metrics_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = s.metrics().render(s.generator().stats());
  s.send(conn, ex, std::move(res));
}

void version_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  s.send_json(conn, ex, 200, R"({"version":"0.1.0"})");
}

}  // namespace

void add_system_routes(RouteTable& t, Server& s) {
  if (s.config().ui) t.add({"/", false, http::verb::get, false, "", on(s, chat_page_route)});
  t.add({"/health", false, http::verb::get, false, "", on(s, health_route)});
  t.add({"/ping", false, http::verb::get, false, "", on(s, ping_route)});
  t.add({"/ping", false, http::verb::post, false, "", on(s, ping_route)});
  t.add({"/ready", false, http::verb::get, false, "", on(s, ready_route)});
  t.add({"/metrics", false, http::verb::get, false, "", on(s, metrics_route)});
  t.add({"/version", false, http::verb::get, false, "", on(s, version_route)});
}

}  // namespace inferd::server
