// Helpers shared by the grammar library's tests: a vocabulary of every byte, random vocabularies
// and random grammars over small alphabets, two fixed grammars (a JSON-like one and arithmetic),
// and reading a mask bit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "grammar/grammar.h"

namespace inferd::grammar::testing {

// Every single byte as a token (id = byte), then `extra` tokens, then a stop id.
inline std::shared_ptr<const TokenizerInfo> byte_vocab(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.emplace_back(1, static_cast<char>(b));
  for (const auto& e : extra) bytes.push_back(e);
  bytes.emplace_back();  // stop
  const auto stop = static_cast<int32_t>(bytes.size() - 1);
  return std::make_shared<const TokenizerInfo>(std::move(bytes), std::vector<int32_t>{stop});
}

inline bool bit(const std::vector<uint32_t>& w, int32_t id) {
  return (w[static_cast<size_t>(id) / 32] >> (id % 32)) & 1;
}

// A JSON-like grammar.
constexpr const char* kJsonish = R"(
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null")
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]*)) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? ws
ws ::= [ \t\n]{0,4}
)";

// Arithmetic expressions.
constexpr const char* kArith = R"gbnf(
root ::= expr
expr ::= term (("+" | "-") term)*
term ::= factor (("*" | "/") factor)*
factor ::= num | "(" expr ")" | "-" factor
num ::= [0-9]+
)gbnf";

// 300 random tokens of 1-4 bytes over `alphabet`, every single byte of it, UTF-8 pieces, a token
// without bytes and a stop id (last).
inline std::vector<std::string> random_vocab(const std::string& alphabet, std::mt19937& rng,
                                             bool long_tokens = false) {
  std::vector<std::string> pieces;
  for (char c : alphabet) pieces.emplace_back(1, c);
  for (const char* p : {"\xC3\xA9", "\xE2\x82\xAC", "\xC3", "\xA9", "\xE2", "\xE2\x82", "\x82\xAC",
                        "\xAC", "\xF0\x9F\x98\x80", "\xF0\x9F"}) {
    pieces.emplace_back(p);
  }
  std::vector<std::string> vocab = pieces;
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1);
  std::uniform_int_distribution<int> len(1, 4);
  std::set<std::string> have(vocab.begin(), vocab.end());
  while (vocab.size() < 300) {
    std::string t;
    const int n = len(rng);
    while (static_cast<int>(t.size()) < n) t += pieces[pick(rng)];
    if (have.insert(t).second) vocab.push_back(t);
  }
  // Tokens of 12 to 90 bytes (longer than what count-sharing context tables classify): runs of one
  // character, some with a piece after them.
  std::uniform_int_distribution<int> long_len(12, 90);
  for (int k = 0; long_tokens && k < 120; ++k) {
    std::string t(static_cast<size_t>(long_len(rng)), alphabet[rng() % alphabet.size()]);
    if (rng() % 2 == 0) t += pieces[pick(rng)];
    if (have.insert(t).second) vocab.push_back(t);
  }
  std::shuffle(vocab.begin(), vocab.end(), rng);
  vocab.emplace_back();  // no bytes
  vocab.emplace_back();  // stop
  return vocab;
}

// Random grammars over a small alphabet (those the compiler rejects are skipped).
inline std::string random_grammar(std::mt19937& rng) {
  const char* atoms[] = {
      "\"a\"", "\"b\"", "\"ab\"", "[a-c]", "[^a]", "\"\\u00e9\"", "\"c\"", "[\\u00e9-\\u20ac]",
      "\"\"",  "."};
  const char* posts[] = {"", "", "", "*", "+", "?", "{2}", "{1,3}", "{0,2}"};
  const int nrules = 1 + static_cast<int>(rng() % 4);
  std::string out;
  std::function<std::string(int)> expr = [&](int depth) -> std::string {
    std::string s;
    const int alts = 1 + static_cast<int>(rng() % 3);
    for (int a = 0; a < alts; ++a) {
      if (a) s += " | ";
      const int len = static_cast<int>(rng() % 4);
      for (int k = 0; k < len; ++k) {
        const unsigned kind = rng() % 10;
        std::string item;
        if (kind < 5 || depth > 1) {
          item = atoms[rng() % std::size(atoms)];
        } else if (kind < 8) {
          item = "r";
          item += std::to_string(rng() % static_cast<unsigned>(nrules));
        } else {
          item = "(";
          item += expr(depth + 1);
          item += ")";
        }
        s += item + posts[rng() % std::size(posts)] + " ";
      }
    }
    return s;
  };
  out += "root ::= r0\n";
  for (int r = 0; r < nrules; ++r) {
    out += "r";
    out += std::to_string(r);
    out += " ::= ";
    out += expr(0);
    out += "\n";
  }
  return out;
}

}  // namespace inferd::grammar::testing
