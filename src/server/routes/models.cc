// /v1/models (every served name) and /v1/models/{model}.
#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "server/api_error.h"
#include "server/responses.h"
#include "server/routes/routes.h"

namespace inferd::server {

namespace {

const std::string kModelPrefix = "/v1/models/";

void models_route(Server& s, const std::shared_ptr<Connection>& conn, Request&, Exchange& ex) {
  const ServerConfig& config = s.config();
  auto card = [&](const std::string& name) {
    ojson c;
    c["id"] = name;
    c["object"] = "model";
    c["created"] = unix_now();
    c["owned_by"] = "inferd";
    c["root"] = config.model_root.empty() ? name : config.model_root;
    c["parent"] = nullptr;
    c["max_model_len"] = s.generator().max_model_len();
    return c;
  };
  if (ex.route == "/v1/models") {
    ojson data = ojson::array();
    for (const auto& n : config.served_model_names) data.push_back(card(n));
    return s.send_json(conn, ex, 200,
                       dump_json(ojson{{"object", "list"}, {"data", std::move(data)}}));
  }
  const std::string name = ex.route.substr(kModelPrefix.size());
  const auto& names = config.served_model_names;
  if (std::find(names.begin(), names.end(), name) == names.end())
    throw ApiError(404, fmt::format("The model `{}` does not exist.", name),
                   "invalid_request_error", "model", "model_not_found");
  s.send_json(conn, ex, 200, dump_json(card(name)));
}

}  // namespace

void add_models_routes(RouteTable& t, Server& s) {
  t.add({"/v1/models", false, http::verb::get, true, "", on(s, models_route)});
  t.add({kModelPrefix, true, http::verb::get, true, "/v1/models/{model}", on(s, models_route)});
}

}  // namespace inferd::server
