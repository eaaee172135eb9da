// What the grammar fuzz targets share: a small vocabulary (every single byte, some multi-byte
// tokens a JSON or text grammar meets, one stop id) and a walk of a compiled grammar through a
// GrammarMatcher that checks the matcher's own contract: every token the bitmask allows is
// accepted, a token it forbids is refused, rollback restores the state.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace inferd::fuzz {

inline std::shared_ptr<const grammar::TokenizerInfo> small_vocab() {
  static const std::shared_ptr<const grammar::TokenizerInfo> vocab = [] {
    std::vector<std::string> bytes;
    for (int b = 0; b < 256; ++b) bytes.emplace_back(1, char(b));
    for (const char* t : {"{\"",  "\":", "\",",         "\"}", "true",         "false",
                          "null", "  ",  "\n  ",        "ab",  "abc",          "[{",
                          "}]",   "</",  "<tool_call>", "é",   "\xe2\x82\xac", "\xf0\x9f\x99\x82",
                          "12",   "0.5", "e+",          "\\n", "\\u00"})
      bytes.emplace_back(t);
    bytes.emplace_back();  // a special token: never allowed under a grammar
    const int32_t stop = int32_t(bytes.size());
    bytes.emplace_back();
    return std::make_shared<const grammar::TokenizerInfo>(std::move(bytes),
                                                          std::vector<int32_t>{stop});
  }();
  return vocab;
}

// Walks up to `steps` tokens through the grammar, choosing among the allowed tokens with the
// bytes of `choice`; aborts when the matcher breaks its contract.
inline void walk_grammar(const std::shared_ptr<const grammar::CompiledGrammar>& g,
                         std::string_view choice, int steps = 24) {
  const int32_t V = small_vocab()->vocab_size();
  grammar::GrammarMatcher m(g, 2);
  std::vector<uint32_t> mask(size_t(grammar::bitmask_words(V)));
  size_t c = 0;
  for (int s = 0; s < steps && !m.is_terminated(); ++s) {
    m.fill_next_token_bitmask(mask);
    std::vector<int32_t> allowed;
    int32_t forbidden = -1;
    for (int32_t t = 0; t < V; ++t) {
      if (mask[size_t(t) / 32] >> (t % 32) & 1u)
        allowed.push_back(t);
      else if (forbidden < 0 || (choice.size() > c && int32_t(uint8_t(choice[c])) == t))
        forbidden = t;
    }
    if (forbidden >= 0 && m.accept_token(forbidden)) std::abort();  // the mask forbade it
    if (allowed.empty()) return;
    const uint32_t pick = c < choice.size() ? uint8_t(choice[c++]) : uint32_t(s) * 7919u;
    if (!m.accept_token(allowed[pick % allowed.size()])) std::abort();  // the mask allowed it
    if (s == 3) {
      m.rollback(1);
      if (!m.accept_token(allowed[pick % allowed.size()])) std::abort();
    }
  }
}

}  // namespace inferd::fuzz
