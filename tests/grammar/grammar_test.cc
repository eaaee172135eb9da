// Tests of the grammar engine core (src/grammar): the GBNF parser and its errors, the
// byte-level matcher, the next-token mask against a brute-force Earley recognizer on small
// vocabularies (the issue's property test), the table cache and Tokenizer::token_bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "engine/grammar_vocab.h"
#include "grammar/compiled_grammar.h"
#include "grammar/grammar.h"
#include "grammar/grammar_ir.h"
#include "grammar/grammar_test_util.h"
#include "grammar/tokenizer_info.h"
#include "tokenizer/tokenizer.h"

namespace inferd::grammar {
namespace {

using testing::bit;
using testing::byte_vocab;
using testing::kArith;
using testing::kJsonish;
using testing::random_grammar;
using testing::random_vocab;

// ---- helpers -----------------------------------------------------------------------------------

bool matches(const std::string& gbnf, const std::string& text) {
  static auto vocab = byte_vocab();
  GrammarMatcher m(compile_gbnf(gbnf, vocab));
  return m.accept_bytes(text) && m.can_terminate();
}

// Is `text` a prefix of some sentence (the matcher's view)?
bool prefix_ok(const std::string& gbnf, const std::string& text) {
  static auto vocab = byte_vocab();
  GrammarMatcher m(compile_gbnf(gbnf, vocab));
  return m.accept_bytes(text);
}

std::string error_of(const std::string& gbnf) {
  try {
    parse_gbnf(gbnf);
  } catch (const GrammarError& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- parser -------------------------------------------------------------------------------------

TEST(GbnfParser, LiteralsAndEscapes) {
  EXPECT_TRUE(matches(R"(root ::= "a\n\r\t\\\"\'\[\]")", "a\n\r\t\\\"'[]"));
  EXPECT_TRUE(matches(R"(root ::= "\x41\u00e9\U0001F600")", "A\xC3\xA9\xF0\x9F\x98\x80"));
  EXPECT_TRUE(matches("root ::= \"\xC3\xA9t\xC3\xA9\"", "\xC3\xA9t\xC3\xA9"));
  EXPECT_FALSE(matches(R"(root ::= "ab")", "a"));
  EXPECT_FALSE(matches(R"(root ::= "ab")", "abc"));
  EXPECT_TRUE(matches(R"(root ::= "")", ""));
}

// Found by fuzz_gbnf (issue 32): a repetition of a repetition of one thing (x*+, (x+)*, (x?){2,3})
// is one repetition of it; nested, each level doubled the ways to parse the text ("[^]*" with 120
// '+' did not finish compiling).
TEST(GbnfParser, RepetitionsOfRepetitionsAreOneRepetition) {
  const std::string deep = "root ::= [a-z]*" + std::string(40, '+') + " \"x\"";
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(matches(deep, "abcx"));
  EXPECT_TRUE(matches(deep, "x"));
  EXPECT_FALSE(matches(deep, "ab"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  for (const char* g : {R"(root ::= (("ab"+)*)+)", R"(root ::= ("ab"?)*)", R"(root ::= "ab"+?)",
                        R"(root ::= ((("ab")*)?)+)"}) {
    EXPECT_TRUE(matches(g, "")) << g;
    EXPECT_TRUE(matches(g, "abab")) << g;
    EXPECT_FALSE(matches(g, "aba")) << g;
  }
  const char* two_or_more = R"(root ::= ("ab"+){2,3})";
  EXPECT_FALSE(matches(two_or_more, "ab"));
  EXPECT_TRUE(matches(two_or_more, "abab"));
  EXPECT_TRUE(matches(two_or_more, "abababababab"));
  const char* at_most_three = R"(root ::= ("ab"?){2,3})";
  EXPECT_TRUE(matches(at_most_three, ""));
  EXPECT_TRUE(matches(at_most_three, "ababab"));
  EXPECT_FALSE(matches(at_most_three, "abababab"));
  const char* pairs = R"(root ::= ("ab"{2})*)";  // not one repetition: kept as it is
  EXPECT_TRUE(matches(pairs, "abab"));
  EXPECT_FALSE(matches(pairs, "ab"));
}

// Many copies of something that can match the empty text (fuzz_gbnf: item{512,} with an empty
// alternative in item made one mask over Llama 3's vocabulary take 3.7 s): refused past 16 copies
// with the position, whether the rule is defined before or after; 16 copies and non-empty
// repetitions of any count still work.
TEST(GbnfParser, ManyCopiesOfANullableRuleAreRefused) {
  for (const char* g :
       {"root ::= item{17,} \".\"\nitem ::= [a-z] | \"\"", "item ::= [a-z]?\nroot ::= item{0,40}",
        "root ::= (\"a\" | \"b\" |){512}", "root ::= (x y){20,}\nx ::= [a-z]*\ny ::= \"q\"?"}) {
    const std::string e = error_of(g);
    EXPECT_NE(e.find("too ambiguous"), std::string::npos) << g << ": " << e;
    EXPECT_NE(e.find("copies of something that can match the empty text"), std::string::npos) << e;
    EXPECT_NE(e.find("line "), std::string::npos) << e;
  }
  EXPECT_TRUE(matches("root ::= item{16,} \".\"\nitem ::= [a-z] | \"\"", "."));
  EXPECT_TRUE(matches("root ::= item{16,} \".\"\nitem ::= [a-z] | \"\"", "abc."));
  EXPECT_TRUE(
      matches("root ::= item{512,} \".\"\nitem ::= [a-z] | \"xy\"", std::string(600, 'a') + "."));
  EXPECT_FALSE(matches("root ::= item{512,} \".\"\nitem ::= [a-z] | \"xy\"", "abc."));
  EXPECT_TRUE(matches("root ::= (\"a\" \"b\"?){40}", std::string(40, 'a')));
}

TEST(GbnfParser, ClassesDotAndNegation) {
  const std::string g = R"(root ::= [a-c0-9_] [^"\\] .)";
  EXPECT_TRUE(matches(g, "a!x"));
  EXPECT_TRUE(matches(g, "_z\xE2\x82\xAC"));
  EXPECT_TRUE(matches(g, "9\xC3\xA9\xF0\x9F\x98\x80"));
  EXPECT_FALSE(matches(g, "d!x"));
  EXPECT_FALSE(matches(g, "a\"x"));
  EXPECT_FALSE(matches(g, "a\\x"));
  EXPECT_FALSE(matches(g, "a!"));
  // Ranges in code points across UTF-8 lengths.
  const std::string wide = R"(root ::= [\u00e0-\u20ac]+)";
  EXPECT_TRUE(matches(wide, "\xC3\xA0\xE2\x82\xAC\xD0\x96"));
  EXPECT_FALSE(matches(wide, "\xE2\x82\xAD"));  // U+20AD
  EXPECT_FALSE(matches(wide, "\xC3\x9F"));      // U+00DF
  // Invalid UTF-8 is never a character.
  EXPECT_FALSE(prefix_ok("root ::= .*", "\xC3\x28"));
  EXPECT_FALSE(prefix_ok("root ::= .*", "\xED\xA0\x80"));  // a surrogate
  EXPECT_TRUE(matches(R"(root ::= [\]\[-] [\x00-\x1f])", "]\x01"));
  EXPECT_TRUE(matches(R"(root ::= [\]\[-] [\x00-\x1f])", "-\x1f"));
}

TEST(GbnfParser, GroupsAlternationRepetitionAndComments) {
  const std::string g = R"(
    # a comment
    root ::= item ("," item)*   # trailing comment
    item ::= "x" | "y" ( "z" | )
       | "w"+
    )";
  EXPECT_TRUE(matches(g, "x"));
  EXPECT_TRUE(matches(g, "x,yz,y,www"));
  EXPECT_FALSE(matches(g, "x,"));
  EXPECT_FALSE(matches(g, "yzz"));
  EXPECT_FALSE(matches(g, ""));
  EXPECT_TRUE(matches(R"(root ::= "a"? "b")", "b"));
  EXPECT_TRUE(matches(R"(root ::= "a"? "b")", "ab"));
  EXPECT_FALSE(matches(R"(root ::= "a"? "b")", "aab"));
}

TEST(GbnfParser, BoundedRepetitionIsExact) {
  const std::string g = R"(root ::= "a"{2,4})";
  EXPECT_FALSE(matches(g, "a"));
  EXPECT_TRUE(matches(g, "aa"));
  EXPECT_TRUE(matches(g, "aaa"));
  EXPECT_TRUE(matches(g, "aaaa"));
  EXPECT_FALSE(prefix_ok(g, "aaaaa"));
  EXPECT_TRUE(matches(R"(root ::= "ab"{3})", "ababab"));
  EXPECT_FALSE(matches(R"(root ::= "ab"{3})", "abab"));
  EXPECT_FALSE(prefix_ok(R"(root ::= "ab"{3})", "abababa"));
  EXPECT_TRUE(matches(R"(root ::= [0-9]{2,})", "12345"));
  EXPECT_FALSE(matches(R"(root ::= [0-9]{2,})", "1"));
  EXPECT_TRUE(matches(R"(root ::= "x"{0,1000} "y")", std::string(1000, 'x') + "y"));
  EXPECT_FALSE(prefix_ok(R"(root ::= "x"{0,1000} "y")", std::string(1001, 'x')));
  EXPECT_TRUE(matches(R"(root ::= "x"{ 1 , 2 })", "xx"));
}

TEST(GbnfParser, RulesSpanLinesAndStartAtNameDefinition) {
  const std::string g = "root ::= a\n  b\nb ::= \"2\"\na ::=\n  \"1\"\n";
  EXPECT_TRUE(matches(g, "12"));
  EXPECT_TRUE(matches("root ::= my-rule_2\nmy-rule_2 ::= \"k\"", "k"));
}

TEST(GbnfParser, Errors) {
  EXPECT_NE(error_of("root ::= \"abc").find("line 1, column 10: unterminated string"),
            std::string::npos)
      << error_of("root ::= \"abc");
  EXPECT_NE(error_of("root ::= [abc").find("unterminated character class"), std::string::npos);
  EXPECT_NE(error_of("root ::= (\"a\"").find("unclosed '('"), std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\")").find("unexpected ')'"), std::string::npos);
  EXPECT_NE(error_of("root ::= foo").find("undefined rule 'foo'"), std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\"\nroot ::= \"b\"")
                .find("line 2, column 1: rule 'root' is "
                      "defined twice"),
            std::string::npos)
      << error_of("root ::= \"a\"\nroot ::= \"b\"");
  EXPECT_NE(error_of("start ::= \"a\"").find("no root rule 'root'"), std::string::npos);
  EXPECT_NE(error_of("root ::= root \"a\" | \"b\"").find("left-recursive"), std::string::npos);
  const std::string lr = error_of("root ::= expr\nexpr ::= term \"+\" expr | \"x\"\nterm ::= expr");
  EXPECT_NE(lr.find("left-recursive"), std::string::npos) << lr;
  // Through a nullable prefix.
  EXPECT_NE(error_of("root ::= \"a\"? root \"b\" | \"c\"").find("left-recursive"),
            std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\"{3,2}").find("maximum is smaller than the minimum"),
            std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\"{10001}").find("too large"), std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\" root").find("can match nothing"), std::string::npos);
  EXPECT_NE(error_of("root ::= \"\\q\"").find("unknown escape"), std::string::npos);
  EXPECT_NE(error_of("root ::= \"\\xZZ\"").find("hex digits"), std::string::npos);
  EXPECT_NE(error_of("root ::= [z-a]").find("reversed"), std::string::npos);
  EXPECT_NE(error_of("root ::= [^\\x00-\\U0010FFFF]").find("matches no character"),
            std::string::npos);
  EXPECT_NE(error_of("root \"a\"").find("expected '::='"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\" @").find("line 1, column 14: expected a string"),
            std::string::npos)
      << error_of("root ::= \"a\" @");
  EXPECT_NE(error_of("root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')'))
                .find("nested too deeply"),
            std::string::npos);
  // compile_gbnf reports the same errors.
  EXPECT_THROW(compile_gbnf("root ::= nope", byte_vocab()), GrammarError);
  // A compile over its time limit says which limit (and a generous one compiles).
  try {
    compile_gbnf("root ::= \"a\" [0-9]+ \"b\"", byte_vocab(), "root", 1e-12);
    ADD_FAILURE() << "no time limit error";
  } catch (const GrammarError& e) {
    EXPECT_NE(std::string(e.what()).find("--grammar-compile-timeout"), std::string::npos)
        << e.what();
  }
  EXPECT_NE(compile_gbnf("root ::= \"a\" [0-9]+ \"b\"", byte_vocab(), "root", 60), nullptr);
}

