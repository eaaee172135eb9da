// vLLM's /tokenize and /detokenize routes (the bodies are read in tokenize_request.cc).
#include <fmt/format.h>

#include <algorithm>

#include "server/api_error.h"
#include "server/protocol.h"
#include "server/responses.h"
#include "server/routes/routes.h"

namespace inferd::server {

namespace {

void tokenize_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                    Exchange& ex) {
  const json body = parse_json_body(req.body());
  const auto& names = s.config().served_model_names;
  if (auto mname = get_string(body, "model");
      mname && std::find(names.begin(), names.end(), *mname) == names.end())
    throw ApiError(404, fmt::format("The model `{}` does not exist.", *mname),
                   "invalid_request_error", "model", "model_not_found");
  const ojson out = ex.route == "/tokenize"
                        ? tokenize_body(body, s.generator(), s.config().request_limits)
                        : detokenize_body(body, s.generator());
  s.send_json(conn, ex, 200, dump_json(out));
}

}  // namespace

void add_tokenize_routes(RouteTable& t, Server& s) {
  t.add({"/tokenize", false, http::verb::post, false, "", on(s, tokenize_route)});
  t.add({"/detokenize", false, http::verb::post, false, "", on(s, tokenize_route)});
}

}  // namespace inferd::server
