// CompiledGrammar's own state: construction, and the memo of uncertain checks its matchers share
// (find_checked / keep_checked: sharded, bounded).
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/compiled_grammar.h"
#include "grammar/context_tables.h"

namespace inferd::grammar {

struct CompiledGrammar::CheckMemo {
  static constexpr size_t kShards = 16;
  // Per shard: at most this many states and remembered ids (about 16 MB in all).
  static constexpr size_t kMaxEntries = 4096, kMaxIds = size_t{1} << 18;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<const std::vector<int32_t>>> map;
    size_t ids = 0;
  };
  Shard shards[kShards];
  Shard& shard(const std::string& key) { return shards[std::hash<std::string>{}(key) % kShards]; }
};

CompiledGrammar::CompiledGrammar()
    : context_(std::make_unique<ContextTables>()), checked_(std::make_unique<CheckMemo>()) {}
CompiledGrammar::~CompiledGrammar() = default;

std::shared_ptr<const std::vector<int32_t>> CompiledGrammar::find_checked(
    const std::string& key) const {
  CheckMemo::Shard& sh = checked_->shard(key);
  std::lock_guard<std::mutex> lock(sh.mu);
  auto it = sh.map.find(key);
  return it == sh.map.end() ? nullptr : it->second;
}

size_t CompiledGrammar::checked_states() const {
  size_t n = 0;
  for (CheckMemo::Shard& sh : checked_->shards) {
    std::lock_guard<std::mutex> lock(sh.mu);
    n += sh.map.size();
  }
  return n;
}

std::shared_ptr<const std::vector<int32_t>> CompiledGrammar::keep_checked(
    std::string key, std::vector<int32_t> ids) const {
  auto value = std::make_shared<const std::vector<int32_t>>(std::move(ids));
  CheckMemo::Shard& sh = checked_->shard(key);
  std::lock_guard<std::mutex> lock(sh.mu);
  if (sh.map.size() >= CheckMemo::kMaxEntries || sh.ids > CheckMemo::kMaxIds) {
    sh.map.clear();
    sh.ids = 0;
  }
  auto [it, fresh] = sh.map.emplace(std::move(key), value);
  if (fresh) sh.ids += value->size() + 1;
  return it->second;
}

}  // namespace inferd::grammar
