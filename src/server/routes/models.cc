// /v1/models: one entry per --served-model-name, as vLLM lists them (ServerConfig::model_aliases
// are accepted but not listed), then one per LoRA adapter (root: its path, parent: the base
// model's first name); /v1/models/{model}. vLLM's /v1/load_lora_adapter and
// /v1/unload_lora_adapter (behind --enable-runtime-lora-updating).
#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "server/api_error.h"
#include "server/json_fields.h"
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
    // One model behind every name: the same root (the model's path, else its first name).
    c["root"] = config.model_root.empty() ? config.served_model_names.front() : config.model_root;
    c["parent"] = nullptr;
    c["max_model_len"] = s.generator().max_model_len();
    return c;
  };
  auto lora_card = [&](const LoraAdapterInfo& a) {
    ojson c = card(a.name);
    c["root"] = a.path;
    c["parent"] = config.served_model_names.front();
    return c;
  };
  const std::vector<LoraAdapterInfo> adapters =
      config.lora ? config.lora->list() : std::vector<LoraAdapterInfo>{};
  if (ex.route == "/v1/models") {
    ojson data = ojson::array();
    for (const auto& n : config.served_model_names) data.push_back(card(n));
    for (const auto& a : adapters) data.push_back(lora_card(a));
    return s.send_json(conn, ex, 200,
                       dump_json(ojson{{"object", "list"}, {"data", std::move(data)}}));
  }
  const std::string name = ex.route.substr(kModelPrefix.size());
  if (!s.serves_model(name))
    throw ApiError(404, fmt::format("The model `{}` does not exist.", name),
                   "invalid_request_error", "model", "model_not_found");
  for (const auto& a : adapters)
    if (a.name == name) return s.send_json(conn, ex, 200, dump_json(lora_card(a)));
  s.send_json(conn, ex, 200, dump_json(card(name)));
}

void send_text(Server& s, const std::shared_ptr<Connection>& conn, Exchange& ex,
               const std::string& text) {
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = text;
  s.send(conn, ex, std::move(res));
}

// The body's string field `key` (400 naming it when absent or not a string).
std::string lora_field(const json& body, const char* key) {
  const json* v = body.is_object() && body.contains(key) ? &body[key] : nullptr;
  if (v == nullptr || !v->is_string() || v->get<std::string>().empty())
    throw ApiError(400, fmt::format("'{}' must be a non-empty string", key),
                   "invalid_request_error", key);
  return v->get<std::string>();
}

LoraAdapters& runtime_lora(Server& s) {
  if (!s.config().lora)
    throw ApiError(400, "LoRA is off: start the server with --enable-lora",
                   "invalid_request_error");
  if (!s.config().enable_runtime_lora_updating)
    throw ApiError(400,
                   "Loading and unloading LoRA adapters at run time is off: start the server "
                   "with --enable-runtime-lora-updating",
                   "invalid_request_error");
  return *s.config().lora;
}

// vLLM's POST /v1/load_lora_adapter {"lora_name": ..., "lora_path": ...}: 200 with a text body.
void load_lora_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                     Exchange& ex) {
  LoraAdapters& lora = runtime_lora(s);
  const json body = parse_json_body(req.body());
  const std::string name = lora_field(body, "lora_name"), path = lora_field(body, "lora_path");
  try {
    lora.load(name, path);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "invalid_request_error", "lora_path");
  }
  send_text(s, conn, ex, fmt::format("Success: LoRA adapter '{}' added successfully.", name));
}

// vLLM's POST /v1/unload_lora_adapter {"lora_name": ...}: 404 for an unknown name.
void unload_lora_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                       Exchange& ex) {
  LoraAdapters& lora = runtime_lora(s);
  const json body = parse_json_body(req.body());
  const std::string name = lora_field(body, "lora_name");
  if (lora.id_of(name) < 0)
    throw ApiError(404, fmt::format("The lora adapter '{}' cannot be found.", name),
                   "not_found_error", "lora_name");
  lora.unload(name);
  send_text(s, conn, ex, fmt::format("Success: LoRA adapter '{}' removed successfully.", name));
}

}  // namespace

void add_models_routes(RouteTable& t, Server& s) {
  t.add({"/v1/models", false, http::verb::get, true, "", on(s, models_route)});
  t.add({kModelPrefix, true, http::verb::get, true, "/v1/models/{model}", on(s, models_route)});
  t.add({"/v1/load_lora_adapter", false, http::verb::post, true, "", on(s, load_lora_route)});
  t.add({"/v1/unload_lora_adapter", false, http::verb::post, true, "", on(s, unload_lora_route)});
}

}  // namespace inferd::server
