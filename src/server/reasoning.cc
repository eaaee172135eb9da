// Reasoning parsers: a three-state split (before, inside, after the reasoning block) that holds
// back a possible partial <think> / </think> at the end of each piece.
#include "server/reasoning.h"

#include <algorithm>

namespace inferd::server {

namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

size_t partial_suffix(std::string_view s, std::string_view marker) {
  for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == marker.substr(0, n)) return n;
  return 0;
}

}  // namespace

std::optional<ReasoningFormat> reasoning_parser_from_name(std::string_view name) {
  if (name == "qwen3") return ReasoningFormat::kQwen3;
  if (name == "deepseek_r1") return ReasoningFormat::kDeepSeekR1;
  if (name == "openai_gptoss" || name == "gpt_oss") return ReasoningFormat::kGptOss;
  return std::nullopt;
}

const char* reasoning_parser_names() {
  return "qwen3, deepseek_r1, openai_gptoss";
}

PromptReasoning prompt_reasoning(std::string_view prompt) {
  const std::string_view t = rtrim(prompt);
  if (t.ends_with(kThinkClose)) return PromptReasoning::kClosed;
  if (t.ends_with(kThinkOpen)) return PromptReasoning::kOpen;
  return PromptReasoning::kNone;
}

bool starts_in_reasoning(ReasoningFormat format, PromptReasoning p) {
  if (format == ReasoningFormat::kGptOss) return false;  // the channel header says
  if (format == ReasoningFormat::kDeepSeekR1) return p != PromptReasoning::kClosed;
  return p == PromptReasoning::kOpen;
}

ReasoningParser::ReasoningParser(ReasoningFormat format, bool in_reasoning)
    : format_(format), state_(in_reasoning ? State::kInside : State::kBefore) {
  saw_reasoning_ = in_reasoning;
  if (format == ReasoningFormat::kGptOss) harmony_.emplace();
}

ReasoningDelta ReasoningParser::feed(std::string_view text) {
  ReasoningDelta out;
  if (harmony_) {
    harmony_->feed(text, out);
    add_harmony(out);
    return out;
  }
  pending_.append(text);
  run(out, false);
  return out;
}

ReasoningDelta ReasoningParser::finish() {
  ReasoningDelta out;
  if (harmony_) {
    harmony_->finish(out);
    add_harmony(out);
    return out;
  }
  run(out, true);
  return out;
}

void ReasoningParser::add_harmony(const ReasoningDelta& out) {
  reasoning_.append(out.reasoning);
  content_.append(out.content);
  saw_reasoning_ = harmony_->saw_reasoning();
}

void ReasoningParser::run(ReasoningDelta& out, bool final) {
  auto to_content = [&](std::string_view s) {
    out.content.append(s);
    content_.append(s);
  };
  auto to_reasoning = [&](std::string_view s) {
    out.reasoning.append(s);
    reasoning_.append(s);
  };
  for (;;) {
    const std::string_view p = pending_;
    if (p.empty()) return;
    if (state_ == State::kAfter) {
      to_content(p);
      pending_.clear();
      return;
    }
    if (state_ == State::kBefore) {
      // qwen3: reasoning is what the output opens with <think> (leading whitespace allowed).
      const size_t i =
          std::find_if(p.begin(), p.end(), [](char c) { return !is_ws(c); }) - p.begin();
      const std::string_view rest = p.substr(i);
      if (rest.starts_with(kThinkOpen)) {
        state_ = State::kInside;
        saw_reasoning_ = true;
        at_start_ = false;
        pending_.erase(0, i + kThinkOpen.size());
        continue;
      }
      if (!final && kThinkOpen.starts_with(rest)) return;  // maybe "<thi" of "<think>"
      state_ = State::kAfter;
      continue;
    }
    // Inside: a <think> the model repeats at the very start is dropped.
    if (at_start_) {
      const size_t i =
          std::find_if(p.begin(), p.end(), [](char c) { return !is_ws(c); }) - p.begin();
      const std::string_view rest = p.substr(i);
      if (rest.starts_with(kThinkOpen)) {
        pending_.erase(0, i + kThinkOpen.size());
        at_start_ = false;
        continue;
      }
      if (!final && kThinkOpen.starts_with(rest)) return;
      at_start_ = false;
    }
    const size_t close = p.find(kThinkClose);
    if (close != std::string_view::npos) {
      to_reasoning(p.substr(0, close));
      pending_.erase(0, close + kThinkClose.size());
      state_ = State::kAfter;
      continue;
    }
    const size_t hold = final ? 0 : partial_suffix(p, kThinkClose);
    to_reasoning(p.substr(0, p.size() - hold));
    pending_.erase(0, p.size() - hold);
    return;
  }
}

}  // namespace inferd::server
