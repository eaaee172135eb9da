// Fuzz target: GBNF grammar text (structured outputs' `grammar`) through the grammar library
// (src/grammar): parse_gbnf and its checks, compile_gbnf against a small vocabulary, and a walk of
// the compiled grammar through a GrammarMatcher. The input is the grammar text, then optionally
// a NUL byte and the bytes that choose the walk's tokens. A bad grammar must be a GrammarError
// (the server's 400); any other exception, crash or matcher inconsistency is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_vocab.h"
#include "grammar/grammar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace inferd;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view text = in.substr(0, nul);
  const std::string_view choice = nul == std::string_view::npos ? "" : in.substr(nul + 1);
  try {
    const auto g = grammar::compile_gbnf(text, fuzz::small_vocab());
    fuzz::walk_grammar(g, choice);
  } catch (const grammar::GrammarError&) {
  }
  return 0;
}
