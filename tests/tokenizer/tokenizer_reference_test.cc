// Every fixture case against the reference (`tokenizers`): identical ids and identical text.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tokenizer_fixtures.h"

namespace inferd::testing {
namespace {

using nlohmann::json;

std::vector<int32_t> ids_of(const json& j) {
  return j.get<std::vector<int32_t>>();
}

std::string escaped(const std::string& s) {
  return json(s).dump();
}

class TokenizerReference : public ::testing::TestWithParam<std::string> {
 protected:
  const json& fx() { return tokenizer_fixture(GetParam()); }
  // For parse_special=false fixtures the reference tokenizer had its special tokens removed
  // (which renumbers the other added tokens); ours is the unmodified tokenizer asked not to parse
  // them, and the reference ids are compared by token spelling.
  const Tokenizer& tok() {
    if (!fx().value("parse_special", true))
      return fixture_tokenizer(fx()["base"].get<std::string>());
    return fixture_tokenizer(GetParam());
  }
  std::vector<int32_t> expected(const json& ids) {
    auto v = ids_of(ids);
    if (fx().value("parse_special", true)) return v;
    const Tokenizer& patched = fixture_tokenizer(GetParam());
    const Tokenizer& base = tok();
    for (int32_t& id : v) {
      const auto spelled = patched.id_to_token(id);
      const auto back = spelled ? base.token_to_id(*spelled) : std::nullopt;
      id = back.value_or(-1);
    }
    return v;
  }
};

constexpr int kMaxReported = 12;

TEST_P(TokenizerReference, EncodeMatches) {
  const json& f = fx();
  const Tokenizer& t = tok();
  const bool parse_special = f.value("parse_special", true);
  const auto& corpus = fixture_corpus();
  const auto prefix = ids_of(f["special_prefix"]);
  const auto suffix = ids_of(f["special_suffix"]);
  const json& cases = f["encode"];
  ASSERT_GT(cases.size(), 100u);
  ASSERT_LE(cases.size(), corpus.size());
  int failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string& text = corpus[i];
    const auto want = expected(cases[i]["a"]);
    const auto got = t.encode(text, false, parse_special);
    if (got != want && ++failures <= kMaxReported) {
      ADD_FAILURE() << "case " << i << " " << escaped(text) << "\n  want "
                    << fmt::format("{}", want) << "\n  got  " << fmt::format("{}", got);
    }
    if (!parse_special) continue;
    std::vector<int32_t> want_b;
    if (cases[i].contains("b")) {
      want_b = ids_of(cases[i]["b"]);
    } else {
      want_b = prefix;
      want_b.insert(want_b.end(), want.begin(), want.end());
      want_b.insert(want_b.end(), suffix.begin(), suffix.end());
    }
    const auto got_b = t.encode(text, true);
    if (got_b != want_b && ++failures <= kMaxReported) {
      ADD_FAILURE() << "case " << i << " (add_special_tokens) " << escaped(text) << "\n  want "
                    << fmt::format("{}", want_b) << "\n  got  " << fmt::format("{}", got_b);
    }
  }
  EXPECT_EQ(failures, 0) << "of " << cases.size() << " texts";
}

TEST_P(TokenizerReference, DecodeMatches) {
  const json& f = fx();
  if (!f.contains("decode")) GTEST_SKIP() << "encode-only fixture";
  const Tokenizer& t = tok();
  const auto& corpus = fixture_corpus();
  const auto prefix = ids_of(f["special_prefix"]);
  const auto suffix = ids_of(f["special_suffix"]);
  int failures = 0;
  auto check = [&](const std::string& what, const std::string& want, const std::string& got) {
    if (want != got && ++failures <= kMaxReported) {
      ADD_FAILURE() << what << "\n  want " << escaped(want) << "\n  got  " << escaped(got);
    }
  };
  const json& cases = f["encode"];
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto a = ids_of(cases[i]["a"]);
    std::vector<int32_t> b;
    if (cases[i].contains("b")) {
      b = ids_of(cases[i]["b"]);
    } else {
      b = prefix;
      b.insert(b.end(), a.begin(), a.end());
      b.insert(b.end(), suffix.begin(), suffix.end());
    }
    const std::string d = cases[i].value("d", corpus[i]);
    check(fmt::format("decode of case {}", i), d, t.decode(a, false));
    check(fmt::format("decode skip_special of case {} with special tokens", i),
          cases[i].value("ds", d), t.decode(b, true));
  }
  for (const json& c : f["decode"]) {
    const auto ids = ids_of(c["ids"]);
    const std::string want = c["t"].get<std::string>();
    check(fmt::format("decode {}", ids), want, t.decode(ids, false));
    check(fmt::format("decode skip_special {}", ids), c.value("ts", want), t.decode(ids, true));
  }
  EXPECT_EQ(failures, 0);
}

TEST_P(TokenizerReference, VocabularyMatches) {
  const json& f = fx();
  if (!f.contains("id_to_token")) GTEST_SKIP() << "encode-only fixture";
  const Tokenizer& t = tok();
  EXPECT_EQ(t.vocab_size(), f["vocab_size"].get<size_t>());
  for (const json& p : f["id_to_token"]) {
    const auto id = p[0].get<int32_t>();
    if (p[1].is_null()) {
      EXPECT_FALSE(t.id_to_token(id).has_value()) << id;
      EXPECT_FALSE(t.is_valid_id(id)) << id;
      continue;
    }
    const std::string tok_str = p[1].get<std::string>();
    EXPECT_EQ(t.id_to_token(id), tok_str) << id;
    EXPECT_TRUE(t.is_valid_id(id)) << id;
    const auto back = t.token_to_id(tok_str);
    ASSERT_TRUE(back.has_value()) << tok_str;
    // A token spelled twice (model vocab and added tokens) maps back to one of its ids.
    EXPECT_EQ(t.id_to_token(*back), tok_str);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerReference,
                         ::testing::ValuesIn(tokenizer_fixture_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace inferd::testing
