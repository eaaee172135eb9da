// The grammar library's public surface (structured outputs, DESIGN.md "Constrained decoding"; it
// depends on core/ alone and sees a vocabulary only as token byte strings): grammars written in
// GBNF (llama.cpp's EBNF dialect) compile against a vocabulary into a byte-level pushdown
// automaton; a GrammarMatcher follows one sequence and fills the bitmask of the tokens that may
// come next. JSON Schema, regexes and choices are first turned into GBNF text (json_schema.h,
// regex_converter.h), so there is one compiler.
//
// Split of the work (XGrammar's): for every automaton position whose next element is a byte
// class, the tokens whose validity does not depend on the stack below (accepted or rejected while
// matching inside the rule) are classified once at compile time; at run time only the remaining
// "uncertain" tokens (those that reach the end of the rule) are checked against the real stacks.
//
// Threading: TokenizerInfo and CompiledGrammar are immutable once built and shared by any number
// of threads; a GrammarMatcher belongs to one sequence and is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error_types.h"

namespace inferd::grammar {

// A grammar, schema or regex that cannot be compiled; the message names the rule, keyword or
// position and what was expected (the server answers it as a 400).
class GrammarError : public Error {
 public:
  using Error::Error;
};

// The vocabulary as the grammar engine sees it: the bytes each token id adds to the output.
// Ids with no bytes (special / control tokens, ids the tokenizer does not name, padding rows of
// the embedding) are never allowed by a grammar, except the stop ids, which are allowed exactly
// when the grammar can end.
class TokenizerInfo {
 public:
  // `token_bytes[id]`: the raw bytes of token id (empty: never produced under a grammar).
  // `stop_ids`: the ids that end a sequence (EOS ids).
  TokenizerInfo(std::vector<std::string> token_bytes, std::vector<int32_t> stop_ids);
  ~TokenizerInfo();
  int32_t vocab_size() const;
  const std::string& token_bytes(int32_t id) const;
  const std::vector<int32_t>& stop_ids() const;

  struct Impl;  // sorted vocabulary / trie used by the compiler and the matcher
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Number of 32-bit words of one bitmask row: bit (t % 32) of word t / 32 is token t.
inline int32_t bitmask_words(int32_t vocab_size) {
  return (vocab_size + 31) / 32;
}

// A grammar compiled against one vocabulary: the automaton and the per-position token tables.
class CompiledGrammar;

// Compiles GBNF text; `root` names the start rule. Throws GrammarError (parse errors with line and
// column, undefined rules, left recursion, rules that can match nothing, and a compile that takes
// longer than `timeout_s` seconds when that is > 0: checked between the positions it builds
// token tables for, so it stops within about one table's time of the limit).
std::shared_ptr<const CompiledGrammar> compile_gbnf(std::string_view gbnf,
                                                    std::shared_ptr<const TokenizerInfo> vocab,
                                                    std::string_view root = "root",
                                                    double timeout_s = 0);

// Follows one sequence's output through a compiled grammar.
class GrammarMatcher {
 public:
  // `max_rollback_tokens`: how many of the last accepted steps rollback() can undo (the history
  // is a ring of that many state copies, reused, so accepting allocates nothing for it once warm;
  // each accepted step copies its state there). 0, the default: none kept and nothing copied — a
  // caller that rolls back (speculative decoding: k draft tokens) asks for what it needs. Throws
  // InternalError when negative.
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar,
                          int32_t max_rollback_tokens = 0);
  ~GrammarMatcher();
  GrammarMatcher(GrammarMatcher&&) noexcept;
  GrammarMatcher& operator=(GrammarMatcher&&) noexcept;

  // Advances by one token. A stop id is accepted only when the grammar can end (the matcher is
  // then terminated and accepts nothing more). Returns false, leaving the state as it was, for a
  // token the grammar does not allow.
  bool accept_token(int32_t id);
  // Advances by raw bytes (tests, and text forced into the output); false leaves the state as it
  // was.
  bool accept_bytes(std::string_view bytes);
  // Undoes the last `n` accepted steps (each accept_token or accept_bytes call that returned true
  // is one step; an accepted stop id too, so the matcher is no longer terminated): the state,
  // masks and termination are then those after the steps before them. Speculative decoding rolls
  // back the draft tokens the target rejected. Throws InternalError when n is negative or more
  // than the steps kept (at most max_rollback_tokens, fewer when fewer were accepted).
  void rollback(int32_t n);

  // Writes the next-token bitmask into `words` (bitmask_words(vocab) entries): a bit is set when
  // the token may come next. Stop ids are set when the grammar can end here; after termination
  // only the stop ids are set.
  void fill_next_token_bitmask(std::span<uint32_t> words);

  bool can_terminate() const;  // the output so far is a complete sentence of the grammar
  bool is_terminated() const;  // a stop id was accepted
  // Number of distinct stacks the matcher follows now (diagnostics: highly ambiguous grammars
  // make it grow with the output, and every step costs in proportion).
  size_t stack_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace inferd::grammar
