// /v1/completions' answer: a text_completion body, or text_completion events (the echoed prompt
// first when echo is on, then text deltas with their logprobs and text offsets).
#pragma once

#include <cstddef>
#include <vector>

#include "server/render/openai_common.h"

namespace inferd::server {

// vLLM's prompt_logprobs array of one prompt (completions' choices, chat's response).
ojson vllm_prompt_logprobs(const Generation& g, const PromptOutput& p);

class OpenAiCompletionsRenderer final : public OpenAiRenderer {
 public:
  void begin(const Generation& g, RenderSink& out) override;
  void delta(const Generation& g, const ChoiceDelta& d, RenderSink& out) override;
  void full(const Generation& g, RenderSink& out) override;

 private:
  const char* chunk_object() const override { return "text_completion"; }

  void add_prompt_ids(const Generation& g, size_t i, ojson& choice);

  std::vector<size_t> text_offset_;    // streaming: per choice, the next token's text_offset
  std::vector<bool> prompt_ids_sent_;  // streaming: per choice, prompt_token_ids went out
  std::vector<bool> echo_pending_;     // streaming echo + logprobs: the prompt not written yet
};

}  // namespace inferd::server
