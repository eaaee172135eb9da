// The OpenAI renderers' shared pieces (see openai_common.h).
#include "server/render/openai_common.h"

#include <cmath>

#include "server/responses.h"

namespace inferd::server {

ojson openai_usage(const Usage& u) {
  ojson j;
  j["prompt_tokens"] = u.prompt_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  j["completion_tokens"] = u.completion_tokens;
  ojson d;
  d["cached_tokens"] = u.cached_tokens;
  j["prompt_tokens_details"] = std::move(d);
  return j;
}

double openai_logprob(float lp) {
  return std::isfinite(lp) ? double(lp) : -9999.0;
}

ojson OpenAiRenderer::chunk_base(const Generation& g, const char* object) const {
  ojson j;
  j["id"] = g.id;
  j["object"] = object;
  j["created"] = g.created;
  j["model"] = g.request.model;
  return j;
}

void OpenAiRenderer::write_chunk(const Generation& g, ojson choice, RenderSink& out) const {
  ojson j = chunk_base(g, chunk_object());
  j["choices"] = ojson::array({std::move(choice)});
  if (g.request.include_usage)
    j["usage"] = g.request.continuous_usage ? openai_usage(g.usage()) : ojson(nullptr);
  out.event(dump_json(j));
}

void OpenAiRenderer::end(const Generation& g, RenderSink& out) {
  if (g.request.include_usage) {
    ojson j = chunk_base(g, chunk_object());
    j["choices"] = ojson::array();
    j["usage"] = openai_usage(g.usage());
    out.event(dump_json(j));
  }
  out.event("[DONE]");
  out.end_stream();
}

}  // namespace inferd::server
