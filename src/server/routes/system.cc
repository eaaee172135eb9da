// The server's own routes: the chat page at / (when --ui is on), /health, /ready (503 until warm
// and while draining), /metrics (Prometheus text) and /version.
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

void health_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  s.send(conn, ex, Response{http::status::ok, 11});
}

void ready_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  if (!s.ready() || s.draining())
    throw ApiError(503, s.draining() ? "The server is shutting down." : "The server is warming up.",
                   "service_unavailable_error", std::nullopt, "not_ready");
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
  t.add({"/ready", false, http::verb::get, false, "", on(s, ready_route)});
  t.add({"/metrics", false, http::verb::get, false, "", on(s, metrics_route)});
  t.add({"/version", false, http::verb::get, false, "", on(s, version_route)});
}

}  // namespace inferd::server
