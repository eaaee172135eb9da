// The server's route families, one file each; add_routes registers them all. A new family (say
// /v1/embeddings) is a new routes/<family>.cc with its add_<family>_routes, a line here and one in
// routes.cc. A generating route parses its body into a CompletionRequest and hands it, with the
// Renderer of its API (render/renderer.h), to Server::start_generation.
#pragma once

#include <memory>

#include "server/route_table.h"
#include "server/server.h"

namespace inferd::server {

// A route of the server: a function of the server and the exchange.
using ServerRoute = void (*)(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                             Exchange& ex);
// `f` as a RouteHandler of the server `s`.
inline RouteHandler on(Server& s, ServerRoute f) {
  return [&s, f](const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex) {
    f(s, conn, req, ex);
  };
}

// /, /health, /ready, /metrics, /version (system.cc).
void add_system_routes(RouteTable& t, Server& s);
// vLLM's /tokenize and /detokenize (tokenize.cc).
void add_tokenize_routes(RouteTable& t, Server& s);
// /v1/models and /v1/models/{model} (models.cc).
void add_models_routes(RouteTable& t, Server& s);
// /v1/completions (completions.cc).
void add_completions_routes(RouteTable& t, Server& s);
// /v1/chat/completions (chat.cc).
void add_chat_routes(RouteTable& t, Server& s);
// Anthropic's /v1/messages and /v1/messages/count_tokens (messages.cc).
void add_messages_routes(RouteTable& t, Server& s);
// /v1/responses, GET and DELETE /v1/responses/{id} (responses.cc).
void add_responses_routes(RouteTable& t, Server& s);

// /v1/embeddings (embeddings.cc).
void add_embeddings_routes(RouteTable& t, Server& s);

// Sleep mode: POST /sleep, POST /wake_up, GET /is_sleeping (sleep.cc; 404 naming
// --enable-sleep-mode without it).
void add_sleep_routes(RouteTable& t, Server& s);

// Every family above.
void add_routes(RouteTable& t, Server& s);

}  // namespace inferd::server
