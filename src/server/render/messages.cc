// The Anthropic Messages renderer (see messages.h).
#include "server/render/messages.h"

#include "server/messages_request.h"
#include "server/responses.h"

namespace inferd::server {

namespace {

// A Messages request has one choice.
MessagesFinish finish_of(const ChoiceOutput& c) {
  MessagesFinish f;
  f.reason = c.finish.value_or(FinishReason::kStop);
  if (c.stop_reason.is_string()) f.stop_sequence = c.stop_reason.get<std::string>();
  return f;
}

MessagesUsage usage_of(const Generation& g) {
  const Usage u = g.usage();
  return {u.prompt_tokens, u.cached_tokens, u.completion_tokens};
}

void write(const SseEvents& events, RenderSink& out) {
  for (const auto& e : events) out.event(e.data, e.name);
}

}  // namespace

// message_start counts the prompt as the request holds it; message_delta has the final split
// between input_tokens and cache_read_input_tokens.
void MessagesRenderer::begin(const Generation& g, RenderSink& out) {
  stream_.emplace(g.id, g.request.model);
  MessagesUsage u;
  for (const auto& p : g.prompts) u.prompt_tokens += int64_t(p.token_ids.size());
  write(stream_->start(u), out);
}

void MessagesRenderer::delta(const Generation&, const ChoiceDelta& d, RenderSink& out) {
  write(stream_->feed(d.reasoning, d.content, d.calls), out);
}

void MessagesRenderer::end(const Generation& g, RenderSink& out) {
  write(stream_->finish(finish_of(g.choices.at(0)), usage_of(g)), out);
  out.end_stream();
}

void MessagesRenderer::full(const Generation& g, RenderSink& out) {
  const ChoiceOutput& c = g.choices.at(0);
  const std::vector<ToolCall> none;
  const ojson body =
      c.parsed ? messages_body(g.id, g.request.model, c.parsed->reasoning(), c.parsed->content(),
                               c.parsed->calls(), finish_of(c), usage_of(g))
               : messages_body(g.id, g.request.model, "", c.text, none, finish_of(c), usage_of(g));
  out.send_json(200, dump_json(body));
}

// Anthropic's error JSON with the error's status (no Retry-After: a running request fails by
// timeout, engine error or drain), or an error event that ends the stream.
void MessagesRenderer::fail(const Generation&, const ApiError& e, bool streaming, RenderSink& out) {
  if (!streaming) return out.send_json(e.status(), anthropic_error_body(e));
  const SseEvent ev = MessagesOutput::error_event(e);
  out.event(ev.data, ev.name);
  out.end_stream();
}

}  // namespace inferd::server
