// Compiles GBNF against a vocabulary: parse and lower (gbnf_parser.cc), lay out the automaton
// (automaton.cc), then classify every token at every byte-set position (classifier.h) from a
// stack holding that position and the frames that are certain to lie below it. Tables are cached
// process-wide by a canonical key of the position's content, so rules repeated across grammars
// are classified once; a grammar compiled again reuses its tables whole.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/classifier.h"
#include "grammar/compiled_grammar.h"
#include "grammar/grammar.h"
#include "grammar/grammar_ir.h"
#include "grammar/tokenizer_info.h"

namespace inferd::grammar {

namespace {

constexpr size_t kMaxChain = 32;
constexpr size_t kMaxCacheEntries = 1 << 14;

using Tables = std::vector<std::shared_ptr<const TokenTable>>;
constexpr size_t kMaxGrammarEntries = 256;

struct TableCache {
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const TokenTable>> map;
  // Whole grammars (vocabulary serial, root and GBNF text -> every position's table): a grammar
  // compiled again (the same schema in every request) skips building the position keys, which
  // cost more than the classification once tables are cached.
  std::unordered_map<std::string, std::shared_ptr<const Tables>> grammars;
  uint64_t hits = 0, misses = 0;
};
TableCache& cache() {
  static TableCache* c = new TableCache();
  return *c;
}

// The context certain at `pos` in every stack: the chain of unique return sites above its rule
// (at most kMaxChain), then bottom or the bytes that may follow.
Context context_of(const Automaton& a, int32_t pos) {
  Context c;
  auto r = static_cast<size_t>(a.elems[static_cast<size_t>(pos)].rule);
  while (a.unique_return[r] >= 0 && c.sites.size() < kMaxChain) {
    const int32_t s = a.unique_return[r];
    c.sites.push_back(s);
    r = static_cast<size_t>(a.elems[static_cast<size_t>(s)].rule);
  }
  c.bottom = a.unique_return[r] < 0 && a.only_bottom[r];
  if (!c.bottom) c.follow = a.follow[r];
  return c;
}

// A byte set as the count of its ranges, then each range (first, last byte): keys stay short (most
// sets are a few ranges; 32 bytes as a bitmap), and the encoding is exact (it reads back).
void append_ranges(std::string& key, const ByteSet& set) {
  const size_t at = key.size();
  key.push_back('\0');
  uint8_t ranges = 0;
  for (int b = 0; b < 256;) {
    if (!set.test(static_cast<uint8_t>(b))) {
      ++b;
      continue;
    }
    int e = b;
    while (e + 1 < 256 && set.test(static_cast<uint8_t>(e + 1))) ++e;
    key.push_back(static_cast<char>(b));
    key.push_back(static_cast<char>(e));
    ++ranges;
    b = e + 1;
  }
  key[at] = static_cast<char>(ranges);
}

// Canonical key: the elements from the position on, the rest of every known frame, and every rule
// reachable from them, with rules numbered in order of first appearance.
// `enc`: every byte-set position's set as append_ranges writes it.
std::string position_key(const Automaton& a, int32_t pos, const Context& c, uint64_t serial,
                         const std::vector<std::string>& enc) {
  std::string key;
  key.append(reinterpret_cast<const char*>(&serial), sizeof serial);
  std::vector<int32_t> num(a.alt_begins.size(), -1);  // rule -> its number in this key
  std::vector<int32_t> queue;
  auto emit_rest = [&](int32_t p) {
    for (;; ++p) {
      const Automaton::Elem& e = a.elems[static_cast<size_t>(p)];
      if (e.kind == Automaton::kEnd) break;
      if (e.kind == Automaton::kBytes) {
        key.push_back('B');
        key.append(enc[static_cast<size_t>(p)]);
      } else {
        int32_t& n = num[static_cast<size_t>(e.target)];
        if (n < 0) {
          n = static_cast<int32_t>(queue.size());
          queue.push_back(e.target);
        }
        key.push_back('R');
        key.append(reinterpret_cast<const char*>(&n), sizeof(int32_t));
      }
    }
    key.push_back('E');
  };
  emit_rest(pos);
  for (int32_t s : c.sites) {
    key.push_back('|');
    emit_rest(s + 1);
  }
  key.push_back(c.bottom ? 'T' : 'F');
  append_ranges(key, c.follow);
  for (size_t i = 0; i < queue.size(); ++i) {
    key.push_back('r');
    for (int32_t b : a.alt_begins[static_cast<size_t>(queue[i])]) emit_rest(b);
  }
  return key;
}

}  // namespace

TableCacheStats table_cache_stats() {
  TableCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.hits, c.misses, c.map.size()};
}