TEST(GbnfParser, HarmlessNullableCyclesAreAccepted) {
  // x* over a nullable x is a cycle of tail calls only: accepted, and it works.
  EXPECT_TRUE(matches(R"(root ::= ("a"?)* "b")", "aab"));
  EXPECT_TRUE(matches(R"(root ::= (ws)* "b"
ws ::= [ ]*)",
                      "   b"));
}

// ---- matcher
// -------------------------------------------------------------------------------------

TEST(GrammarMatcher, JsonLike) {
  EXPECT_TRUE(matches(kJsonish, R"({"a": [1, 2.5e3, "x\"y", {"b": null}], "c": true})"));
  EXPECT_TRUE(matches(kJsonish, "{}"));
  EXPECT_TRUE(matches(kJsonish, "{\"\xC3\xA9\": \"\xE2\x82\xAC\"}"));
  EXPECT_FALSE(matches(kJsonish, R"({"a" 1})"));
  EXPECT_FALSE(matches(kJsonish, R"({"a": 01x})"));
  EXPECT_FALSE(matches(kJsonish, R"({"a": [1,]})"));
  EXPECT_FALSE(prefix_ok(kJsonish, "{\"a\": \"\x01"));
  EXPECT_TRUE(prefix_ok(kJsonish, R"({"a": [1, {"b)"));
}

