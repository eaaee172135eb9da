// The OpenAI completions renderer (see openai_completions.h).
#include "server/render/openai_completions.h"

#include "server/responses.h"

namespace inferd::server {

namespace {

// Appends the logprobs of some tokens to completions' logprobs object (created when null):
// tokens, token_logprobs, top_logprobs (the token itself among them), text_offset (advancing
// `offset` by each token's text).
void completion_logprobs(const Generation& g, std::span<const SampleLogprobs> lps, size_t& offset,
                         ojson& out) {
  if (out.is_null())
    out = {{"tokens", ojson::array()},
           {"token_logprobs", ojson::array()},
           {"top_logprobs", ojson::array()},
           {"text_offset", ojson::array()}};
  const int32_t top_n = g.request.top_logprobs;
  for (const auto& s : lps) {
    const std::string tok = openai_token(g, s.token_id);
    out["tokens"].push_back(tok);
    out["token_logprobs"].push_back(openai_logprob(s.logprob));
    ojson top = ojson::object();
    for (size_t i = 0; i < s.top.size() && int32_t(i) < top_n; ++i)
      top[openai_token(g, s.top[i].token_id)] = openai_logprob(s.top[i].logprob);
    top[tok] = openai_logprob(s.logprob);  // logprobs: 0 too: the sampled token's (vLLM)
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(offset);
    // Offsets count the text, also when tokens show as ids.
    offset += g.request.tokens_as_ids ? g.generator.token_text(s.token_id).size() : tok.size();
  }
}

// echo + logprobs: the prompt's tokens first, as OpenAI shows them: the first with a null logprob
// and null alternatives (nothing predicts it), each next one with its prompt logprob.
void echoed_prompt_logprobs(const Generation& g, const PromptOutput& p, size_t& offset,
                            ojson& out) {
  if (p.token_ids.empty()) return;
  const std::string first = openai_token(g, p.token_ids[0]);
  out = {{"tokens", ojson::array({first})},
         {"token_logprobs", ojson::array({nullptr})},
         {"top_logprobs", ojson::array({nullptr})},
         {"text_offset", ojson::array({offset})}};
  offset += g.generator.token_text(p.token_ids[0]).size();
  completion_logprobs(g, p.prompt_logprobs, offset, out);
}

}  // namespace

// vLLM's prompt_logprobs: null for the first prompt token, then per token a map from token id to
// {logprob, rank, decoded_token}, the token itself and its `prompt_logprobs` most likely ones.
ojson vllm_prompt_logprobs(const Generation& g, const PromptOutput& p) {
  ojson a = ojson::array();
  if (p.token_ids.empty()) return a;
  a.push_back(nullptr);
  auto entry = [&](int32_t id, float lp, int32_t rank) {
    return ojson{{"logprob", openai_logprob(lp)},
                 {"rank", rank},
                 {"decoded_token", g.generator.token_text(id)}};
  };
  for (const SampleLogprobs& s : p.prompt_logprobs) {
    ojson m = ojson::object();
    m[std::to_string(s.token_id)] = entry(s.token_id, s.logprob, s.rank);
    for (size_t i = 0; i < s.top.size(); ++i) {
      const std::string key = std::to_string(s.top[i].token_id);
      if (!m.contains(key)) m[key] = entry(s.top[i].token_id, s.top[i].logprob, int32_t(i) + 1);
    }
    a.push_back(std::move(m));
  }
  return a;
}

void OpenAiCompletionsRenderer::begin(const Generation& g, RenderSink& out) {
  text_offset_.assign(g.choices.size(), 0);
  echo_pending_.assign(g.choices.size(), false);
  prompt_ids_sent_.assign(g.choices.size(), false);
  if (!g.request.echo) return;
  for (size_t i = 0; i < g.choices.size(); ++i) {
    // With logprobs the echo waits for the prompt's logprobs (they come with the first output).
    if (g.request.logprobs) {
      echo_pending_[i] = true;
      continue;
    }
    const std::string& prompt = g.request.prompt_texts[g.choices[i].prompt_index];
    ojson c;
    c["index"] = i;
    c["text"] = prompt;
    text_offset_[i] = prompt.size();
    c["logprobs"] = nullptr;
    c["finish_reason"] = nullptr;
    add_prompt_ids(g, i, c);
    write_chunk(g, std::move(c), out);
  }
}

// return_token_ids: the first chunk of a choice carries its prompt's token ids.
void OpenAiCompletionsRenderer::add_prompt_ids(const Generation& g, size_t i, ojson& choice) {
  if (!g.request.return_token_ids || prompt_ids_sent_[i]) return;
  prompt_ids_sent_[i] = true;
  choice["prompt_token_ids"] = openai_token_ids(g.prompts[g.choices[i].prompt_index].token_ids);
}

void OpenAiCompletionsRenderer::delta(const Generation& g, const ChoiceDelta& d, RenderSink& out) {
  if (echo_pending_[d.index]) {
    echo_pending_[d.index] = false;
    const ChoiceOutput& c = g.choices[d.index];
    ojson ch;
    ch["index"] = d.index;
    ch["text"] = g.request.prompt_texts[c.prompt_index];
    ojson lp = nullptr;
    echoed_prompt_logprobs(g, g.prompts[c.prompt_index], text_offset_[d.index], lp);
    ch["logprobs"] = std::move(lp);
    ch["finish_reason"] = nullptr;
    write_chunk(g, std::move(ch), out);
  }
  const bool ids = g.request.return_token_ids && !d.token_ids.empty();
  if (d.content.empty() && !d.finish && d.logprobs.empty() && !ids) return;
  ojson ch;
  ch["index"] = d.index;
  ch["text"] = d.content;
  ojson lp = nullptr;
  if (!d.logprobs.empty()) completion_logprobs(g, d.logprobs, text_offset_[d.index], lp);
  ch["logprobs"] = std::move(lp);
  ch["finish_reason"] = d.finish ? ojson(to_string(*d.finish)) : ojson(nullptr);
  if (d.finish) ch["stop_reason"] = g.choices[d.index].stop_reason;
  add_prompt_ids(g, d.index, ch);
  if (g.request.return_token_ids) ch["token_ids"] = openai_token_ids(d.token_ids);
  write_chunk(g, std::move(ch), out);
}

void OpenAiCompletionsRenderer::full(const Generation& g, RenderSink& out) {
  ojson j = chunk_base(g, "text_completion");
  ojson choices = ojson::array();
  for (size_t i = 0; i < g.choices.size(); ++i) {
    const ChoiceOutput& c = g.choices[i];
    ojson ch;
    ch["index"] = i;
    ch["text"] = g.request.echo ? g.request.prompt_texts[c.prompt_index] + c.text : c.text;
    ojson lp = nullptr;
    size_t offset = 0;
    if (g.request.echo && g.request.logprobs)
      echoed_prompt_logprobs(g, g.prompts[c.prompt_index], offset, lp);
    if (g.request.logprobs && !c.logprobs.empty()) completion_logprobs(g, c.logprobs, offset, lp);
    ch["logprobs"] = std::move(lp);
    if (g.request.prompt_logprobs)
      ch["prompt_logprobs"] = vllm_prompt_logprobs(g, g.prompts[c.prompt_index]);
    ch["finish_reason"] = to_string(c.finish.value_or(FinishReason::kAbort));
    ch["stop_reason"] = c.stop_reason;
    if (g.request.return_token_ids) {
      ch["prompt_token_ids"] = openai_token_ids(g.prompts[c.prompt_index].token_ids);
      ch["token_ids"] = openai_token_ids(c.token_ids);
    }
    choices.push_back(std::move(ch));
  }
  j["choices"] = std::move(choices);
  j["usage"] = openai_usage(g.usage());
  out.send_json(200, dump_json(j));
}

}  // namespace inferd::server
