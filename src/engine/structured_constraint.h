// A request's StructuredOutputs (include/inferd/sampling_params.h) turned into a compiled grammar
// of the grammar library (src/grammar): JSON Schema, regex, choice and json_object become GBNF
// text (grammar/json_schema.h, grammar/regex_converter.h), which one compiler turns into an
// automaton over the model's vocabulary. Compiled grammars are cached by
// the exact constraint, so the many requests of one application that send the same schema compile
// it once.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "grammar/grammar.h"
#include "inferd/sampling_params.h"

namespace inferd {

// The GBNF text of a constraint (root rule `root`). Throws grammar::GrammarError when it names none
// or more than one kind, or its schema, regex or choices are invalid.
std::string structured_to_gbnf(const StructuredOutputs& so);

class StructuredCompiler {
 public:
  // `capacity`: compiled grammars kept; each holds the token tables it built lazily, which grow
  // with the schema and the vocabulary, so the cache is kept small. `compile_timeout_s` > 0: a
  // constraint that takes longer to compile is a GrammarError saying so.
  explicit StructuredCompiler(std::shared_ptr<const grammar::TokenizerInfo> vocab,
                              size_t capacity = 64, double compile_timeout_s = 0);

  // Compiled grammar of the constraint, from the cache when the same one was compiled before.
  // Thread-safe; throws grammar::GrammarError.
  std::shared_ptr<const grammar::CompiledGrammar> compile(const StructuredOutputs& so);

  const std::shared_ptr<const grammar::TokenizerInfo>& vocab() const { return vocab_; }
  size_t hits() const;
  size_t misses() const;

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const grammar::CompiledGrammar>>;
  std::shared_ptr<const grammar::TokenizerInfo> vocab_;
  size_t capacity_;
  double compile_timeout_s_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  size_t hits_ = 0, misses_ = 0;
};

}  // namespace inferd