TEST(GrammarMatcher, ArithmeticAndNesting) {
  EXPECT_TRUE(matches(kArith, "1+2*(3-4)/-5"));
  EXPECT_TRUE(matches(kArith, "((((((((((1))))))))))"));
  EXPECT_FALSE(matches(kArith, "((1)"));
  EXPECT_FALSE(prefix_ok(kArith, "(1))"));
  EXPECT_FALSE(prefix_ok(kArith, "1+*"));
  const std::string parens = "root ::= p\np ::= \"(\" p* \")\"";
  EXPECT_TRUE(matches(parens, "(()(()()))"));
  EXPECT_FALSE(matches(parens, "(()"));
  EXPECT_FALSE(prefix_ok(parens, "())"));
  std::string deep(500, '(');
  deep += std::string(500, ')');
  EXPECT_TRUE(matches(parens, deep));
}

TEST(GrammarMatcher, VeryDeepNestingCompactsTheStacks) {
  // 100000 open brackets make several hundred thousand stack nodes: the pool is compacted and
  // the caches rebuilt on the way, and the matcher still follows exactly.
  auto vocab = byte_vocab({"((", "))"});
  GrammarMatcher m(compile_gbnf("root ::= p\np ::= \"(\" p* \")\"", vocab));
  const std::string chunk(1000, '(');
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(m.accept_bytes(chunk));
  std::vector<uint32_t> w(static_cast<size_t>(bitmask_words(vocab->vocab_size())));
  for (int i = 0; i < 50000; ++i) {
    if (i % 5000 == 0) {
      m.fill_next_token_bitmask(w);
      ASSERT_TRUE(bit(w, '(') && bit(w, ')') && bit(w, 256) && bit(w, 257));
      ASSERT_FALSE(bit(w, vocab->vocab_size() - 1));
    }
    ASSERT_TRUE(m.accept_token(257));
  }
  EXPECT_TRUE(m.can_terminate());
  EXPECT_FALSE(m.accept_token(257));
  EXPECT_LE(m.stack_count(), 1u);
}

TEST(GrammarMatcher, NullableRules) {
  const std::string g = R"(
root ::= a b c "!"
a ::= "x"* | "y"
b ::= ""
c ::= a? "z"?
)";
  EXPECT_TRUE(matches(g, "!"));
  EXPECT_TRUE(matches(g, "xx!"));
  EXPECT_TRUE(matches(g, "yyz!"));
  EXPECT_TRUE(matches(g, "xz!"));
  EXPECT_FALSE(matches(g, "yyy!"));
  EXPECT_TRUE(matches("root ::= \"a\"?", ""));
  EXPECT_TRUE(matches("root ::= \"a\"?", "a"));
}

TEST(GrammarMatcher, FailedAcceptKeepsState) {
  auto vocab = byte_vocab({"ab", "abc"});
  GrammarMatcher m(compile_gbnf(R"(root ::= "ab" "c"+)", vocab));
  EXPECT_FALSE(m.accept_bytes("ax"));
  EXPECT_FALSE(m.accept_bytes("abx"));
  EXPECT_TRUE(m.accept_bytes("a"));
  EXPECT_FALSE(m.can_terminate());
  EXPECT_FALSE(m.accept_token(256));  // "ab" does not follow "a"
  EXPECT_TRUE(m.accept_token('b'));
  EXPECT_TRUE(m.accept_token('c'));
  EXPECT_TRUE(m.can_terminate());
}

TEST(GrammarMatcher, AmbiguousGrammarsFailInsteadOfGrowingWithoutBound) {
  // After k "a"s every sequence of k closers from {b, c} is still possible: 2^k stacks. Past
  // StackMachine::kMaxStacks the matcher throws a GrammarError naming the problem (the engine
  // fails that request) instead of slowing every mask down.
  const std::string g = "root ::= r\nr ::= \"a\" r \"b\" | \"a\" r \"c\" | \"\"\n";
  EXPECT_TRUE(matches(g, "aaacbb"));
  GrammarMatcher m(compile_gbnf(g, byte_vocab()));
  std::string error;
  int accepted = 0;
  try {
    for (; accepted < 40; ++accepted) ASSERT_TRUE(m.accept_bytes("a"));
  } catch (const GrammarError& e) {
    error = e.what();
  }
  EXPECT_GE(accepted, 10);
  EXPECT_LT(accepted, 20);
  EXPECT_NE(error.find("too ambiguous"), std::string::npos) << error;
}

TEST(GrammarMatcher, StopIdsAndTermination) {
  auto vocab = byte_vocab({"ab"});
  const int32_t stop = vocab->vocab_size() - 1;
  GrammarMatcher m(compile_gbnf(R"(root ::= "ab" "c"?)", vocab));
  std::vector<uint32_t> w(static_cast<size_t>(bitmask_words(vocab->vocab_size())));
  m.fill_next_token_bitmask(w);
  EXPECT_FALSE(bit(w, stop));
  EXPECT_TRUE(bit(w, 'a'));
  EXPECT_TRUE(bit(w, 256));
  EXPECT_FALSE(bit(w, 'b'));
  EXPECT_FALSE(m.accept_token(stop));
  EXPECT_TRUE(m.accept_token(256));
  EXPECT_TRUE(m.can_terminate());
  m.fill_next_token_bitmask(w);
  EXPECT_TRUE(bit(w, stop));
  EXPECT_TRUE(bit(w, 'c'));
  EXPECT_FALSE(bit(w, 'a'));
  EXPECT_TRUE(m.accept_token(stop));
  EXPECT_TRUE(m.is_terminated());
  EXPECT_FALSE(m.accept_token('c'));
  EXPECT_FALSE(m.accept_bytes("c"));
  m.fill_next_token_bitmask(w);
  for (int32_t id = 0; id < vocab->vocab_size(); ++id) EXPECT_EQ(bit(w, id), id == stop) << id;
}