void clear_table_cache() {
  TableCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.map.clear();
  c.grammars.clear();
}

std::shared_ptr<const CompiledGrammar> compile_gbnf(std::string_view gbnf,
                                                    std::shared_ptr<const TokenizerInfo> vocab,
                                                    std::string_view root, double timeout_s) {
  if (!vocab) throw GrammarError("grammar: no vocabulary to compile against");
  const auto start = std::chrono::steady_clock::now();
  auto check_time = [&] {
    if (timeout_s <= 0) return;
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (took > timeout_s)
      throw GrammarError(
          fmt::format("the constraint did not compile within the server's limit "
                      "of {} s (--grammar-compile-timeout); give a smaller "
                      "schema, grammar or regex",
                      timeout_s));
  };
  Grammar g = parse_gbnf(gbnf, root);
  auto out = std::make_shared<CompiledGrammar>();
  out->vocab = vocab;
  out->automaton = build_automaton(g);
  check_time();
  const Automaton& a = out->automaton;
  const TokenizerInfo::Impl& v = vocab->impl();
  TableCache& c = cache();
  std::string grammar_key;
  grammar_key.append(reinterpret_cast<const char*>(&v.serial), sizeof v.serial);
  grammar_key.append(root);
  grammar_key.push_back('\0');
  grammar_key.append(gbnf);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.grammars.find(grammar_key);
    if (it != c.grammars.end() && it->second->size() == a.elems.size()) {
      ++c.hits;
      out->tables = *it->second;
      return out;
    }
  }
  out->tables.resize(a.elems.size());
  std::vector<std::string> enc(a.elems.size());
  for (size_t p = 0; p < a.elems.size(); ++p) {
    if (a.elems[p].kind == Automaton::kBytes) append_ranges(enc[p], a.elems[p].bytes);
  }
  std::unique_ptr<Classifier> classifier;
  std::unordered_map<std::string, std::shared_ptr<const TokenTable>> local;
  for (size_t p = 0; p < a.elems.size(); ++p) {
    if (a.elems[p].kind != Automaton::kBytes) continue;
    const auto pos = static_cast<int32_t>(p);
    const Context ctx = context_of(a, pos);
    std::string key = position_key(a, pos, ctx, v.serial, enc);
    auto lit = local.find(key);
    if (lit != local.end()) {
      out->tables[p] = lit->second;
      continue;
    }
    std::shared_ptr<const TokenTable> table;
    {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.map.find(key);
      if (it != c.map.end()) {
        table = it->second;
        ++c.hits;
      } else {
        ++c.misses;
      }
    }
    if (!table) {
      check_time();
      if (!classifier) classifier = std::make_unique<Classifier>(a, v);
      table = classifier->classify(pos, ctx);
      std::lock_guard<std::mutex> lock(c.mu);
      if (c.map.size() >= kMaxCacheEntries) c.map.clear();
      c.map.emplace(key, table);
    }
    out->tables[p] = table;
    local.emplace(std::move(key), std::move(table));
  }
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.grammars.size() >= kMaxGrammarEntries) c.grammars.clear();
  c.grammars.emplace(std::move(grammar_key), std::make_shared<const Tables>(out->tables));
  return out;
}

}  // namespace inferd::grammar
