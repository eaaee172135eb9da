// The /v1/responses routes of the Server: POST /v1/responses (parsed by responses_request.cc, run
// as a CompletionJob answered by a ResponsesRenderer), GET /v1/responses/{id} (a stored
// response) and DELETE /v1/responses/{id}.
#include <fmt/format.h>

#include <random>

#include "server/api_error.h"
#include "server/completion_job.h"
#include "server/responses.h"
#include "server/responses_renderer.h"
#include "server/responses_request.h"
#include "server/server.h"

namespace inferd::server {

namespace {

std::string response_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string s = "resp_";
  for (int i = 0; i < 48; ++i) s += kHex[rng() & 15];
  return s;
}

ApiError not_found(const std::string& id) {
  return ApiError(404, fmt::format("Response with id '{}' not found.", id), "invalid_request_error",
                  std::nullopt, "not_found");
}

}  // namespace

void Server::route_responses(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
  const std::string& path = ex.route;
  if (path == "/v1/responses") {
    if (req.method() != http::verb::post)
      return send(conn, ex, method_not_allowed(ex.method, path, "POST"));
    const ValidationContext vc = admission(req, ex);
    const json body = parse_json_body(req.body());
    ResponsesRequest rr = parse_responses_request(body, vc, responses_store_);
    ex.request_id = response_id();
    auto renderer =
        std::make_shared<ResponsesRenderer>(ex.request_id, rr, *generator_, responses_store_);
    return run_job(conn, ex, std::move(rr.chat), std::move(renderer));
  }
  const std::string id = path.substr(std::string("/v1/responses/").size());
  if (id.empty() || id.find('/') != std::string::npos)
    throw ApiError(404, fmt::format("Unknown route: {} {}", ex.method, path),
                   "invalid_request_error", std::nullopt, "not_found");
  if (req.method() == http::verb::get) {
    const auto stored = responses_store_.get(id);
    if (!stored) throw not_found(id);
    return send_json(conn, ex, 200, dump_json(stored->response));
  }
  if (req.method() == http::verb::delete_) {
    if (!responses_store_.erase(id)) throw not_found(id);
    return send_json(
        conn, ex, 200,
        dump_json(ojson{{"id", id}, {"object", "response.deleted"}, {"deleted", true}}));
  }
  send(conn, ex, method_not_allowed(ex.method, path, "GET, DELETE"));
}

}  // namespace inferd::server
