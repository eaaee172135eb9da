// OpenAI's harmony output format (gpt-oss; https://github.com/openai/harmony, "The harmony response
// format"), split into reasoning and content as text streams in: after the prompt's
// `<|start|>assistant`, the model writes messages `<|channel|>NAME[ to=RECIPIENT][ <|constrain|>
// TYPE]<|message|>BODY` ended by `<|end|>` (another `<|start|>assistant...` follows), `<|return|>`
// or `<|call|>`. Bodies of the analysis channel are reasoning; the others (final, commentary) are
// content. Output that does not open with a `<|` marker is plain content. The markers are special
// tokens: the server keeps them in the text for this parser (skip_special_tokens off).
#pragma once

#include <string>
#include <string_view>

namespace inferd::server {

struct ReasoningDelta;

class HarmonyParser {
 public:
  // The pieces of the output, in order; feed() holds back a possible partial marker.
  void feed(std::string_view text, ReasoningDelta& out);
  void finish(ReasoningDelta& out);
  bool saw_reasoning() const { return saw_reasoning_; }

 private:
  enum class State { kHeader, kBody, kPlain };
  void run(ReasoningDelta& out, bool final);

  State state_ = State::kHeader;
  bool analysis_ = false;  // the current message is on the analysis channel
  bool saw_reasoning_ = false;
  std::string pending_;
};

}  // namespace inferd::server
