// The renderer seam's shared pieces: usage totals and OpenAI's way to fail (see renderer.h).
#include "server/render/renderer.h"

#include "server/responses.h"

namespace inferd::server {

Usage Generation::usage() const {
  Usage u;
  for (const auto& p : prompts) {
    u.prompt_tokens += p.num_tokens;
    u.cached_tokens += p.cached_tokens;
  }
  for (const auto& c : choices) u.completion_tokens += c.num_tokens();
  return u;
}

void Renderer::fail(const Generation&, const ApiError& e, bool streaming, RenderSink& out) {
  if (!streaming) return out.send_error(e);
  out.event(e.body());
  out.event("[DONE]");
  out.end_stream();
}

}  // namespace inferd::server
