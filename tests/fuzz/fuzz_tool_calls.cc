// Fuzz target: model output through the server's output parsers (src/server/tool_calls.cc,
// reasoning.cc): the tool-call parser of each format (hermes, llama3_json, mistral, json_array,
// arguments) and the reasoning parser of each format, fed in pieces as a stream delivers them.
// The first byte picks the parser (bits 0-2: tool format 0..4, 5..6 reasoning qwen3 / deepseek_r1
// starting outside / inside the reasoning by bit 3); the second seeds the piece sizes; the rest
// is the output text. Checks the parsers' contract: the streamed deltas concatenate to the final
// content (and each call's arguments), calls are announced in order with an id and a name.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "server/reasoning.h"
#include "server/tool_calls.h"

namespace {

using namespace inferd::server;

// Splits `text` into pieces whose sizes `seed` picks (1..16 bytes), calling feed on each.
template <typename Feed>
void in_pieces(std::string_view text, uint8_t seed, Feed feed) {
  uint32_t r = seed | 1u;
  size_t i = 0;
  while (i < text.size()) {
    r = r * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(text.size() - i, 1 + (r >> 16) % 16);
    feed(text.substr(i, n));
    i += n;
  }
}

// A broken contract: says which, then aborts (the fuzzer's finding).
#define CHECK(cond)                                         \
  do {                                                      \
    if (!(cond)) {                                          \
      std::fprintf(stderr, "contract broken: %s\n", #cond); \
      std::abort();                                         \
    }                                                       \
  } while (0)

void tool_calls(ToolCallFormat format, std::string_view text, uint8_t seed) {
  ToolCallParser p(format, "get_weather");
  std::string content;
  std::vector<std::string> names, args;
  auto take = [&](const ToolParseDelta& d) {
    content += d.content;
    for (const ToolCallDelta& c : d.calls) {
      if (c.index == names.size()) {  // a new call: announced with id and name
        CHECK(!c.id.empty() && !c.name.empty());
        names.push_back(c.name);
        args.emplace_back();
      }
      CHECK(c.index + 1 == names.size());
      args.back() += c.arguments;
    }
  };
  in_pieces(text, seed, [&](std::string_view piece) { take(p.feed(piece)); });
  take(p.finish());
  CHECK(content == p.content());
  CHECK(names.size() == p.calls().size());
  for (size_t i = 0; i < names.size(); ++i) {
    CHECK(p.calls()[i].name == names[i]);
    CHECK(p.calls()[i].arguments == args[i]);
  }
}

void reasoning(ReasoningFormat format, bool inside, std::string_view text, uint8_t seed) {
  ReasoningParser p(format, inside);
  std::string r, c;
  in_pieces(text, seed, [&](std::string_view piece) {
    const ReasoningDelta d = p.feed(piece);
    r += d.reasoning;
    c += d.content;
  });
  const ReasoningDelta d = p.finish();
  r += d.reasoning;
  c += d.content;
  CHECK(r == p.reasoning() && c == p.content());
  (void)prompt_reasoning(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  const int which = data[0] & 7;
  if (which < 5) {
    tool_calls(ToolCallFormat(which), text, data[1]);
  } else {
    reasoning(which == 5 ? ReasoningFormat::kQwen3 : ReasoningFormat::kDeepSeekR1,
              (data[0] & 8) != 0, text, data[1]);
  }
  return 0;
}
