// Sleep mode's routes (vLLM's, with --enable-sleep-mode): POST /sleep?level=1|2 (drains the
// requests in flight, then frees the KV cache and moves the weights to host memory, or with level
// 2 frees the weights too), POST /wake_up, GET /is_sleeping -> {"is_sleeping": bool}. Without the
// flag each answers 404 naming it. /sleep and /wake_up block their io thread until done (the
// drain is bounded by --drain-timeout).
#include <fmt/format.h>

#include <charconv>
#include <string>
#include <string_view>

#include "server/api_error.h"
#include "server/routes/routes.h"

namespace inferd::server {

namespace {

void check_enabled(Server& s) {
  if (!s.config().enable_sleep_mode) {
    throw ApiError(404,
                   "Sleep mode is off: start the server with --enable-sleep-mode to use /sleep, "
                   "/wake_up and /is_sleeping.",
                   "not_found_error", std::nullopt, "sleep_mode_off");
  }
}

// The query's parameters; any name other than those allowed is a 400 naming it.
std::string_view query_of(const Exchange& ex) {
  const size_t q = ex.target.find('?');
  return q == std::string::npos ? std::string_view() : std::string_view(ex.target).substr(q + 1);
}

// level=1|2 (default 1, as vLLM's); other parameters are refused.
int parse_level(const Exchange& ex) {
  int level = 1;
  std::string_view q = query_of(ex);
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view item = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view name = item.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    if (name != "level") {
      throw ApiError(400,
                     fmt::format("Unknown query parameter '{}' for /sleep: expected level", name),
                     "invalid_request_error", std::string(name));
    }
    const auto r = std::from_chars(value.data(), value.data() + value.size(), level);
    if (r.ec != std::errc() || r.ptr != value.data() + value.size() || (level != 1 && level != 2)) {
      throw ApiError(400,
                     fmt::format("Invalid sleep level '{}': expected 1 (weights offloaded to host "
                                 "memory, KV cache freed) or 2 (weights and KV cache freed)",
                                 value),
                     "invalid_request_error", "level");
    }
  }
  return level;
}

void sleep_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  check_enabled(s);
  const int level = parse_level(ex);
  try {
    s.generator().sleep(level, s.config().drain_timeout_s);
  } catch (const InvalidRequestError& e) {
    throw ApiError(400, e.what(), "invalid_request_error", "level");
  } catch (const Error& e) {
    throw ApiError(503, fmt::format("The model could not go to sleep: {}", e.what()),
                   "service_unavailable_error", std::nullopt, "sleep_failed");
  }
  s.send_json(conn, ex, 200, fmt::format(R"({{"is_sleeping":true,"level":{}}})", level));
}

void wake_up_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  check_enabled(s);
  if (!query_of(ex).empty()) {
    throw ApiError(400,
                   "/wake_up takes no query parameters (waking only the weights or only the KV "
                   "cache, vLLM's tags, is not supported)",
                   "invalid_request_error", "tags");
  }
  try {
    s.generator().wake_up();
  } catch (const Error& e) {
    throw ApiError(503, fmt::format("The model could not wake up: {}", e.what()),
                   "service_unavailable_error", std::nullopt, "wake_up_failed");
  }
  s.send_json(conn, ex, 200, R"({"is_sleeping":false})");
}

void is_sleeping_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  check_enabled(s);
  const bool asleep = s.generator().sleep_level() > 0;
  s.send_json(conn, ex, 200, fmt::format(R"({{"is_sleeping":{}}})", asleep ? "true" : "false"));
}

}  // namespace

void add_sleep_routes(RouteTable& t, Server& s) {
  t.add({"/sleep", false, http::verb::post, true, "", on(s, sleep_route)});
  t.add({"/wake_up", false, http::verb::post, true, "", on(s, wake_up_route)});
  t.add({"/is_sleeping", false, http::verb::get, true, "", on(s, is_sleeping_route)});
}

}  // namespace inferd::server
