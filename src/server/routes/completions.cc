// /v1/completions: admission (draining, the body parsed and validated, rate limits), then a
// GenerationJob answered by the OpenAI completions renderer.
#include "server/render/openai_completions.h"
#include "server/routes/routes.h"

namespace inferd::server {

namespace {

void completions_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                       Exchange& ex) {
  s.check_accepting();
  const json body = parse_json_body(req.body());
  CompletionRequest cr = parse_completion_request(body, false, s.validation_context(req));
  s.start_generation(conn, ex, std::move(cr), std::make_unique<OpenAiCompletionsRenderer>(),
                     "cmpl-");
}

}  // namespace

void add_completions_routes(RouteTable& t, Server& s) {
  t.add({"/v1/completions", false, http::verb::post, true, "", on(s, completions_route)});
}

}  // namespace inferd::server