TEST(GrammarMatcher, MultibyteCharactersSplitAcrossTokens) {
  // Tokens that cut "é" (C3 A9) and "€" (E2 82 AC).
  auto vocab = byte_vocab({"\xC3", "\xA9", "\xE2\x82", "\xAC\"", "\"\xE2", "\x82\xAC"});
  auto g = compile_gbnf(R"(root ::= "\"" [^"a-z]* "\"")", vocab);
  GrammarMatcher m(g);
  std::vector<uint32_t> w(static_cast<size_t>(bitmask_words(vocab->vocab_size())));
  EXPECT_TRUE(m.accept_token(256 + 4));  // "\xE2
  m.fill_next_token_bitmask(w);
  EXPECT_TRUE(bit(w, 256 + 5));   // \x82\xAC completes €
  EXPECT_FALSE(bit(w, 256 + 2));  // \xE2\x82 cannot follow \xE2
  EXPECT_FALSE(bit(w, 256 + 0));
  EXPECT_TRUE(bit(w, 0x82));
  EXPECT_FALSE(bit(w, 'a'));
  EXPECT_TRUE(m.accept_token(0x82));
  m.fill_next_token_bitmask(w);
  EXPECT_TRUE(bit(w, 256 + 3));  // \xAC"
  EXPECT_TRUE(bit(w, 0xAC));
  EXPECT_TRUE(bit(w, 0xA9));  // U+20A9 is in the class too
  EXPECT_FALSE(bit(w, 'a'));
  EXPECT_FALSE(bit(w, '"'));
  EXPECT_TRUE(m.accept_token(256 + 3));
  EXPECT_TRUE(m.can_terminate());
}

// ---- property test: mask == brute force ------------------------------------------------------

// A plain Earley recognizer over the normalised grammar, written independently of the automaton:
// a byte string is a viable prefix when the chart after it is not empty (every rule can match
// something, so any live item extends to a sentence).
class Earley {
 public:
  explicit Earley(const Grammar& g) : g_(g), nullable_(g.rules.size(), false) {
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < g.rules.size(); ++r) {
        if (nullable_[r]) continue;
        for (const auto& alt : g.rules[r].alts) {
          bool all = true;
          for (const auto& e : alt) {
            all = all && e.kind == GElement::kRule && nullable_[static_cast<size_t>(e.rule)];
          }
          if (all) nullable_[r] = changed = true;
        }
      }
    }
    std::vector<Item> start;
    for (size_t a = 0; a < g.rules[static_cast<size_t>(g.root)].alts.size(); ++a) {
      start.push_back({g.root, static_cast<int32_t>(a), 0, 0});
    }
    chart_.push_back(close(std::move(start), 0));
  }
  bool push(uint8_t b) {
    std::vector<Item> scanned;
    for (const Item& it : chart_.back()) {
      const auto& alt = alt_of(it);
      if (static_cast<size_t>(it.dot) < alt.size() &&
          alt[static_cast<size_t>(it.dot)].kind == GElement::kBytes &&
          alt[static_cast<size_t>(it.dot)].bytes.test(b)) {
        scanned.push_back({it.rule, it.alt, it.dot + 1, it.origin});
      }
    }
    chart_.push_back(close(std::move(scanned), static_cast<int32_t>(chart_.size())));
    return !chart_.back().empty();
  }
  void pop() { chart_.pop_back(); }
  bool viable() const { return !chart_.back().empty(); }
  bool complete() const {
    for (const Item& it : chart_.back()) {
      if (it.rule == g_.root && it.origin == 0 &&
          static_cast<size_t>(it.dot) == alt_of(it).size()) {
        return true;
      }
    }
    return false;
  }
  bool viable_after(const std::string& s) {
    size_t pushed = 0;
    bool ok = true;
    for (char c : s) {
      ++pushed;
      if (!push(static_cast<uint8_t>(c))) {
        ok = false;
        break;
      }
    }
    for (size_t k = 0; k < pushed; ++k) pop();
    return ok;
  }

 private:
  struct Item {
    int32_t rule, alt, dot, origin;
    bool operator<(const Item& o) const {
      return std::tie(rule, alt, dot, origin) < std::tie(o.rule, o.alt, o.dot, o.origin);
    }
  };
  const std::vector<GElement>& alt_of(const Item& it) const {
    return g_.rules[static_cast<size_t>(it.rule)].alts[static_cast<size_t>(it.alt)];
  }
  std::vector<Item> close(std::vector<Item> items, int32_t k) {
    std::set<Item> seen(items.begin(), items.end());
    std::vector<Item> list(seen.begin(), seen.end());
    auto add = [&](Item it) {
      if (seen.insert(it).second) list.push_back(it);
    };
    for (size_t i = 0; i < list.size(); ++i) {
      const Item it = list[i];
      const auto& alt = alt_of(it);
      if (static_cast<size_t>(it.dot) == alt.size()) {
        const std::vector<Item>& from =
            it.origin == k ? list : chart_[static_cast<size_t>(it.origin)];
        for (size_t j = 0; j < from.size(); ++j) {
          const Item p = from[j];
          const auto& palt = alt_of(p);
          if (static_cast<size_t>(p.dot) < palt.size() &&
              palt[static_cast<size_t>(p.dot)].kind == GElement::kRule &&
              palt[static_cast<size_t>(p.dot)].rule == it.rule) {
            add({p.rule, p.alt, p.dot + 1, p.origin});
          }
        }
        continue;
      }
      const GElement& e = alt[static_cast<size_t>(it.dot)];
      if (e.kind != GElement::kRule) continue;
      for (size_t a = 0; a < g_.rules[static_cast<size_t>(e.rule)].alts.size(); ++a) {
        add({e.rule, static_cast<int32_t>(a), 0, k});
      }
      if (nullable_[static_cast<size_t>(e.rule)]) add({it.rule, it.alt, it.dot + 1, it.origin});
    }
    return list;
  }
  const Grammar& g_;
  std::vector<bool> nullable_;
  std::vector<std::vector<Item>> chart_;
};

