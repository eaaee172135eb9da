// /v1/embeddings: admitted and run by an EmbeddingJob (embedding_job.h); embeddings never stream,
// so no renderer.
#include "server/embedding_job.h"
#include "server/routes/routes.h"

namespace inferd::server {

namespace {

void embeddings_route(Server& s, const std::shared_ptr<Connection>& conn, Request& req,
                      Exchange& ex) {
  EmbeddingJob::admit(s, conn, req, ex);
}

}  // namespace

void add_embeddings_routes(RouteTable& t, Server& s) {
  t.add({"/v1/embeddings", false, http::verb::post, true, "", on(s, embeddings_route)});
}

}  // namespace inferd::server
