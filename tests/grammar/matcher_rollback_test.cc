// Tests of GrammarMatcher::rollback (speculative decoding undoes the draft tokens the target
// rejected): along random walks over fixed, random and JSON Schema grammars on random
// vocabularies, a matcher that accepted k tokens and rolled back j gives the masks, termination
// and accept/reject decisions of a fresh matcher fed the first k - j tokens; the history is
// bounded (rolling back more than is kept, or than was accepted, is an error that changes
// nothing); a rollback across a compaction of the stack pool restores the state exactly.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/compiled_grammar.h"
#include "grammar/grammar.h"
#include "grammar/grammar_ir.h"
#include "grammar/grammar_test_util.h"
#include "grammar/json_schema.h"

namespace inferd::grammar {
namespace {

using testing::bit;
using testing::byte_vocab;
using testing::kArith;
using testing::kJsonish;
using testing::random_grammar;
using testing::random_vocab;

// What a caller can observe of a matcher.
struct View {
  std::vector<uint32_t> mask;
  bool can_terminate = false;
  bool terminated = false;
  bool operator==(const View&) const = default;
};

View view_of(GrammarMatcher& m, int32_t vocab_size) {
  View v;
  v.mask.resize(static_cast<size_t>(bitmask_words(vocab_size)));
  m.fill_next_token_bitmask(v.mask);
  v.can_terminate = m.can_terminate();
  v.terminated = m.is_terminated();
  return v;
}

std::string describe(const std::vector<int32_t>& tokens) {
  std::string s;
  for (int32_t t : tokens) {
    s += ' ';
    s += std::to_string(t);
  }
  return s;
}

// A matcher fed `tokens` from the start.
GrammarMatcher replay(const std::shared_ptr<const CompiledGrammar>& g,
                      const std::vector<int32_t>& tokens) {
  GrammarMatcher m(g);
  for (int32_t t : tokens) {
    if (!m.accept_token(t)) ADD_FAILURE() << "replay rejects token " << t;
  }
  return m;
}

// A random walk of `steps` operations on a matcher keeping `max_rollback` steps: accept a token
// (mostly an allowed one, sometimes any id, the stop id when allowed now and then) or roll back
// (always after a stop id) a few steps or everything kept. After every operation the matcher's view
// equals that of a fresh matcher fed the tokens still accepted, and each accept decision equals the
// fresh matcher's.
void check_rollback_walk(const std::shared_ptr<const CompiledGrammar>& g, uint32_t seed,
                         int32_t max_rollback, int steps) {
  std::mt19937 rng(seed);
  const int32_t n = g->vocab->vocab_size();
  const std::vector<int32_t>& stops = g->vocab->stop_ids();
  GrammarMatcher m(g, max_rollback);
  std::vector<int32_t> accepted;  // the tokens the matcher's state is made of
  int32_t kept = 0;               // steps rollback() can undo now
  for (int step = 0; step < steps; ++step) {
    const View before = view_of(m, n);
    if (kept > 0 && (before.terminated || rng() % 5 == 0)) {
      // Mostly a few tokens (a speculative step's rejected drafts), sometimes all that is kept.
      const auto j = rng() % 4 == 0 ? kept : 1 + static_cast<int32_t>(rng() % std::min(kept, 3));
      m.rollback(j);
      accepted.resize(accepted.size() - static_cast<size_t>(j));
      kept -= j;
    } else if (rng() % 8 == 0) {
      // Too far: an error, and the state is unchanged.
      ASSERT_THROW(m.rollback(kept + 1), InternalError);
      ASSERT_EQ(view_of(m, n), before) << "after" << describe(accepted);
      continue;
    } else {
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < n; ++id) {
        if (bit(before.mask, id)) allowed.push_back(id);
      }
      int32_t id;
      if (!allowed.empty() && rng() % 5 != 0) {
        id = allowed[rng() % allowed.size()];
      } else {
        id = static_cast<int32_t>(rng() % static_cast<uint32_t>(n));
      }
      if (before.can_terminate && !before.terminated && rng() % 6 == 0) id = stops.at(0);
      GrammarMatcher fresh = replay(g, accepted);
      const bool ok = m.accept_token(id);
      ASSERT_EQ(ok, fresh.accept_token(id)) << "token " << id << " after" << describe(accepted);
      // (After termination the mask still shows the stop ids, which accept nothing more.)
      if (!before.terminated) {
        ASSERT_EQ(ok, bit(before.mask, id)) << "token " << id << " after" << describe(accepted);
      }
      if (ok) {
        accepted.push_back(id);
        kept = std::min(kept + 1, max_rollback);
      }
    }
    GrammarMatcher fresh = replay(g, accepted);
    ASSERT_EQ(view_of(m, n), view_of(fresh, n)) << "after" << describe(accepted);
    // Highly ambiguous random grammars multiply stacks at every byte: stop the walk there.
    if (m.stack_count() > 64) return;
  }
}

std::shared_ptr<const CompiledGrammar> compile_on_random_vocab(const std::string& gbnf,
                                                               const std::string& alphabet,
                                                               uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> bytes = random_vocab(alphabet, rng);
  const auto stop = static_cast<int32_t>(bytes.size() - 1);
  auto vocab = std::make_shared<const TokenizerInfo>(bytes, std::vector<int32_t>{stop});
  return compile_gbnf(gbnf, vocab);
}

TEST(MatcherRollback, FreshMatcherEquivalenceOnFixedGrammars) {
  const std::string json_alphabet = "{}[],:\" 0123456789-.eEtrufalsn\\";
  for (int32_t keep : {1, 4, 16}) {
    const auto k = static_cast<uint32_t>(keep);
    check_rollback_walk(compile_on_random_vocab(kJsonish, json_alphabet, 1 + k), 10 + k, keep, 200);
    check_rollback_walk(compile_on_random_vocab(kArith, "0123456789+-*/() ", 2 + k), 20 + k, keep,
                        200);
    check_rollback_walk(
        compile_on_random_vocab(R"(root ::= "ab" "c"? | "a" [a-c]{0,5})", "abc", 3 + k), 30 + k,
        keep, 120);
    if (HasFatalFailure()) return;
  }
  // With context tables for every top (the mask path that looks at the frames below the tops).
  const int32_t saved = context_table_threshold();
  set_context_table_threshold(0);
  check_rollback_walk(compile_on_random_vocab(kJsonish, json_alphabet, 5), 40, 16, 200);
  set_context_table_threshold(saved);
}

TEST(MatcherRollback, FreshMatcherEquivalenceOnRandomGrammars) {
  std::mt19937 rng(777);
  int checked = 0;
  for (int i = 0; i < 300 && checked < 40; ++i) {
    const std::string g = random_grammar(rng);
    try {
      parse_gbnf(g);
    } catch (const GrammarError&) {
      continue;
    }
    const auto seed = static_cast<uint32_t>(i);
    try {
      check_rollback_walk(compile_on_random_vocab(g, "abc", 1000 + seed), 2000 + seed, 1 + i % 6,
                          80);
    } catch (const GrammarError& e) {
      // Too ambiguous to follow (more stacks than the matcher allows): the matcher refuses it.
      ASSERT_NE(std::string(e.what()).find("too ambiguous"), std::string::npos) << e.what();
      continue;
    }
    if (HasFatalFailure()) {
      ADD_FAILURE() << "grammar:\n" << g;
      return;
    }
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(MatcherRollback, FreshMatcherEquivalenceOnCorpusSchemas) {
  const auto path = std::filesystem::path(INFERD_SOURCE_DIR) / "tests/data/structured/schemas.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  const auto corpus = nlohmann::ordered_json::parse(in);
  std::string printable;  // every printable ASCII character is a token: masks are rarely empty
  for (char c = ' '; c <= '~'; ++c) printable += c;
  int walked = 0;
  for (size_t idx = 0; idx < corpus.size(); idx += 7) {
    const auto& entry = corpus[idx];
    JsonSchemaOptions o;
    o.strict = entry.value("strict", false);
    const std::string gbnf = json_schema_to_gbnf(entry.at("schema"), o);
    const auto seed = static_cast<uint32_t>(idx);
    check_rollback_walk(compile_on_random_vocab(gbnf, printable, 3000 + seed), 4000 + seed, 16,
                        150);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "schema " << entry.at("name").get<std::string>();
      return;
    }
    ++walked;
  }
  EXPECT_GE(walked, 15);
}

TEST(MatcherRollback, TerminationIsUndone) {
  auto vocab = byte_vocab({"ab"});
  const int32_t stop = vocab->vocab_size() - 1;
  auto g = compile_gbnf(R"(root ::= "ab" "c"?)", vocab);
  GrammarMatcher m(g, 16);
  ASSERT_TRUE(m.accept_token(256));
  const View open = view_of(m, vocab->vocab_size());
  ASSERT_TRUE(m.accept_token(stop));
  ASSERT_TRUE(m.is_terminated());
  m.rollback(1);
  EXPECT_FALSE(m.is_terminated());
  EXPECT_EQ(view_of(m, vocab->vocab_size()), open);
  EXPECT_TRUE(m.accept_token('c'));
  EXPECT_TRUE(m.accept_token(stop));
  m.rollback(3);  // stop, "c" and "ab": back at the start
  GrammarMatcher fresh(g);
  EXPECT_EQ(view_of(m, vocab->vocab_size()), view_of(fresh, vocab->vocab_size()));
  EXPECT_FALSE(m.accept_token('b'));
  EXPECT_TRUE(m.accept_token('a'));
}

TEST(MatcherRollback, BoundsAndErrors) {
  auto vocab = byte_vocab();
  auto g = compile_gbnf(R"(root ::= [a-z]*)", vocab);
  {
    GrammarMatcher m(g, 3);
    EXPECT_THROW(m.rollback(1), InternalError);  // nothing accepted yet
    m.rollback(0);
    for (char c : std::string("abcde")) ASSERT_TRUE(m.accept_token(c));
    EXPECT_FALSE(m.accept_token('A'));           // a rejected token is no step
    EXPECT_THROW(m.rollback(4), InternalError);  // only the last 3 are kept
    EXPECT_THROW(m.rollback(-1), InternalError);
    m.rollback(2);
    EXPECT_THROW(m.rollback(2), InternalError);  // one of the 3 is left
    m.rollback(1);
    GrammarMatcher fresh(g);
    ASSERT_TRUE(fresh.accept_bytes("ab"));
    EXPECT_EQ(view_of(m, vocab->vocab_size()), view_of(fresh, vocab->vocab_size()));
    // accept_bytes calls are steps too.
    ASSERT_TRUE(m.accept_bytes("xyz"));
    ASSERT_TRUE(m.accept_bytes("q"));
    m.rollback(2);
    EXPECT_EQ(view_of(m, vocab->vocab_size()), view_of(fresh, vocab->vocab_size()));
  }
  {
    GrammarMatcher m(g, 0);
    ASSERT_TRUE(m.accept_token('a'));
    EXPECT_THROW(m.rollback(1), InternalError);
  }
  std::string message;
  try {
    GrammarMatcher m(g, 2);
    m.rollback(5);
  } catch (const InternalError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("cannot roll back 5 tokens"), std::string::npos) << message;
  EXPECT_THROW(GrammarMatcher(g, -1), InternalError);
}

TEST(MatcherRollback, RollbackAcrossStackPoolCompaction) {
  // 120000 open brackets make the matcher compact its node pool on the way (see
  // GrammarMatcher.VeryDeepNestingCompactsTheStacks); the kept states' stacks are renumbered with
  // it. After every 1000 brackets the walk rolls back 3 steps and redoes them, so some rollback
  // crosses each compaction; at the end the state equals a fresh matcher's.
  auto vocab = byte_vocab({"((", "))"});
  auto g = compile_gbnf("root ::= p\np ::= \"(\" p* \")\"", vocab);
  GrammarMatcher m(g, 16);
  const std::string chunk(1000, '(');
  for (int i = 0; i < 120; ++i) {
    ASSERT_TRUE(m.accept_bytes(chunk));
    if (i >= 3) {
      m.rollback(3);
      for (int k = 0; k < 3; ++k) ASSERT_TRUE(m.accept_bytes(chunk));
    }
  }
  GrammarMatcher fresh(g);
  for (int i = 0; i < 120; ++i) ASSERT_TRUE(fresh.accept_bytes(chunk));
  EXPECT_EQ(view_of(m, vocab->vocab_size()), view_of(fresh, vocab->vocab_size()));
  m.rollback(16);
  GrammarMatcher shorter(g);
  for (int i = 0; i < 104; ++i) ASSERT_TRUE(shorter.accept_bytes(chunk));
  EXPECT_EQ(view_of(m, vocab->vocab_size()), view_of(shorter, vocab->vocab_size()));
  ASSERT_TRUE(m.accept_bytes(std::string(104000, ')')));
  EXPECT_TRUE(m.can_terminate());
}

}  // namespace
}  // namespace inferd::grammar