// Walks random valid paths; at every step compares every token's mask bit with the oracle.
void check_mask_against_oracle(const std::string& gbnf, const std::string& alphabet, uint32_t seed,
                               int paths = 4, int max_steps = 40, const std::string& prefix = "",
                               bool long_tokens = false) {
  std::mt19937 rng(seed);
  std::vector<std::string> bytes = random_vocab(alphabet, rng, long_tokens);
  const auto stop = static_cast<int32_t>(bytes.size() - 1);
  auto vocab = std::make_shared<const TokenizerInfo>(bytes, std::vector<int32_t>{stop});
  auto compiled = compile_gbnf(gbnf, vocab);
  const Grammar g = parse_gbnf(gbnf);
  std::vector<uint32_t> w(static_cast<size_t>(bitmask_words(vocab->vocab_size())));
  for (int path = 0; path < paths; ++path) {
    GrammarMatcher m(compiled);
    Earley e(g);
    std::string so_far = prefix;
    ASSERT_TRUE(m.accept_bytes(prefix));
    for (char c : prefix) ASSERT_TRUE(e.push(static_cast<uint8_t>(c)));
    for (int step = 0; step < max_steps; ++step) {
      m.fill_next_token_bitmask(w);
      ASSERT_EQ(m.can_terminate(), e.complete()) << gbnf << "\nafter: " << so_far;
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < vocab->vocab_size(); ++id) {
        bool expect;
        if (id == stop) {
          expect = e.complete();
        } else {
          expect = !bytes[static_cast<size_t>(id)].empty() &&
                   e.viable_after(bytes[static_cast<size_t>(id)]);
        }
        ASSERT_EQ(bit(w, id), expect) << gbnf << "\nafter: '" << so_far << "' token " << id << " '"
                                      << bytes[static_cast<size_t>(id)] << "'";
        if (expect) allowed.push_back(id);
      }
      // A fresh matcher fed the same output accepts a token exactly when its bit is set
      // (sampled: 16 tokens a step).
      for (int k = 0; k < 16; ++k) {
        const auto id = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab->vocab_size()));
        GrammarMatcher fresh(compiled);
        ASSERT_TRUE(fresh.accept_bytes(so_far));
        ASSERT_EQ(fresh.accept_token(id), bit(w, id))
            << gbnf << "\nafter: '" << so_far << "' token " << id;
      }
      if (allowed.empty()) break;
      // Prefer continuing; stop with small probability when allowed.
      std::vector<int32_t> cont;
      for (int32_t id : allowed) {
        if (id != stop) cont.push_back(id);
      }
      int32_t pick;
      if (cont.empty() || (bit(w, stop) && rng() % 10 == 0)) {
        pick = stop;
      } else {
        pick = cont[rng() % cont.size()];
      }
      ASSERT_TRUE(m.accept_token(pick));
      if (pick == stop) {
        ASSERT_TRUE(m.is_terminated());
        m.fill_next_token_bitmask(w);
        for (int32_t id = 0; id < vocab->vocab_size(); ++id) ASSERT_EQ(bit(w, id), id == stop);
        break;
      }
      for (char c : bytes[static_cast<size_t>(pick)]) ASSERT_TRUE(e.push(static_cast<uint8_t>(c)));
      so_far += bytes[static_cast<size_t>(pick)];
      // Highly ambiguous random grammars multiply stacks at every byte: stop the path there.
      if (m.stack_count() > 64) break;
    }
  }
}

TEST(GrammarProperty, MaskEqualsBruteForceOnFixedGrammars) {
  check_mask_against_oracle(kJsonish, "{}[],:\" 0123456789-.eEtrufalsn\\", 1);
  check_mask_against_oracle(kArith, "0123456789+-*/() ", 2);
  check_mask_against_oracle("root ::= p\np ::= \"(\" p* \")\" | \"[\" p? \"]\"", "()[]", 3);
  check_mask_against_oracle(R"(root ::= "\"" [^"a-c]{0,6} "\"" [x-z]{2,4})", "\"abcxyz", 4);
  check_mask_against_oracle(R"(root ::= a b c "!"
a ::= "x"* | "y"
b ::= ""
c ::= a? "z"?)",
                            "xyz!", 5);
  check_mask_against_oracle(R"(root ::= ("ab" | "a" | "abc")+ ("." [\u00e9\u20ac]+)?)", "abc.", 6);
  check_mask_against_oracle("root ::= . . .", "ab", 7);
}

TEST(GrammarProperty, MaskEqualsBruteForceWithContextTables) {
  // Every top with an uncertain token uses the table computed for its real frames.
  const int32_t saved = context_table_threshold();
  set_context_table_threshold(0);
  check_mask_against_oracle(kJsonish, "{}[],:\" 0123456789-.eEtrufalsn\\", 11);
  check_mask_against_oracle(kArith, "0123456789+-*/() ", 12);
  check_mask_against_oracle(R"(root ::= "\"" [^"a-c]{0,6} "\"" [x-z]{2,4})", "\"abcxyz", 14);
  check_mask_against_oracle(
      R"(root ::= "[" ("\"" [a-c\u00e9]{0,7} "\"" ("," "\"" [a-c]{2,9} "\"")*)? "]")", "[]\",abc",
      15);
  check_mask_against_oracle("root ::= p\np ::= \"(\" p* \")\" | \"[\" p? \"]\"", "()[]", 13);
  // Deeper than the frames a context table looks at.
  const int32_t saved_depth = context_table_depth();
  set_context_table_depth(1);
  check_mask_against_oracle(kJsonish, "{}[],:\" 0123456789-.eEtrufalsn\\", 17);
  check_mask_against_oracle(
      "root ::= p\np ::= \"(\" p* \")\" | \"[\" p? \"]\" | \"<\" [a-c]{0,3} \">\"", "()[]<>abc", 16,
      4, 40, std::string(12, '(') + "[[[(");
  set_context_table_depth(saved_depth);
  set_context_table_threshold(saved);
}

TEST(GrammarProperty, MaskEqualsBruteForceWithLoopClassification) {
  // Context tables classify the tokens whose bytes stay on the states most tokens step along (a
  // string's characters: one looping state, or one state a count in a bounded string) without a
  // walk; with that done for every context table, strings unbounded and bounded, called from
  // several places, with escapes, two-byte characters and FOLLOW bytes, give exact masks.
  const int32_t saved = context_table_threshold();
  const int32_t saved_loop = loop_classify_after();
  const int32_t saved_depth = context_table_depth();
  set_context_table_threshold(0);
  set_loop_classify_after(0);
  const std::string g1 = R"(root ::= "{" kv ("," kv)* "}"
kv ::= str ":" (str | "[" str{0,3} "]")
str ::= "\"" c* "\""
c ::= [^"\\] | "\\" ["\\n])";
  const std::string g2 = R"(root ::= "\"" [a-c\u00e9 ]{0,9} "\"" (" " "\"" [a-c]{2,5} "\"")* ws
ws ::= [ a]*)";
  for (int32_t depth : {1, 8}) {
    set_context_table_depth(depth);
    check_mask_against_oracle(g1, "{}[],:\"\\an \xc3\xa9", 90 + static_cast<uint32_t>(depth), 2,
                              16);
    check_mask_against_oracle(g2, "\" abc\xc3\xa9", 95 + static_cast<uint32_t>(depth), 2, 16, "",
                              true);
  }
  check_mask_against_oracle(kJsonish, "{}[],:\" 0123456789-.eEtrufalsn\\", 99);
  set_context_table_depth(saved_depth);
  set_loop_classify_after(saved_loop);
  set_context_table_threshold(saved);
}

TEST(GrammarProperty, MaskEqualsBruteForceWithContextTablesOnLongRepetitions) {
  // Counts above 64 share one context table per frame position (tokens of 64 bytes or more stay
  // uncertain there): long tokens and long counts, nested, must still give exact masks.
  const int32_t saved = context_table_threshold();
  const int32_t saved_depth = context_table_depth();
  set_context_table_threshold(0);
  const std::string g1 = R"(root ::= "\"" c{0,80} "\"" ("," "\"" c{2,70} "\"")*
c ::= [a-c] | "\\" [ab])";
  const std::string g2 = R"(root ::= "[" ( item ( "," item ){0,24} )? "]"
