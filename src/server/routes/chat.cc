// /v1/chat/completions: admission (draining, the body parsed and validated, the chat template
// rendered, rate limits), then a GenerationJob answered by the OpenAI chat renderer.
#include "server/render/openai_chat.h"
#include "server/routes/routes.h"

namespace inferd::server {

namespace {

void chat_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
  s.check_accepting();
  const json body = parse_json_body(req.body());
  CompletionRequest cr = parse_completion_request(body, true, s.validation_context(req));
  s.start_generation(conn, ex, std::move(cr), std::make_unique<OpenAiChatRenderer>(), "chatcmpl-");
}

}  // namespace

void add_chat_routes(RouteTable& t, Server& s) {
  t.add({"/v1/chat/completions", false, http::verb::post, true, "", on(s, chat_route)});
}

}  // namespace inferd::server
