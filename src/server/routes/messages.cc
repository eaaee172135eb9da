// /v1/messages and /v1/messages/count_tokens (Anthropic's Messages API): the API key from
// x-api-key (what Anthropic's clients send) or Authorization: Bearer, the body checked and turned
// into a chat request (messages_request.h), then counted, or run as a GenerationJob that the
// Messages renderer (render/messages.h) answers. Errors here are Anthropic's error JSON: the
// routes answer their own (the front's are OpenAI's), and the renderer those of a running request.
#include <cctype>

#include "core/logging.h"
#include "server/api_keys.h"
#include "server/messages_request.h"
#include "server/render/messages.h"
#include "server/responses.h"
#include "server/routes/routes.h"

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

// `route` with its errors answered in Anthropic's shape (headers as the front's: Retry-After,
// WWW-Authenticate) and logged as the front logs them.
template <typename F>
void anthropic_errors(Server& s, const std::shared_ptr<Connection>& conn, Exchange& ex, F route) {
  auto answer = [&](const ApiError& e) {
    LOG_INFO("request route={} status={} error=\"{}\"", ex.route, e.status(), e.what());
    Response res = error_response(e);
    res.body() = anthropic_error_body(e);
    s.send(conn, ex, std::move(res));
  };
  try {
    route();
  } catch (const ApiError& e) {
    answer(e);
  } catch (const std::exception& e) {
    answer(ApiError(500, std::string("Internal server error: ") + e.what(), "api_error"));
  }
}

void messages_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                    Exchange& ex) {
  anthropic_errors(s, conn, ex, [&] {
    ex.api_key = messages_api_key(req, s.config().api_keys);
    s.check_accepting();
    const json body = parse_json_body(req.body());
    CompletionRequest cr = parse_messages_request(body, s.validation_context(req));
    s.start_generation(conn, ex, std::move(cr), std::make_unique<MessagesRenderer>(), "msg_");
  });
}

void count_tokens_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                        Exchange& ex) {
  anthropic_errors(s, conn, ex, [&] {
    ex.api_key = messages_api_key(req, s.config().api_keys);
    const json body = parse_json_body(req.body());
    const int64_t n = count_message_tokens(body, s.validation_context(req));
    s.send_json(conn, ex, 200, dump_json(ojson{{"input_tokens", n}}));
  });
}

}  // namespace

// The API key is checked by the routes themselves (x-api-key as well as Bearer).
void add_messages_routes(RouteTable& t, Server& s) {
  t.add({"/v1/messages", false, http::verb::post, false, "", on(s, messages_route)});
  t.add(
      {"/v1/messages/count_tokens", false, http::verb::post, false, "", on(s, count_tokens_route)});
}

}  // namespace inferd::server
