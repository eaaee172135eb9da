// StructuredOutputs -> GBNF -> compiled grammar, with an LRU cache keyed by the constraint.
#include "engine/structured_constraint.h"

#include <fmt/format.h>

#include "grammar/json_schema.h"
#include "grammar/regex_converter.h"

namespace inferd {

using grammar::CompiledGrammar;
using grammar::GrammarError;
using grammar::TokenizerInfo;

namespace {

// Kind and text of the constraint, one of them; "" kind when none is set.
std::pair<std::string, std::string> key_parts(const StructuredOutputs& so) {
  std::vector<std::pair<std::string, std::string>> set;
  if (so.json) set.emplace_back("json", *so.json);
  if (so.regex) set.emplace_back("regex", *so.regex);
  if (so.choice) {
    std::string k;
    for (const auto& c : *so.choice) {
      k += std::to_string(c.size());
      k += ':';
      k += c;
    }
    set.emplace_back("choice", k);
  }
  if (so.grammar) set.emplace_back("grammar", *so.grammar);
  if (so.json_object) set.emplace_back("json_object", "");
  if (set.empty()) {
    throw GrammarError(
        "structured outputs: none of json, regex, choice, grammar or json_object is set");
  }
  if (set.size() > 1) {
    throw GrammarError(
        fmt::format("structured outputs: only one of json, regex, choice, grammar "
                    "or json_object may be set, got {} and {}",
                    set[0].first, set[1].first));
  }
  return set[0];
}

}  // namespace

std::string structured_to_gbnf(const StructuredOutputs& so) {
  (void)key_parts(so);  // exactly one kind
  if (so.json) {
    // From the text, so that properties keep the client's order (nlohmann::json sorts keys).
    return grammar::json_schema_text_to_gbnf(*so.json);
  }
  if (so.regex) return grammar::regex_to_gbnf(*so.regex);
  if (so.choice) {
    if (so.choice->empty()) throw GrammarError("choice: at least one string is needed");
    return grammar::choice_to_gbnf(*so.choice);
  }
  if (so.json_object) return grammar::json_object_gbnf();
  return *so.grammar;
}

StructuredCompiler::StructuredCompiler(std::shared_ptr<const TokenizerInfo> vocab, size_t capacity,
                                       double compile_timeout_s)
    : vocab_(std::move(vocab)),
      capacity_(capacity == 0 ? 1 : capacity),
      compile_timeout_s_(compile_timeout_s) {}

std::shared_ptr<const CompiledGrammar> StructuredCompiler::compile(const StructuredOutputs& so) {
  const auto [kind, text] = key_parts(so);
  std::string key = kind;
  key += so.start_after_token ? "+after-reasoning\n" : "\n";
  key += text;
  {
    std::lock_guard lk(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++hits_;
      return it->second->second;
    }
    ++misses_;
  }
  // Compiled outside the lock: two threads may compile the same constraint once each at worst.
  std::string gbnf = structured_to_gbnf(so);
  std::string root = "root";
  if (so.start_after_token) {
    // After the reasoning, reasoning models write a blank line or two before the answer
    // (Qwen3: "</think>\n\n"): allow them rather than force the first character.
    gbnf += "\ninferd-after-reasoning ::= \"\\n\"{0,2} root\n";
    root = "inferd-after-reasoning";
  }
  std::shared_ptr<const CompiledGrammar> g =
      grammar::compile_gbnf(gbnf, vocab_, root, compile_timeout_s_);
  std::lock_guard lk(mu_);
  if (auto it = index_.find(key); it != index_.end()) return it->second->second;
  lru_.emplace_front(key, g);
  index_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return g;
}

size_t StructuredCompiler::hits() const {
  std::lock_guard lk(mu_);
  return hits_;
}
size_t StructuredCompiler::misses() const {
  std::lock_guard lk(mu_);
  return misses_;
}

}  // namespace inferd
