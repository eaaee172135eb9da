// The context tables of a compiled grammar (internal to src/grammar): the tables of byte-set
// positions under the real frames a matcher finds below them (CompiledGrammar::context_table),
// built on first use by idle classifiers and kept for every matcher of the grammar.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/classifier.h"
#include "grammar/compiled_grammar.h"

namespace inferd::grammar {

struct CompiledGrammar::ContextTables {
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const TokenTable>> map;
  std::vector<std::unique_ptr<Classifier>> idle;  // classifiers not in use
  // Per (position, top frame of a repetition chain, bottom): Classifier::thresholds (null: the
  // chain's counts are not determined by the bytes, tables are walked per count).
  std::unordered_map<std::string, std::shared_ptr<const Classifier::Thresholds>> thresholds;

  // A classifier of g (an idle one when there is one); give_back() it when done.
  std::unique_ptr<Classifier> take_classifier(const CompiledGrammar& g);
  void give_back(std::unique_ptr<Classifier> cl);
  // The table kept under `key`, null when none.
  std::shared_ptr<const TokenTable> find(const std::string& key);
  // Keeps `table` under `key` unless one is there already; returns the one kept. Bounded: past
  // 8192 tables every table and threshold is dropped.
  std::shared_ptr<const TokenTable> keep(std::string key, std::shared_ptr<const TokenTable> table);
  // The table of `pos` under a repetition frame h_k at position `s` alone (the frame the matcher
  // meets first, at every count): a filter over per-token thresholds (the smallest count at which a
  // token is accepted / uncertain) from one walk under the chain's top frame, when the bytes fix
  // how many x a token starts (checked per state); any count of a chain of up to 250 costs no
  // walk. With `long_unc` tokens of kRepeatCap bytes or more stay uncertain: the same table serves
  // every count from kRepeatCap up (the base of capped contexts; context_tables.cc). Null where it
  // does not apply.
  std::shared_ptr<const TokenTable> repeat_frame_alone(const CompiledGrammar& g, int32_t pos,
                                                       int32_t s, bool at_bottom, bool long_unc);
};

}  // namespace inferd::grammar
