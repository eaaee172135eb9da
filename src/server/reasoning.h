// Reasoning parsers (vLLM's --reasoning-parser): a reasoning model's `<think>...</think>` split
// from its answer into `reasoning_content`, all at once or while the text streams.
//   qwen3        reasoning only where the output opens it with <think> (or the prompt ended
//                with an open <think>, as templates that always think do)
//   deepseek_r1  the output starts inside the reasoning (the template opened <think>) unless the
//                prompt already closed it; with no </think> at all, everything is reasoning
//   openai_gptoss  gpt-oss's harmony channels (harmony.h): analysis is reasoning, final (and
//                commentary) content (alias: gpt_oss)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "server/harmony.h"

namespace inferd::server {

enum class ReasoningFormat { kQwen3, kDeepSeekR1, kGptOss };

// The format of a --reasoning-parser name (qwen3, deepseek_r1); nullopt when unknown.
std::optional<ReasoningFormat> reasoning_parser_from_name(std::string_view name);
const char* reasoning_parser_names();  // "qwen3, deepseek_r1, openai_gptoss"

inline constexpr std::string_view kThinkOpen = "<think>";
inline constexpr std::string_view kThinkClose = "</think>";

// Where a rendered chat prompt leaves the model: inside an open <think> (kOpen), after a closed
// reasoning block (kClosed: for example Qwen3's enable_thinking=false puts an empty one), or
// neither.
enum class PromptReasoning { kNone, kOpen, kClosed };
PromptReasoning prompt_reasoning(std::string_view prompt);

// Whether the output of a prompt in state `p` starts inside the reasoning, for `format`.
bool starts_in_reasoning(ReasoningFormat format, PromptReasoning p);

struct ReasoningDelta {
  std::string reasoning;
  std::string content;
};

// Splits one sequence's output, incrementally: feed() each new piece, finish() at the end; the
// pieces concatenate to reasoning() and content(). A partial marker at the end of a piece is held
// until the next one shows what it is. One reasoning block per output: text after </think> is
// content, whatever it contains.
class ReasoningParser {
 public:
  ReasoningParser(ReasoningFormat format, bool in_reasoning);

  ReasoningDelta feed(std::string_view text);
  ReasoningDelta finish();

  const std::string& reasoning() const { return reasoning_; }
  const std::string& content() const { return content_; }
  bool saw_reasoning() const { return saw_reasoning_; }

 private:
  enum class State { kBefore, kInside, kAfter };
  void run(ReasoningDelta& out, bool final);
  void add_harmony(const ReasoningDelta& out);

  [[maybe_unused]] ReasoningFormat format_;
  std::optional<HarmonyParser> harmony_;  // kGptOss
  State state_;
  bool at_start_ = true;  // nothing of the output consumed yet (a leading <think> is dropped)
  bool saw_reasoning_ = false;
  std::string pending_;  // text not yet assigned (a possible partial marker)
  std::string reasoning_, content_;
};

}  // namespace inferd::server
