// The OpenAI Responses API: POST /v1/responses (the body checked and converted by
// responses_request.cc, then a GenerationJob answered by the Responses renderer),
// GET /v1/responses/{id} (a stored response) and DELETE /v1/responses/{id}.
#include <fmt/format.h>

#include "server/render/openai_responses.h"
#include "server/responses.h"
#include "server/responses_request.h"
#include "server/routes/routes.h"

namespace inferd::server {

namespace {

const std::string kPrefix = "/v1/responses/";

void create_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
  s.check_accepting();
  const json body = parse_json_body(req.body());
  ResponsesRequest rr =
      parse_responses_request(body, s.validation_context(req), s.responses_store());
  auto renderer = std::make_unique<OpenAiResponsesRenderer>(rr, s.responses_store());
  s.start_generation(conn, ex, std::move(rr.chat), std::move(renderer), "resp_");
}

// The id of /v1/responses/{id}; a deeper path is no route.
std::string response_id(const Exchange& ex) {
  const std::string id = ex.route.substr(kPrefix.size());
  if (id.empty() || id.find('/') != std::string::npos)
    throw ApiError(404, fmt::format("Unknown route: {} {}", ex.method, ex.route),
                   "invalid_request_error", std::nullopt, "not_found");
  return id;
}

ApiError not_found(const std::string& id) {
  return ApiError(404, fmt::format("Response with id '{}' not found.", id), "invalid_request_error",
                  std::nullopt, "not_found");
}

void retrieve_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  const std::string id = response_id(ex);
  const auto stored = s.responses_store().get(id);
  if (!stored) throw not_found(id);
  s.send_json(conn, ex, 200, dump_json(stored->response));
}

void delete_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  const std::string id = response_id(ex);
  if (!s.responses_store().erase(id)) throw not_found(id);
  s.send_json(conn, ex, 200,
              dump_json(ojson{{"id", id}, {"object", "response.deleted"}, {"deleted", true}}));
}

}  // namespace

void add_responses_routes(RouteTable& t, Server& s) {
  t.add({"/v1/responses", false, http::verb::post, true, "", on(s, create_route)});
  t.add({kPrefix, true, http::verb::get, true, "/v1/responses/{id}", on(s, retrieve_route)});
  t.add({kPrefix, true, http::verb::delete_, true, "/v1/responses/{id}", on(s, delete_route)});
}

}  // namespace inferd::server
