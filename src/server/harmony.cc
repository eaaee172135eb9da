// The harmony output parser (harmony.h): a header / body state machine over the marker strings.
#include "server/harmony.h"

#include <algorithm>
#include <array>

#include "server/reasoning.h"

namespace inferd::server {

namespace {

constexpr std::string_view kMessage = "<|message|>";
constexpr std::string_view kChannel = "<|channel|>";
constexpr std::string_view kStart = "<|start|>";
// What ends a message body: the end markers, or a new message's start.
constexpr std::array<std::string_view, 4> kBodyEnds = {"<|end|>", "<|return|>", "<|call|>", kStart};

bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

// Bytes at the end of `s` that may begin one of the body-ending markers.
size_t held_suffix(std::string_view s) {
  const size_t lt = s.rfind('<');
  if (lt == std::string_view::npos) return 0;
  const std::string_view tail = s.substr(lt);
  for (std::string_view m : kBodyEnds)
    if (tail.size() < m.size() && m.starts_with(tail)) return tail.size();
  return 0;
}

// The channel a header names ("<|channel|>analysis to=... <|constrain|>json"), or "".
std::string_view channel_of(std::string_view header) {
  const size_t c = header.find(kChannel);
  if (c == std::string_view::npos) return {};
  std::string_view rest = header.substr(c + kChannel.size());
  const size_t end = std::min(rest.find(' '), rest.find('<'));
  return rest.substr(0, end);
}

}  // namespace

void HarmonyParser::feed(std::string_view text, ReasoningDelta& out) {
  pending_.append(text);
  run(out, false);
}

void HarmonyParser::finish(ReasoningDelta& out) {
  run(out, true);
}

void HarmonyParser::run(ReasoningDelta& out, bool final) {
  for (;;) {
    const std::string_view p = pending_;
    if (p.empty()) return;
    switch (state_) {
      case State::kPlain:
        out.content.append(p);
        pending_.clear();
        return;
      case State::kHeader: {
        const size_t m = p.find(kMessage);
        if (m != std::string_view::npos) {
          analysis_ = channel_of(p.substr(0, m)) == "analysis";
          saw_reasoning_ = saw_reasoning_ || analysis_;
          pending_.erase(0, m + kMessage.size());
          state_ = State::kBody;
          continue;
        }
        // A header opens with a marker; anything else is not harmony (plain content).
        const size_t i =
            size_t(std::find_if(p.begin(), p.end(), [](char c) { return !is_ws(c); }) - p.begin());
        const std::string_view rest = p.substr(i);
        const bool marker = rest.starts_with("<|") || std::string_view("<|").starts_with(rest);
        if (!marker) {
          state_ = State::kPlain;
          continue;
        }
        if (final) pending_.clear();  // an unfinished header carries no text
        return;
      }
      case State::kBody: {
        size_t end = std::string_view::npos, len = 0;
        for (std::string_view e : kBodyEnds) {
          const size_t at = p.find(e);
          if (at < end) {
            end = at;
            len = e == kStart ? 0 : e.size();  // a new <|start|> belongs to the next header
          }
        }
        std::string& to = analysis_ ? out.reasoning : out.content;
        if (end != std::string_view::npos) {
          to.append(p.substr(0, end));
          pending_.erase(0, end + len);
          state_ = State::kHeader;
          continue;
        }
        const size_t hold = final ? 0 : held_suffix(p);
        to.append(p.substr(0, p.size() - hold));
        pending_.erase(0, p.size() - hold);
        return;
      }
    }
  }
}

}  // namespace inferd::server
