// Fuzz target: regexes (structured outputs' `regex`, JSON Schema's `pattern`) and choices through
// the regex converter (src/grammar/regex_converter.cc). The first byte picks the use: 0 the whole
// regex as a rule (regex_to_gbnf), 1 a pattern inside a JSON string with JSON Schema's search
// semantics (regex_to_gbnf_expr), 2 a choice list (the rest split at NUL bytes, choice_to_gbnf).
// An unsupported regex must be a GrammarError; the GBNF the converter writes must then compile
// and walk (a GrammarError from it is a finding).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_vocab.h"
#include "grammar/grammar.h"
#include "grammar/regex_converter.h"

namespace {

using namespace inferd;

std::string to_gbnf(int mode, std::string_view text) {
  if (mode == 0) return grammar::regex_to_gbnf(text);
  if (mode == 1) {
    return "root ::= \"\\\"\" (" +
           grammar::regex_to_gbnf_expr(text, grammar::RegexTarget::kJsonString, true,
                                       "[^\"\\\\\\x00-\\x1F]") +
           ") \"\\\"\"\n";
  }
  std::vector<std::string> choices;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\0', start);
    if (end == std::string_view::npos) end = text.size();
    choices.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return grammar::choice_to_gbnf(choices);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string gbnf;
  try {
    gbnf = to_gbnf(data[0] % 3, text);
  } catch (const grammar::GrammarError&) {
    return 0;
  }
  try {
    fuzz::walk_grammar(grammar::compile_gbnf(gbnf, fuzz::small_vocab()), text);
  } catch (const grammar::GrammarError& e) {
    // The matcher's bound on live parses (kMaxStacks) refuses a legal but hopelessly ambiguous
    // pattern (`a|aa|aaa|...` searched): a 400 naming the limit, as meant, not a converter bug.
    if (std::string_view(e.what()).find("too ambiguous") != std::string_view::npos) return 0;
    std::fprintf(stderr, "the converter wrote GBNF that does not compile: %s\n%s\n", e.what(),
                 gbnf.c_str());
    std::abort();
  }
  return 0;
}
