// Routes as a table: each route is a path (exact, or a prefix such as "/v1/models/"), one HTTP
// method, whether it needs the API key, its metrics label and its handler. Front::handle
// (front.h) looks a request up here: no route for the path is a 404, a route for the path but
// not the method a 405 naming the methods there are. Both services fill one: `inferd serve` from
// routes/routes.h (one file per route family), `inferd router` in router.cc.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/http.h"

namespace inferd::server {

// Per-request context: route, method, request id, API key, start, CORS headers.
struct Exchange {
  std::string route;   // the path, without the query
  std::string target;  // the path with the query
  std::string method;  // "GET", "POST", ..., "other"
  std::string label;   // the metrics handler label (the route's; empty: handler_label(route))
  std::string request_id;
  std::string api_key;  // the bearer token sent (rate limits are per key)
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::vector<std::pair<std::string, std::string>> cors;
};

// Answers `req` now or later (from the connection's strand); may throw ApiError, which the
// server turns into the error response.
using RouteHandler =
    std::function<void(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex)>;

struct Route {
  std::string path;
  bool prefix = false;  // matches every path that starts with `path`
  http::verb method = http::verb::get;
  bool needs_key = false;  // --api-key applies (checked before the method)
  std::string label;       // metrics handler label; empty: `path` (give one for a prefix)
  RouteHandler handler;
};

class RouteTable {
 public:
  void add(Route route);

  // The routes whose path matches (several: one per method).
  std::vector<const Route*> match(const std::string& path) const;

 private:
  std::vector<Route> routes_;
};

// The Allow header's value for these routes ("GET, DELETE").
std::string allowed_methods(const std::vector<const Route*>& routes);

}  // namespace inferd::server
