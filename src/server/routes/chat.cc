// /v1/chat/completions (and SageMaker's /invocations): admission (draining, the body parsed and
// validated, the chat template rendered, rate limits), then a GenerationJob answered by the OpenAI
// chat renderer.
#include "server/embedding_job.h"
#include "server/render/openai_chat.h"
#include "server/render/openai_completions.h"
#include "server/routes/routes.h"

namespace inferd::server {

namespace {

void chat_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
  s.check_accepting();
  const json body = parse_json_body(req.body());
  CompletionRequest cr = parse_completion_request(body, true, s.validation_context(req));
  s.start_generation(conn, ex, std::move(cr), std::make_unique<OpenAiChatRenderer>(), "chatcmpl-");
}

// SageMaker's POST /invocations: the body's shape picks chat (`messages`) or completions
// (`prompt`), as vLLM routes it; on an embedding server (--task embed), /v1/embeddings.
void invocations_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                       Exchange& ex) {
  // An embedding server answers embeddings (`input`, or chat `messages`), as vLLM does.
  if (s.generator().task() == ModelTask::kEmbed) return EmbeddingJob::admit(s, conn, req, ex);
  s.check_accepting();
  const json body = parse_json_body(req.body());
  const bool chat = invocation_is_chat(body);
  CompletionRequest cr = parse_completion_request(body, chat, s.validation_context(req));
  if (chat)
    return s.start_generation(conn, ex, std::move(cr), std::make_unique<OpenAiChatRenderer>(),
                              "chatcmpl-");
  s.start_generation(conn, ex, std::move(cr), std::make_unique<OpenAiCompletionsRenderer>(),
                     "cmpl-");
}

}  // namespace

void add_chat_routes(RouteTable& t, Server& s) {
  t.add({"/v1/chat/completions", false, http::verb::post, true, "", on(s, chat_route)});
  t.add({"/invocations", false, http::verb::post, true, "", on(s, invocations_route)});
}

}  // namespace inferd::server