item ::= "\"" c{1,75} "\""
c ::= [a-c] | "\u00e9")";
  for (int32_t depth : {1, 2, 8}) {
    set_context_table_depth(depth);
    check_mask_against_oracle(g1, "\"\\abc,", 30 + static_cast<uint32_t>(depth), 3, 40, "", true);
    check_mask_against_oracle(g2, "[]\",abc", 40 + static_cast<uint32_t>(depth), 3, 40, "", true);
    check_mask_against_oracle(g2, "[]\",abc", 50 + static_cast<uint32_t>(depth), 2, 20,
                              "[\"" + std::string(69, 'a'), true);
  }
  set_context_table_depth(saved_depth);
  set_context_table_threshold(saved);
}

TEST(GrammarProperty, MaskEqualsBruteForceWithContextTablesOnShortCounts) {
  // A frame h_k of a repetition chain takes the class of tokens of at most k bytes from a higher
  // frame of the chain (the capped one past 17) and walks only the longer ones: counts below the
  // chain's top, elements of several lengths (one or two bytes, a two-byte character), nested
  // chains and a whitespace run, with long tokens.
  const int32_t saved = context_table_threshold();
  const int32_t saved_depth = context_table_depth();
  set_context_table_threshold(0);
  const std::string g1 = R"(root ::= "\"" c{0,12} "\"" ws ("," ws "\"" c{3,9} "\"")*
c ::= [a-c] | "\\" [ab] | "\u00e9"
ws ::= [ \t]{0,20})";
  const std::string g2 = R"(root ::= "[" ( item ( "," item ){0,5} )? "]"
item ::= "<" ( [a-b]{1,3} "." ){0,20} ">")";
  const std::string g3 =
      R"(root ::= "<" ("a" | "ab" | "b" | "\u00e9"){0,12} ">" ("," "<" ("a" | "ab"){2,40} ">")*)";
  for (int32_t depth : {1, 3, 8}) {
    set_context_table_depth(depth);
    check_mask_against_oracle(g1, "\"\\abc, \t\xc3\xa9", 60 + static_cast<uint32_t>(depth), 3, 40,
                              "", true);
    check_mask_against_oracle(g2, "[],<>.ab", 70 + static_cast<uint32_t>(depth), 3, 40, "", true);
    // Elements whose count the bytes do not fix ("ab" is one element or two): counts are walked.
    check_mask_against_oracle(g3, "<>,ab\xc3\xa9", 80 + static_cast<uint32_t>(depth), 3, 40, "",
                              true);
  }
  set_context_table_depth(saved_depth);
  set_context_table_threshold(saved);
}

TEST(GrammarMatcher, UncertainChecksAreSharedBetweenMatchers) {
  // Matchers of one compiled grammar on 4 threads follow random outputs; every mask equals the
  // mask of a matcher of a separately compiled grammar (its own memo), and a second matcher along
  // the same output adds no state to the shared memo.
  std::mt19937 rng(90);
  std::vector<std::string> bytes = random_vocab("{}[],:\" 0123456789-.eEtrufalsn\\", rng, true);
  // Tokens whose fate inside a string depends on the frames below it.
  bytes.insert(bytes.end() - 1, {"\"]", "\"}", "\"]}", "\"}]", "\",", "\"]]"});
  const auto stop = static_cast<int32_t>(bytes.size() - 1);
  auto vocab = std::make_shared<const TokenizerInfo>(bytes, std::vector<int32_t>{stop});
  const int32_t saved = context_table_threshold();
  set_context_table_threshold(1 << 30);  // no context tables: the check sees every stack
  auto shared = compile_gbnf(kJsonish, vocab);
  const size_t words = static_cast<size_t>(bitmask_words(vocab->vocab_size()));
  std::atomic<int> mismatches{0};
  auto follow = [&](uint32_t seed) {
    std::mt19937 r(seed);
    auto own = compile_gbnf(kJsonish, vocab);
    for (int path = 0; path < 8; ++path) {
      GrammarMatcher a(shared), b(own);
      std::vector<uint32_t> wa(words), wb(words);
      for (int step = 0; step < 40; ++step) {
        a.fill_next_token_bitmask(wa);
        b.fill_next_token_bitmask(wb);
        if (wa != wb) ++mismatches;
        std::vector<int32_t> cont;
        for (int32_t id = 0; id < stop; ++id) {
          if (bit(wa, id)) cont.push_back(id);
        }
        if (cont.empty()) break;
        const int32_t pick = cont[r() % cont.size()];
        if (!a.accept_token(pick) || !b.accept_token(pick)) ++mismatches;
      }
    }
  };
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) threads.emplace_back(follow, 100 + t);
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GT(shared->checked_states(), 0u);

  auto fresh = compile_gbnf(kJsonish, vocab);
  std::vector<uint32_t> w(words);
  auto run = [&](GrammarMatcher& m) {
    for (const char* piece : {"{", "\"a", "b\"", ":", " [", "1", ",", "tr"}) {
      m.fill_next_token_bitmask(w);
      ASSERT_TRUE(m.accept_bytes(piece)) << piece;
    }
    m.fill_next_token_bitmask(w);
  };
  GrammarMatcher first(fresh);
  run(first);
  const size_t known = fresh->checked_states();
  EXPECT_GT(known, 0u);
  GrammarMatcher second(fresh);
  run(second);
  EXPECT_EQ(fresh->checked_states(), known);
  // The same top inside a string, with an object or an array below: different masks.
  for (const char* prefix : {"{\"a\":\"x", "{\"a\":[\"x", "{\"a\":[[\"x", "{\"a\":{\"b\":\"x"}) {
    GrammarMatcher a(fresh), b(compile_gbnf(kJsonish, vocab));
    std::vector<uint32_t> wb(words);
    ASSERT_TRUE(a.accept_bytes(prefix));
    ASSERT_TRUE(b.accept_bytes(prefix));
    a.fill_next_token_bitmask(w);
    b.fill_next_token_bitmask(wb);
    EXPECT_EQ(w, wb) << prefix;
  }
  set_context_table_threshold(saved);
}

