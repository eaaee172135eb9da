// The streaming detokenizer against every fixture tokenizer: the pieces it emits concatenate to
// the full decode, no piece splits a UTF-8 character, and text is held back only while the decode
// ends in an incomplete character or in a run of byte-fallback tokens.
#include "tokenizer/streaming_detokenizer.h"

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tokenizer/unicode.h"
#include "tokenizer_fixtures.h"

namespace inferd::testing {
namespace {

using nlohmann::json;

const std::string kReplacement = "\xEF\xBF\xBD";

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, kReplacement) == 0;
}

// All id sequences of a fixture: encoded corpus texts (with and without special tokens) and the
// random decode cases.
std::vector<std::vector<int32_t>> id_sequences(const json& f) {
  std::vector<std::vector<int32_t>> out;
  const auto prefix = f["special_prefix"].get<std::vector<int32_t>>();
  const auto suffix = f["special_suffix"].get<std::vector<int32_t>>();
  for (const json& c : f["encode"]) {
    auto a = c["a"].get<std::vector<int32_t>>();
    std::vector<int32_t> b;
    if (c.contains("b")) {
      b = c["b"].get<std::vector<int32_t>>();
    } else {
      b = prefix;
      b.insert(b.end(), a.begin(), a.end());
      b.insert(b.end(), suffix.begin(), suffix.end());
    }
    out.push_back(std::move(a));
    out.push_back(std::move(b));
  }
  for (const json& c : f["decode"]) out.push_back(c["ids"].get<std::vector<int32_t>>());
  return out;
}

class StreamingDetokenizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamingDetokenizerTest, ConcatenationEqualsFullDecode) {
  const json& f = tokenizer_fixture(GetParam());
  if (!f.contains("decode")) GTEST_SKIP() << "encode-only fixture";
  const Tokenizer& tok = fixture_tokenizer(GetParam());
  int failures = 0;
  size_t checked = 0;
  for (const auto& ids : id_sequences(f)) {
    for (bool skip : {false, true}) {
      const std::string full = tok.decode(ids, skip);
      StreamingDetokenizer sd(tok, skip);
      std::string streamed;
      std::vector<std::string> pieces;
      bool piece_ok = true;
      for (int32_t id : ids) {
        std::string p = sd.push(id);
        piece_ok = piece_ok && unicode::is_valid_utf8(p);
        streamed += p;
        pieces.push_back(std::move(p));
      }
      const std::string rest = sd.finish();
      piece_ok = piece_ok && unicode::is_valid_utf8(rest);
      streamed += rest;
      ++checked;
      // Text may stay held back at the end only for an incomplete character or an open run of
      // byte-fallback tokens.
      bool last_open = false;
      for (int32_t id : ids) {
        const auto c = tok.continuation(id, skip);
        if (c != TextDecoder::Continuation::kInvisible) {
          last_open = c == TextDecoder::Continuation::kOpen;
        }
      }
      const bool held_too_long = !rest.empty() && !ends_with_replacement(full) && !last_open;
      if ((streamed != full || !piece_ok || held_too_long) && ++failures <= 10) {
        ADD_FAILURE() << fmt::format(
            "ids {} skip_special={}\n  full     {}\n  streamed {}\n  pieces "
            "{}\n  finish() {}",
            ids, skip, json(full).dump(), json(streamed).dump(), json(pieces).dump(),
            json(rest).dump());
      }
    }
  }
  EXPECT_EQ(failures, 0) << "of " << checked << " sequences";
  EXPECT_GT(checked, 300u);
}

// With prompt ids as context, the generated text is what the full decode adds after the prompt.
TEST_P(StreamingDetokenizerTest, WithPromptContext) {
  const json& f = tokenizer_fixture(GetParam());
  if (!f.contains("decode")) GTEST_SKIP() << "encode-only fixture";
  const Tokenizer& tok = fixture_tokenizer(GetParam());
  int failures = 0;
  size_t checked = 0;
  for (const auto& ids : id_sequences(f)) {
    if (ids.size() < 4) continue;
    const size_t k = ids.size() / 2;
    const std::span<const int32_t> all(ids);
    const std::string before = tok.decode(all.first(k), false);
    const std::string full = tok.decode(all, false);
    // Only meaningful when the prompt's text is a prefix of the whole text.
    if (full.compare(0, before.size(), before) != 0 || ends_with_replacement(before)) continue;
    StreamingDetokenizer sd(tok, false, all.first(k));
    std::string streamed;
    for (size_t i = k; i < ids.size(); ++i) streamed += sd.push(ids[i]);
    streamed += sd.finish();
    ++checked;
    if (streamed != full.substr(before.size()) && ++failures <= 10) {
      ADD_FAILURE() << fmt::format("ids {} context {}\n  want {}\n  got  {}", ids, k,
                                   json(full.substr(before.size())).dump(), json(streamed).dump());
    }
  }
  EXPECT_EQ(failures, 0) << "of " << checked << " sequences";
}

// vLLM's spaces_between_special_tokens=false: two added tokens in a row stream without the space
// the WordPiece decoder puts between them; text next to an added token keeps it, and with the
// flag on (the default) the pieces are the full decode.
TEST(StreamingDetokenizer, NoSpacesBetweenSpecialTokens) {
  const Tokenizer& tok = fixture_tokenizer("v_wordpiece");
  ASSERT_EQ(tok.added_token_content(3), "[SEP]");
  EXPECT_FALSE(tok.added_token_content(tok.encode("hello", false).at(0)).has_value());
  std::vector<int32_t> ids = {2, 3};  // [CLS] [SEP]
  for (int32_t id : tok.encode("hello", false)) ids.push_back(id);
  ids.insert(ids.end(), {3, 2, 4});  // [SEP] [CLS] [MASK]
  auto stream = [&](bool spaces) {
    StreamingDetokenizer sd(tok, false, {}, spaces);
    std::string out;
    for (int32_t id : ids) out += sd.push(id);
    return out + sd.finish();
  };
  EXPECT_EQ(stream(true), tok.decode(ids, false));
  EXPECT_EQ(stream(true), "[CLS] [SEP] hello [SEP] [CLS] [MASK]");
  EXPECT_EQ(stream(false), "[CLS][SEP] hello [SEP][CLS][MASK]");
}

// All fixtures with decode cases except v_normalizers, whose Strip decoder has start=2 (see the
// limitation in streaming_detokenizer.h).
std::vector<std::string> streaming_fixtures() {
  std::vector<std::string> out;
  for (const auto& n : tokenizer_fixture_names()) {
    if (n.rfind("v_no_special", 0) != 0 && n != "v_normalizers") out.push_back(n);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StreamingDetokenizerTest,
                         ::testing::ValuesIn(streaming_fixtures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace inferd::testing
