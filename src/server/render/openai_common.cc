// The OpenAI renderers' shared pieces (see openai_common.h).
#include "server/render/openai_common.h"

#include <fmt/format.h>

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

std::string openai_token(const Generation& g, int32_t id) {
  return g.request.tokens_as_ids ? fmt::format("token_id:{}", id) : g.generator.token_text(id);
}

ojson openai_token_ids(std::span<const int32_t> ids) {
  ojson a = ojson::array();
  for (int32_t id : ids) a.push_back(id);
  return a;
}

ojson OpenAiRenderer::chunk_base(const Generation& g, const char* object) const {
  ojson j;
  j["id"] = g.id;
  j["object"] = object;
  j["created"] = g.created;
  j["model"] = g.request.model;
  return j;
}

void OpenAiRenderer::write_chunk(const Generation& g, ojson choice, RenderSink& out,
                                 ojson extra) const {
  ojson j = chunk_base(g, chunk_object());
  j["choices"] = ojson::array({std::move(choice)});
  if (g.request.include_usage)
    j["usage"] = g.request.continuous_usage ? openai_usage(g.usage()) : ojson(nullptr);
  if (extra.is_object())
    for (auto& [k, v] : extra.items()) j[k] = std::move(v);
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