TEST(GrammarProperty, MaskEqualsBruteForceOnRandomGrammars) {
  std::mt19937 rng(12345);
  int checked = 0;
  for (int i = 0; i < 400 && checked < 60; ++i) {
    const std::string g = random_grammar(rng);
    try {
      parse_gbnf(g);
    } catch (const GrammarError&) {
      continue;
    }
    ++checked;
    if (getenv("GRAMMAR_TEST_VERBOSE")) fprintf(stderr, "grammar %d:\n%s\n", i, g.c_str());
    check_mask_against_oracle(g, "abc", 100 + static_cast<uint32_t>(i), 3, 20);
    if (HasFatalFailure()) return;
    if (i % 2 == 0) {  // and again with context tables everywhere, one frame deep
      const int32_t saved = context_table_threshold();
      const int32_t saved_depth = context_table_depth();
      set_context_table_threshold(0);
      set_context_table_depth(1 + i % 3);
      check_mask_against_oracle(g, "abc", 500 + static_cast<uint32_t>(i), 2, 20);
      set_context_table_threshold(saved);
      set_context_table_depth(saved_depth);
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GE(checked, 30);
}

// ---- compile-time tables and cache
// ---------------------------------------------------------------

TEST(GrammarCompiler, TablesAreSharedThroughTheCache) {
  auto vocab = byte_vocab({"ab", "\"x", "x\"", "x\",", "xyz"});
  const std::string g1 = R"(root ::= "[" str ("," str)* "]"
str ::= "\"" [a-z]* "\"")";
  // str is followed by the same bytes (',' or ']') as in g1, so its tables are the same.
  const std::string g2 = R"(root ::= "{" "\"k\":" "[" str ("," str)* "]" "}"
str ::= "\"" [a-z]* "\"")";
  auto c1 = compile_gbnf(g1, vocab);
  const TableCacheStats before = table_cache_stats();
  auto c2 = compile_gbnf(g1, vocab);
  const TableCacheStats after = table_cache_stats();
  EXPECT_EQ(after.misses, before.misses);  // everything came from the cache
  EXPECT_GT(after.hits, before.hits);
  compile_gbnf(g2, vocab);
  const TableCacheStats third = table_cache_stats();
  EXPECT_GT(third.hits, after.hits);  // the [a-z] position inside str is shared
  // Inside a string, "x\"" is accepted without looking below; "x\"," needs the stack.
  const Automaton& a = c1->automaton;
  int checked = 0;
  for (size_t p = 0; p < a.elems.size(); ++p) {
    if (a.elems[p].kind != Automaton::kBytes || !a.elems[p].bytes.test('q') ||
        a.elems[p].bytes.test('"')) {
      continue;
    }
    const TokenTable& t = *c1->tables[p];
    const auto& im = vocab->impl();
    auto uncertain = [&](int32_t id) {
      return std::find(t.uncertain_ranks.begin(), t.uncertain_ranks.end(),
                       im.rank_of[static_cast<size_t>(id)]) != t.uncertain_ranks.end();
    };
    auto accepted = [&](int32_t id) {
      switch (t.storage) {
        case TokenTable::Storage::kAcceptedBitmask:
          return bit(t.accepted_bits, id);
        case TokenTable::Storage::kAcceptedList:
          return std::binary_search(t.ids.begin(), t.ids.end(), id);
        case TokenTable::Storage::kRejectedList:
          break;
      }
      return !std::binary_search(t.ids.begin(), t.ids.end(), id) && !uncertain(id);
    };
    EXPECT_TRUE(accepted('x'));
    EXPECT_TRUE(accepted(256 + 4));   // xyz
    EXPECT_TRUE(accepted(256 + 2));   // x"
    EXPECT_TRUE(uncertain(256 + 3));  // x",
    EXPECT_FALSE(accepted(256 + 1));  // "x: the string would end at once, then x cannot follow
    EXPECT_FALSE(uncertain(256 + 1));
    ++checked;
  }
  EXPECT_EQ(checked, 1);
}

TEST(GrammarCompiler, SameTextReusesEveryTable) {
  auto vocab = byte_vocab({"ab", "\"x", "x\"", "x\",", "xyz"});
  const std::string g = R"(root ::= "[" str ("," str)* "]"
str ::= "\"" [a-z]{0,30} "\"")";
  clear_table_cache();
  auto c1 = compile_gbnf(g, vocab);
  const TableCacheStats before = table_cache_stats();
  auto c2 = compile_gbnf(g, vocab);
  const TableCacheStats after = table_cache_stats();
  EXPECT_EQ(after.misses, before.misses);
  ASSERT_EQ(c1->tables.size(), c2->tables.size());
  for (size_t p = 0; p < c1->tables.size(); ++p) EXPECT_EQ(c1->tables[p], c2->tables[p]);
  // Another root over the same text is another grammar.
  auto c3 = compile_gbnf(g, vocab, "str");
  EXPECT_NE(c3->automaton.root, c1->automaton.root);
  GrammarMatcher m(c3);
  EXPECT_TRUE(m.accept_bytes("\"ab\""));
  EXPECT_TRUE(m.can_terminate());
  clear_table_cache();
  compile_gbnf(g, vocab);
  EXPECT_GT(table_cache_stats().misses, after.misses);  // cleared: classified again
}

TEST(GrammarCompiler, TableStorageIsTheSmallest) {
  // 128 ASCII bytes, 32 tokens "Xq" and 32 tokens "Xb", a stop id: 7 words of bitmask.
  std::vector<std::string> bytes;
  for (int b = 0; b < 128; ++b) bytes.emplace_back(1, static_cast<char>(b));
  for (int i = 0; i < 32; ++i) bytes.push_back(std::string(1, static_cast<char>('A' + i)) + "q");
  for (int i = 0; i < 32; ++i) bytes.push_back(std::string(1, static_cast<char>('A' + i)) + "b");
  bytes.emplace_back();
  const auto stop = static_cast<int32_t>(bytes.size() - 1);
  auto vocab = std::make_shared<const TokenizerInfo>(bytes, std::vector<int32_t>{stop});
  auto storage_at_root = [&](const std::string& gbnf) {
    auto g = compile_gbnf(gbnf, vocab);
    const int32_t p = g->automaton.alt_begins[static_cast<size_t>(g->automaton.root)][0];
    return g->tables[static_cast<size_t>(p)]->storage;
  };
  const std::string few = R"(root ::= "k")";
  const std::string all = R"(root ::= [\x00-\x7f] [\x00-\x7f])";
  const std::string half = R"(root ::= [\x00-pr-\x7f] [\x00-pr-\x7f])";
  EXPECT_EQ(storage_at_root(few), TokenTable::Storage::kAcceptedList);
  EXPECT_EQ(storage_at_root(all), TokenTable::Storage::kRejectedList);
  EXPECT_EQ(storage_at_root(half), TokenTable::Storage::kAcceptedBitmask);
  // The masks agree with the matcher whatever the storage.
  for (const std::string& gbnf : {few, all, half}) {
    auto g = compile_gbnf(gbnf, vocab);
    GrammarMatcher m(g);
    std::vector<uint32_t> w(static_cast<size_t>(bitmask_words(vocab->vocab_size())));
    m.fill_next_token_bitmask(w);
    int allowed = 0;
    for (int32_t id = 0; id < stop; ++id) {
      GrammarMatcher fresh(g);
      EXPECT_EQ(bit(w, id), fresh.accept_token(id)) << gbnf << " token " << id;
      allowed += bit(w, id);
    }
    EXPECT_GT(allowed, 0);
  }
}

// ---- tokenizer bytes
// -----------------------------------------------------------------------------

