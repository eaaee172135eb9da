// The OpenAI chat renderer (see openai_chat.h).
#include "server/render/openai_chat.h"

#include <vector>

#include "server/render/openai_completions.h"
#include "server/responses.h"

namespace inferd::server {

namespace {

ojson utf8_bytes(const std::string& s) {
  ojson b = ojson::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

// Logprobs of some tokens, as chat's logprobs.content entries.
ojson chat_logprobs(const Generation& g, std::span<const SampleLogprobs> lps) {
  ojson content = ojson::array();
  for (const auto& s : lps) {
    const std::string tok = openai_token(g, s.token_id);
    ojson e;
    e["token"] = tok;
    e["logprob"] = openai_logprob(s.logprob);
    e["bytes"] = utf8_bytes(tok);
    ojson top = ojson::array();
    for (size_t i = 0; i < s.top.size() && int32_t(i) < g.request.top_logprobs; ++i) {
      const std::string t = openai_token(g, s.top[i].token_id);
      top.push_back(
          {{"token", t}, {"logprob", openai_logprob(s.top[i].logprob)}, {"bytes", utf8_bytes(t)}});
    }
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return content;
}

// OpenAI's finish_reason: "tool_calls" when the model stopped after calling tools.
std::string finish_reason(const ChoiceOutput& c) {
  const FinishReason f = c.finish.value_or(FinishReason::kAbort);
  if (f == FinishReason::kStop && c.parsed && !c.parsed->calls().empty()) return "tool_calls";
  return to_string(f);
}

// The assistant message of a choice: content (after the echoed last message, chat `echo`), and
// with output parsing reasoning_content and tool_calls.
ojson chat_message(const ChoiceOutput& c, const std::string& echo) {
  if (!c.parsed) return {{"role", "assistant"}, {"content", echo + c.text}};
  const ChatOutputParser& p = *c.parsed;
  const std::string& content = p.content();
  const auto& calls = p.calls();
  ojson msg = {{"role", "assistant"}};
  msg["content"] = content.empty() && echo.empty() && (!calls.empty() || !p.reasoning().empty())
                       ? ojson(nullptr)
                       : ojson(echo + content);
  if (p.has_reasoning())
    msg["reasoning_content"] = p.reasoning().empty() ? ojson(nullptr) : ojson(p.reasoning());
  if (!calls.empty()) {
    ojson tcs = ojson::array();
    for (const auto& t : calls)
      tcs.push_back({{"id", t.id},
                     {"type", "function"},
                     {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
    msg["tool_calls"] = std::move(tcs);
  }
  return msg;
}

}  // namespace

void OpenAiChatRenderer::begin(const Generation& g, RenderSink& out) {
  for (size_t i = 0; i < g.choices.size(); ++i) {
    ojson c;
    c["index"] = i;
    c["delta"] = {{"role", "assistant"}, {"content", ""}};
    c["logprobs"] = nullptr;
    c["finish_reason"] = nullptr;
    ojson extra = nullptr;
    if (g.request.return_token_ids)
      extra = {{"prompt_token_ids", openai_token_ids(g.prompts[0].token_ids)}};
    write_chunk(g, std::move(c), out, std::move(extra));
  }
  if (g.request.chat_echo.empty()) return;
  for (size_t i = 0; i < g.choices.size(); ++i) {
    ojson c;
    c["index"] = i;
    c["delta"] = {{"content", g.request.chat_echo}};
    c["logprobs"] = nullptr;
    c["finish_reason"] = nullptr;
    write_chunk(g, std::move(c), out);
  }
}

// Reasoning and content first (with the delta's logprobs), then one chunk per tool-call piece;
// finish_reason on the last chunk.
void OpenAiChatRenderer::delta(const Generation& g, const ChoiceDelta& d, RenderSink& out) {
  const ChoiceOutput& c = g.choices[d.index];
  const bool lp = !d.logprobs.empty();
  std::vector<ojson> deltas;
  ojson text = ojson::object();
  if (!d.reasoning.empty()) text["reasoning_content"] = d.reasoning;
  if (!d.content.empty()) text["content"] = d.content;
  if (!text.empty() || lp) deltas.push_back(std::move(text));
  for (const auto& t : d.calls) {
    ojson tc;
    tc["index"] = t.index;
    if (!t.id.empty()) {
      tc["id"] = t.id;
      tc["type"] = "function";
      tc["function"] = {{"name", t.name}, {"arguments", t.arguments}};
    } else {
      tc["function"] = {{"arguments", t.arguments}};
    }
    deltas.push_back({{"tool_calls", ojson::array({std::move(tc)})}});
  }
  const bool ids = g.request.return_token_ids && !d.token_ids.empty();
  if ((d.finish || ids) && deltas.empty()) deltas.push_back(ojson::object());
  for (size_t k = 0; k < deltas.size(); ++k) {
    ojson ch;
    ch["index"] = d.index;
    ch["delta"] = std::move(deltas[k]);
    ch["logprobs"] =
        k == 0 && lp ? ojson{{"content", chat_logprobs(g, d.logprobs)}} : ojson(nullptr);
    const bool last = k + 1 == deltas.size() && d.finish;
    ch["finish_reason"] = last ? ojson(finish_reason(c)) : ojson(nullptr);
    if (last) ch["stop_reason"] = c.stop_reason;
    if (k == 0 && g.request.return_token_ids) ch["token_ids"] = openai_token_ids(d.token_ids);
    write_chunk(g, std::move(ch), out);
  }
}

void OpenAiChatRenderer::full(const Generation& g, RenderSink& out) {
  ojson j = chunk_base(g, "chat.completion");
  ojson choices = ojson::array();
  for (size_t i = 0; i < g.choices.size(); ++i) {
    const ChoiceOutput& c = g.choices[i];
    ojson ch;
    ch["index"] = i;
    ch["message"] = chat_message(c, g.request.chat_echo);
    ch["logprobs"] =
        g.request.logprobs ? ojson{{"content", chat_logprobs(g, c.logprobs)}} : ojson(nullptr);
    ch["finish_reason"] = finish_reason(c);
    ch["stop_reason"] = c.stop_reason;
    if (g.request.return_token_ids) ch["token_ids"] = openai_token_ids(c.token_ids);
    choices.push_back(std::move(ch));
  }
  j["choices"] = std::move(choices);
  j["usage"] = openai_usage(g.usage());
  if (g.request.prompt_logprobs) j["prompt_logprobs"] = vllm_prompt_logprobs(g, g.prompts[0]);
  if (g.request.return_token_ids) j["prompt_token_ids"] = openai_token_ids(g.prompts[0].token_ids);
  out.send_json(200, dump_json(j));
}

}  // namespace inferd::server
