// The normalised grammar every input (GBNF, and through it JSON Schema and regexes) is lowered
// to: rules made of alternatives, each a sequence of elements that are either a set of bytes or a
// reference to a rule. Repetitions, groups and character classes have become helper rules, and
// characters have become UTF-8 bytes (tokens cut characters, so the automaton works on bytes).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace inferd::grammar {

// A set of bytes (bit b of word b / 64).
struct ByteSet {
  std::array<uint64_t, 4> w{};
  bool test(uint8_t b) const { return (w[b >> 6] >> (b & 63)) & 1; }
  void set(uint8_t b) { w[b >> 6] |= uint64_t{1} << (b & 63); }
  void set_range(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) set(static_cast<uint8_t>(b));
  }
  bool empty() const { return (w[0] | w[1] | w[2] | w[3]) == 0; }
  ByteSet& operator|=(const ByteSet& o) {
    for (int i = 0; i < 4; ++i) w[i] |= o.w[i];
    return *this;
  }
  bool operator==(const ByteSet& o) const { return w == o.w; }
};

struct GElement {
  enum Kind : uint8_t { kBytes, kRule };
  Kind kind = kBytes;
  int32_t rule = -1;  // kRule
  ByteSet bytes;      // kBytes (never empty)
};

struct GRule {
  std::string name;  // user rules keep their name; helpers are named after their rule ("x_3")
  std::vector<std::vector<GElement>> alts;
};

struct Grammar {
  std::vector<GRule> rules;
  int32_t root = -1;
};

// Parses GBNF (llama.cpp's dialect) and lowers it to the normalised form; checks undefined rules,
// the root, left recursion and rules that can match nothing. Throws GrammarError.
Grammar parse_gbnf(std::string_view text, std::string_view root = "root");

// Checks a normalised grammar (rules defined, no left recursion, every rule reachable from the
// root can match something). Throws GrammarError naming the rule.
void check_grammar(const Grammar& g);
// nullable[r]: rule r can match the empty text.
std::vector<bool> nullable_rules(const Grammar& g);

// The UTF-8 byte sequences of the code points in [lo, hi] (surrogates excluded), as sequences of
// byte ranges: each inner vector is one alternative, one (first, last) range per byte.
using ByteRangeSeq = std::vector<std::pair<uint8_t, uint8_t>>;
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<ByteRangeSeq>& out);

}  // namespace inferd::grammar
