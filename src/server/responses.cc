// The answers the server and the router share (see responses.h).
#include "server/responses.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>

namespace inferd::server {

std::string dump_json(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng{
      std::random_device{}() ^
      uint64_t(std::chrono::steady_clock::now().time_since_epoch().count())};
  static const char* kHex = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& ch : s) ch = kHex[rng() & 15];
  return s;
}

std::string log_excerpt(const std::string& s, size_t max_bytes) {
  size_t n = std::min(s.size(), max_bytes);
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  if (n < s.size()) out += fmt::format("...({} bytes)", s.size());
  return out;
}

Response json_response(int status, std::string body) {
  Response res{http::status(status), 11};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

Response error_response(const ApiError& e, unsigned version) {
  Response res{http::status(e.status()), version};
  res.set(http::field::content_type, "application/json");
  if (e.retry_after_s() > 0) res.set(http::field::retry_after, std::to_string(e.retry_after_s()));
  if (e.status() == 401) res.set(http::field::www_authenticate, "Bearer");
  res.body() = e.body();
  return res;
}

Response method_not_allowed(const std::string& method, const std::string& path,
                            const char* allowed) {
  ApiError e(405,
             fmt::format("Method {} is not allowed on {}; allowed: {}.", method, path, allowed),
             "invalid_request_error", std::nullopt, "method_not_allowed");
  Response res{http::status::method_not_allowed, 11};
  res.set(http::field::allow, allowed);
  res.set(http::field::content_type, "application/json");
  res.body() = e.body();
  return res;
}

Response http_layer_error(int status, const std::string& message, unsigned version) {
  ApiError e(status, message, "invalid_request_error", std::nullopt,
             status == 413 ? std::optional<std::string>("request_too_large") : std::nullopt);
  Response res{http::status(status), version};
  res.set(http::field::content_type, "application/json");
  res.body() = e.body();
  return res;
}

bool is_cors_preflight(const Request& req, const std::string& origin) {
  return req.method() == http::verb::options && !origin.empty() &&
         req.find(http::field::access_control_request_method) != req.end();
}

Response cors_preflight(const Request& req, const std::string& origin, bool origin_ok) {
  if (!origin_ok)
    throw ApiError(400, fmt::format("Disallowed CORS origin '{}'.", origin),
                   "invalid_request_error", std::nullopt, "cors_origin");
  Response res{http::status::ok, req.version()};
  res.set(http::field::access_control_allow_methods, "GET, POST, DELETE, OPTIONS");
  const std::string_view rh = req[http::field::access_control_request_headers];
  res.set(http::field::access_control_allow_headers,
          rh.empty() ? std::string("Authorization, Content-Type") : std::string(rh));
  res.set(http::field::access_control_max_age, "600");
  return res;
}

std::string handler_label(const std::string& path) {
  static const char* kRoutes[] = {
      "/health",         "/ready",      "/metrics",   "/version",
      "/tokenize",       "/detokenize", "/v1/models", "/v1/chat/completions",
      "/v1/completions", "/",           "/ping",      "/invocations",
      "/v1/embeddings"};
  for (const char* r : kRoutes)
    if (path == r) return path;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{model}";
  return "other";
}

}  // namespace inferd::server
