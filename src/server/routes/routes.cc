// Every route family of the server (see routes.h).
#include "server/routes/routes.h"

namespace inferd::server {

void add_routes(RouteTable& t, Server& s) {
  add_system_routes(t, s);
  add_tokenize_routes(t, s);
  add_models_routes(t, s);
  add_completions_routes(t, s);
  add_chat_routes(t, s);
  add_messages_routes(t, s);
  add_responses_routes(t, s);
  add_embeddings_routes(t, s);
  add_sleep_routes(t, s);
}

}  // namespace inferd::server