std::string tok_dir(const char* name) {
  return std::string(INFERD_TEST_DATA_DIR) + "/tokenizers/" + name;
}

TEST(TokenizerInfo, Llama3TokenBytes) {
  if (!std::filesystem::exists(tok_dir("llama3") + "/tokenizer.json")) {
    GTEST_SKIP() << "tests/data/tokenizers/llama3 absent (scripts/fetch-test-data.sh)";
  }
  const Tokenizer tok = Tokenizer::from_dir(tok_dir("llama3"));
  auto info = tokenizer_info_from(tok, 128256 + 100, tok.eos_ids());
  EXPECT_EQ(info->vocab_size(), 128356);
  for (const std::string text : {"Hello world", " {\"a\": [1, 2]}\n", "caf\xC3\xA9 \xE2\x82\xAC 5",
                                 "\xF0\x9F\x98\x80 emoji"}) {
    std::string joined;
    for (int32_t id : tok.encode(text, false)) joined += info->token_bytes(id);
    EXPECT_EQ(joined, text);
  }
  // Special tokens and padding ids have no bytes.
  ASSERT_TRUE(tok.bos_id().has_value());
  EXPECT_EQ(info->token_bytes(*tok.bos_id()), "");
  EXPECT_FALSE(tok.token_bytes(*tok.bos_id()).has_value());
  EXPECT_EQ(info->token_bytes(128300), "");
  // A byte-level token that is half of a UTF-8 character stays raw bytes.
  auto id = tok.token_to_id("\xC3\x83");  // the byte-level char for byte 0xC3
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(info->token_bytes(*id), "\xC3");
  // A grammar over the real vocabulary: after '{"', quote-ending tokens are allowed.
  auto g = compile_gbnf(R"(root ::= "{\"" [a-z]+ "\": " [0-9]+ "}")", info);
  GrammarMatcher m(g);
  std::vector<uint32_t> w(static_cast<size_t>(bitmask_words(info->vocab_size())));
  m.fill_next_token_bitmask(w);
  const auto brace = tok.token_to_id("{\"");
  ASSERT_TRUE(brace.has_value());
  EXPECT_TRUE(bit(w, *brace));
  EXPECT_TRUE(m.accept_token(*brace));
  m.fill_next_token_bitmask(w);
  const auto ids = tok.encode("name", false);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_TRUE(bit(w, ids[0]));
  for (int32_t s : tok.eos_ids()) EXPECT_FALSE(bit(w, s));
}

TEST(TokenizerInfo, Llama2TokenBytes) {
  if (!std::filesystem::exists(tok_dir("llama2") + "/tokenizer.json")) {
    GTEST_SKIP() << "tests/data/tokenizers/llama2 absent (scripts/fetch-test-data.sh)";
  }
  const Tokenizer tok = Tokenizer::from_dir(tok_dir("llama2"));
  auto info = tokenizer_info_from(tok, static_cast<int32_t>(tok.id_limit()), tok.eos_ids());
  std::string joined;
  for (int32_t id : tok.encode("Hello world", false)) joined += info->token_bytes(id);
  EXPECT_EQ(joined, " Hello world");  // the leading space is not stripped for single tokens
  const auto nl = tok.token_to_id("<0x0A>");
  ASSERT_TRUE(nl.has_value());
  EXPECT_EQ(info->token_bytes(*nl), "\n");
  const auto hi = tok.token_to_id("<0xC3>");
  ASSERT_TRUE(hi.has_value());
  EXPECT_EQ(info->token_bytes(*hi), "\xC3");
  ASSERT_TRUE(tok.bos_id().has_value());
  EXPECT_EQ(info->token_bytes(*tok.bos_id()), "");
}

}  // namespace
}  // namespace inferd::grammar

namespace inferd::grammar {
namespace {

TEST(GrammarMatcher, AmbiguousMasksFailWithinTheirWorkBudget) {
  // Each alternative can end anywhere: a few dozen parses stay alive (far below kMaxStacks), but
  // over a real vocabulary every long all-letter token walks all of them, and the context tables
  // multiply that (about 10^6 stack nodes, 50-90 ms, a mask on one core). The mask's WorkBudget
  // fails the request instead of stalling every sequence's mask step after step.
  if (!std::filesystem::exists(tok_dir("llama3") + "/tokenizer.json")) {
    GTEST_SKIP() << "tests/data/tokenizers/llama3 absent (scripts/fetch-test-data.sh)";
  }
  const Tokenizer tok = Tokenizer::from_dir(tok_dir("llama3"));
  auto info = tokenizer_info_from(tok, 128256, tok.eos_ids());
  GrammarMatcher m(compile_gbnf("root ::= ([a-z] | [a-z][a-z] | [a-z][a-z][a-z]){200,}", info));
  std::vector<uint32_t> w(static_cast<size_t>(bitmask_words(info->vocab_size())));
  std::string error;
  int masks = 0;
  try {
    for (; masks < 8; ++masks) {
      m.fill_next_token_bitmask(w);
      ASSERT_TRUE(m.accept_bytes("ab"));
    }
  } catch (const GrammarError& e) {
    error = e.what();
  }
  EXPECT_LT(masks, 8);
  EXPECT_NE(error.find("too ambiguous"), std::string::npos) << error;
  EXPECT_NE(error.find("parse steps"), std::string::npos) << error;
  // The same grammar with exclusive alternatives is cheap and fine.
  GrammarMatcher ok(compile_gbnf("root ::= [a-z]{200,}", info));
  for (int i = 0; i < 8; ++i) {
    ok.fill_next_token_bitmask(w);
    ASSERT_TRUE(ok.accept_bytes("ab"));
  }
}

TEST(WorkBudget, CountsEveryMachineOnTheThreadAndNests) {
  // Unbounded outside a budget (compilation); inside, the work of any StackMachine counts.
  auto g = compile_gbnf("root ::= [a-z]+", byte_vocab());
  GrammarMatcher m(g);
  {
    const WorkBudget outer(1'000'000);
    ASSERT_TRUE(m.accept_bytes("abc"));  // the matcher's own inner budget
    EXPECT_EQ(outer.used(), 0);          // restored after the inner one
    StackMachine sm(g->automaton);
    std::vector<int32_t> tops;
    bool end = false;
    sm.initial(tops, end);
    EXPECT_GT(outer.used(), 0);
  }
  {
    const WorkBudget tiny(3);
    StackMachine sm(g->automaton);
    std::vector<int32_t> tops, out;
    bool end = false;
    EXPECT_THROW(
        {
          sm.initial(tops, end);
          for (int i = 0; i < 4; ++i) {
            sm.step(tops, 'a', out, end);
            tops = out;
          }
        },
        GrammarError);
  }
  // No budget left over on the thread: long work goes on.
  ASSERT_TRUE(m.accept_bytes(std::string(5000, 'x')));
}

}  // namespace
}  // namespace inferd::grammar
