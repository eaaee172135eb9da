// /v1/messages and /v1/messages/count_tokens on the server (Server::handle_messages): the API key
// from x-api-key (Anthropic's clients) or Authorization: Bearer, the body checked and turned into
// a chat request (messages_request.h), then counted, or run as a GenerationJob that the Messages
// renderer (render/messages.h) answers. Errors on these routes are Anthropic's error JSON
// (Server::send_error).
#include <cctype>

#include "server/api_keys.h"
#include "server/messages_request.h"
#include "server/render/messages.h"
#include "server/responses.h"
#include "server/server.h"

namespace inferd::server {

namespace {

// The key a Messages request carries (x-api-key, else a Bearer token), checked against `keys`
// (none: every request passes). Either header may hold a valid key.
std::string messages_api_key(const Request& req, const std::vector<std::string>& keys) {
  const std::string_view x_key = req["x-api-key"];
  const std::string_view auth = req[http::field::authorization];
  std::string_view bearer;
  if (auth.size() > 7) {
    std::string scheme(auth.substr(0, 7));
    for (auto& c : scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "bearer ") bearer = auth.substr(7);
  }
  if (keys.empty()) return std::string(x_key.empty() ? bearer : x_key);
  if (!x_key.empty() && api_key_matches(x_key, keys)) return std::string(x_key);
  if (!bearer.empty() && api_key_matches(bearer, keys)) return std::string(bearer);
  throw ApiError(401,
                 x_key.empty() && bearer.empty()
                     ? "Missing API key: pass it as 'x-api-key: <key>' or 'Authorization: Bearer "
                       "<key>'."
                     : "Incorrect API key provided.",
                 "authentication_error", std::nullopt, "invalid_api_key");
}

}  // namespace

void Server::handle_messages(const std::shared_ptr<Connection>& conn, Request& req, Exchange& ex,
                             bool count_tokens) {
  ex.api_key = messages_api_key(req, config_.api_keys);
  const json body = parse_json_body(req.body());
  if (count_tokens) {
    const int64_t n = count_message_tokens(body, validation_context(req));
    return send_json(conn, ex, 200, dump_json(ojson{{"input_tokens", n}}));
  }
  check_draining();
  CompletionRequest cr = parse_messages_request(body, validation_context(req));
  run_generation(conn, ex, std::move(cr), std::make_unique<MessagesRenderer>(), "msg_");
}

}  // namespace inferd::server
