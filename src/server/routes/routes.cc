// Every route family of the server (see routes.h).
#include "server/routes/routes.h"

namespace inferd::server {

void add_routes(RouteTable& t, const ServerConfig& config) {
  add_system_routes(t, config);
  add_tokenize_routes(t);
  add_models_routes(t);
  add_completions_routes(t);
  add_chat_routes(t);
  add_responses_routes(t);
}

}  // namespace inferd::server
