// The tokenizer of a GGUF vocabulary against the Hugging Face tokenizer of the same model: GGUF
// metadata written from a real tokenizer.json the way llama.cpp's converter writes it
// (gguf_hf_metadata.h), read back (src/llm/gguf_tokenizer.h), must encode the project's corpus
// to the reference ids and decode them back to the reference text.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "gguf_hf_metadata.h"
#include "llm/gguf_tokenizer.h"
#include "tokenizer_fixtures.h"

namespace inferd::testing {
namespace {

using nlohmann::json;

struct Case {
  std::string base;  // tests/data/tokenizers/<base> and its fixture
  HfGgufOptions options;
  std::vector<int32_t> stop_ids;  // what llama.cpp stops at for this vocabulary
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.base;
}

const Case kCases[] = {
    {"llama3", {"gpt2", "llama-bpe", std::nullopt}, {128001, 128009}},
    {"llama3_1", {"gpt2", "llama-bpe", std::nullopt}, {128009}},
    {"qwen3", {"gpt2", "qwen2", std::nullopt}, {151645, 151643}},
    {"deepseek_v3", {"gpt2", "deepseek-v3", std::nullopt}, {1}},
    {"llama2", {"llama", "default", std::nullopt}, {2}},
    {"gemma3", {"llama", "default", false}, {106}},
};

struct Loaded {
  json tokenizer_json, tokenizer_config;
  GgufMetadata metadata;
  GgufVocab vocab;
  std::unique_ptr<Tokenizer> tokenizer;
};

const Loaded& loaded(const Case& c) {
  static std::map<std::string, std::unique_ptr<Loaded>> cache;
  auto& slot = cache[c.base];
  if (!slot) {
    slot = std::make_unique<Loaded>();
    const std::string dir = tokenizer_dir(c.base);
    slot->tokenizer_json = read_json(dir + "/tokenizer.json");
    slot->tokenizer_config = read_json(dir + "/tokenizer_config.json");
    slot->metadata = gguf_metadata_from_hf(slot->tokenizer_json, slot->tokenizer_config, c.options);
    // For tools/gguf_vocab_check.py --compare.
    if (const char* dump = std::getenv("INFERD_GGUF_VOCAB_DUMP_DIR")) {
      std::ofstream(std::string(dump) + "/" + c.base + ".json")
          << gguf_metadata_json(slot->metadata).dump(1);
    }
    slot->vocab = gguf_vocab_from_metadata(slot->metadata);
    slot->tokenizer = std::make_unique<Tokenizer>(tokenizer_from_gguf_vocab(slot->vocab));
  }
  return *slot;
}

std::vector<int32_t> ids_of(const json& j) {
  return j.get<std::vector<int32_t>>();
}

constexpr int kMaxReported = 12;

class GgufVocabReference : public ::testing::TestWithParam<Case> {};

TEST_P(GgufVocabReference, EncodeMatchesTokenizerJson) {
  const Loaded& l = loaded(GetParam());
  const json& f = tokenizer_fixture(GetParam().base);
  const auto& corpus = fixture_corpus();
  const Tokenizer& t = *l.tokenizer;
  // The ids add_special_tokens puts first: the reference's, except where the bare tokenizer.json
  // lacks the BOS that transformers and llama.cpp add: Llama 3's file of the fixtures predates
  // Meta's BOS template (llama.cpp adds BOS for llama-bpe), and DeepSeek-V3's config says
  // add_bos_token (which the converter writes as tokenizer.ggml.add_bos_token).
  std::vector<int32_t> prefix = ids_of(f["special_prefix"]);
  if (GetParam().base == "llama3") prefix = {128000};
  if (GetParam().base == "deepseek_v3") prefix = {0};
  EXPECT_EQ(t.special_prefix(), prefix);
  EXPECT_EQ(t.special_suffix(), ids_of(f["special_suffix"]));
  const json& cases = f["encode"];
  ASSERT_GT(cases.size(), 100u);
  int failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto want = ids_of(cases[i]["a"]);
    const auto got = t.encode(corpus[i], false);
    if (got != want && ++failures <= kMaxReported) {
      ADD_FAILURE() << "case " << i << " " << json(corpus[i]).dump() << "\n  want "
                    << fmt::format("{}", want) << "\n  got  " << fmt::format("{}", got);
    }
    std::vector<int32_t> want_b = prefix;
    want_b.insert(want_b.end(), want.begin(), want.end());
    want_b.insert(want_b.end(), t.special_suffix().begin(), t.special_suffix().end());
    if (t.encode(corpus[i], true) != want_b && ++failures <= kMaxReported) {
      ADD_FAILURE() << "case " << i << " (add_special_tokens) " << json(corpus[i]).dump();
    }
  }
  EXPECT_EQ(failures, 0) << "of " << cases.size() << " texts";
}

// llama.cpp's converter marks added tokens that look special (<|...|>, <unused..>, <mask>) as
// control tokens, so a few tokens the reference does not call special are special here:
// skip_special decodes are compared only where no such token is involved.
TEST_P(GgufVocabReference, DecodeMatchesTokenizerJson) {
  const Loaded& l = loaded(GetParam());
  const json& f = tokenizer_fixture(GetParam().base);
  const Tokenizer& ref = fixture_tokenizer(GetParam().base);
  const Tokenizer& t = *l.tokenizer;
  const auto& corpus = fixture_corpus();
  int failures = 0, compared_skip = 0;
  auto check = [&](const std::string& what, const std::string& want, const std::string& got) {
    if (want != got && ++failures <= kMaxReported) {
      ADD_FAILURE() << what << "\n  want " << json(want).dump() << "\n  got  " << json(got).dump();
    }
  };
  auto same_specials = [&](const std::vector<int32_t>& ids) {
    return std::all_of(ids.begin(), ids.end(),
                       [&](int32_t id) { return ref.is_special(id) == t.is_special(id); });
  };
  const json& cases = f["encode"];
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto a = ids_of(cases[i]["a"]);
    check(fmt::format("decode of case {}", i), cases[i].value("d", corpus[i]), t.decode(a, false));
    if (same_specials(a)) {
      check(fmt::format("decode skip_special of case {}", i), ref.decode(a, true),
            t.decode(a, true));
      ++compared_skip;
    }
  }
  for (const json& c : f["decode"]) {
    const auto ids = ids_of(c["ids"]);
    const std::string want = c["t"].get<std::string>();
    check(fmt::format("decode {}", ids), want, t.decode(ids, false));
    if (same_specials(ids)) {
      check(fmt::format("decode skip_special {}", ids), c.value("ts", want), t.decode(ids, true));
      ++compared_skip;
    }
  }
  EXPECT_EQ(failures, 0);
  EXPECT_GT(compared_skip, static_cast<int>(cases.size()) / 2);
}

TEST_P(GgufVocabReference, TokensAndSpecialIds) {
  const Loaded& l = loaded(GetParam());
  const Tokenizer& ref = fixture_tokenizer(GetParam().base);
  const Tokenizer& t = *l.tokenizer;
  // Every id of the reference spells the same token here.
  for (int32_t id = 0; id < static_cast<int32_t>(ref.id_limit()); ++id) {
    const auto want = ref.id_to_token(id);
    if (!want) continue;
    ASSERT_EQ(t.id_to_token(id), want) << id;
  }
  const json& cfg = l.tokenizer_config;
  if (ref.bos_id()) {
    EXPECT_EQ(t.bos_id(), ref.bos_id());
  }
  if (ref.eos_id()) {
    EXPECT_EQ(t.eos_id(), ref.eos_id());
  }
  ASSERT_TRUE(ref.eos_id().has_value());
  EXPECT_EQ(l.vocab.eos_id, ref.eos_id());
  EXPECT_EQ(l.vocab.stop_ids(), GetParam().stop_ids);
  if (cfg.contains("chat_template")) {
    EXPECT_EQ(t.chat_template(), cfg["chat_template"].get<std::string>());
  } else {
    EXPECT_FALSE(t.chat_template().has_value());
  }
}

// The pipeline written for a vocabulary is the model's own: for byte-level BPE the pre-tokenizer
// and decoder of its tokenizer.json; for SentencePiece the normalizer, the decoder and the same
// set of merges (rebuilt from the scores; Hugging Face's converters differ in how they order the
// splits of one piece).
TEST_P(GgufVocabReference, PipelineIsTheModels) {
  const Loaded& l = loaded(GetParam());
  const json j = gguf_vocab_tokenizer_json(l.vocab);
  const json& ref = l.tokenizer_json;
  EXPECT_EQ(j["decoder"], ref["decoder"]);
  if (GetParam().options.model == "gpt2") {
    EXPECT_EQ(j["pre_tokenizer"], ref["pre_tokenizer"]);
    EXPECT_EQ(j["model"]["merges"].size(), ref["model"]["merges"].size());
    return;
  }
  EXPECT_EQ(j["normalizer"], ref["normalizer"]);
  std::set<std::pair<std::string, std::string>> want, got;
  for (const json& m : ref["model"]["merges"]) {
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      want.emplace(s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1));
    } else {
      want.emplace(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }
  for (const json& m : j["model"]["merges"]) {
    got.emplace(m[0].get<std::string>(), m[1].get<std::string>());
  }
  EXPECT_EQ(j["model"]["merges"].size(), ref["model"]["merges"].size());
  EXPECT_TRUE(want == got) << want.size() << " merges in tokenizer.json, " << got.size()
                           << " rebuilt";
}

// tokenizer.ggml.pre "gpt-2" (and "default", which names no known pre-tokenizer): GPT-2's own
// byte-level pre-tokenizer; llama-bpe keeps whole-word tokens (ignore_merges) as Llama 3's file.
TEST(GgufVocab, Gpt2AndLlama3Options) {
  const Loaded& l = loaded(kCases[0]);
  GgufVocab v = l.vocab;
  EXPECT_EQ(gguf_vocab_tokenizer_json(v)["model"]["ignore_merges"], true);
  for (const char* pre : {"gpt-2", "default"}) {
    v.pre = pre;
    const json j = gguf_vocab_tokenizer_json(v);
    EXPECT_EQ(j["pre_tokenizer"], json::parse(R"({"type": "ByteLevel", "add_prefix_space": false,
        "trim_offsets": true, "use_regex": true})"));
    EXPECT_EQ(j["model"]["ignore_merges"], false);
    EXPECT_TRUE(j["normalizer"].is_null());
    const Tokenizer t = tokenizer_from_gguf_vocab(v);
    // GPT-2's pattern takes "'s" in lower case only (Llama 3's in any case): "'S" splits.
    const auto ids = t.encode("HE'S here", false);
    EXPECT_EQ(t.decode(ids, false), "HE'S here");
    EXPECT_EQ(ids.size(), l.tokenizer->encode("HE'S here", false).size() + 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Real, GgufVocabReference, ::testing::ValuesIn(kCases), case_name);

// A small SentencePiece-style vocabulary for the error and metadata tests.
GgufMetadata tiny_spm() {
  GgufMetadata kv;
  kv["tokenizer.ggml.model"] = gguf_string("llama");
  kv["tokenizer.ggml.tokens"] = gguf_strings({"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b",
                                              "\xe2\x96\x81"
                                              "a",
                                              "ab"});
  kv["tokenizer.ggml.scores"] = gguf_floats({0, 0, 0, -1, -2, -3, -4, -5});
  kv["tokenizer.ggml.token_type"] = gguf_ints(GgufValueType::kInt32, {2, 3, 3, 1, 1, 1, 1, 1});
  kv["tokenizer.ggml.bos_token_id"] = gguf_u32(1);
  kv["tokenizer.ggml.eos_token_id"] = gguf_u32(2);
  return kv;
}

std::string error_of(const GgufMetadata& kv) {
  try {
    gguf_vocab_from_metadata(kv);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufVocab, TinySentencePieceEncodes) {
  const Tokenizer t = tokenizer_from_gguf_metadata(tiny_spm());
  // "▁a" (score -4) beats "ab" (-5): ▁ a b -> ▁a b.
  EXPECT_EQ(t.encode("ab", true), (std::vector<int32_t>{1, 6, 5}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{1, 6, 5}, true), "ab");
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
}

TEST(GgufVocab, UnsupportedModelAndPreAreNamed) {
  GgufMetadata kv = tiny_spm();
  kv["tokenizer.ggml.model"] = gguf_string("bert");
  std::string e = error_of(kv);
  EXPECT_NE(e.find("'bert'"), std::string::npos) << e;
  EXPECT_NE(e.find("'llama', 'gpt2'"), std::string::npos) << e;

  kv["tokenizer.ggml.model"] = gguf_string("gpt2");
  kv["tokenizer.ggml.pre"] = gguf_string("tekken");
  kv["tokenizer.ggml.merges"] = gguf_strings({"a b"});
  e = error_of(kv);
  EXPECT_NE(e.find("'tekken'"), std::string::npos) << e;
  EXPECT_NE(e.find("'llama-bpe'"), std::string::npos) << e;
  EXPECT_NE(e.find("'qwen2'"), std::string::npos) << e;
}

TEST(GgufVocab, MissingOrMalformedKeysAreErrors) {
  GgufMetadata kv = tiny_spm();
  kv.erase("tokenizer.ggml.tokens");
  EXPECT_NE(error_of(kv).find("tokenizer.ggml.tokens"), std::string::npos) << error_of(kv);

  kv = tiny_spm();
  kv.erase("tokenizer.ggml.model");
  EXPECT_NE(error_of(kv).find("tokenizer.ggml.model"), std::string::npos);

  kv = tiny_spm();
  kv["tokenizer.ggml.scores"] = gguf_floats({0, 0});
  EXPECT_NE(error_of(kv).find("tokenizer.ggml.scores"), std::string::npos) << error_of(kv);

  kv = tiny_spm();
  kv["tokenizer.ggml.tokens"] = gguf_u32(3);
  EXPECT_NE(error_of(kv).find("tokenizer.ggml.tokens"), std::string::npos) << error_of(kv);

  kv = tiny_spm();
  kv["tokenizer.ggml.token_type"] =
      gguf_ints(GgufValueType::kInt64, {2, 3, 3, 1, 1, 1, 1, int64_t{1} << 32 | 1});
  EXPECT_NE(error_of(kv).find("token_type[7]"), std::string::npos) << error_of(kv);

  kv = tiny_spm();
  kv["tokenizer.ggml.eos_token_id"] = gguf_u32(99);
  EXPECT_NE(error_of(kv).find("eos_token_id 99"), std::string::npos) << error_of(kv);

  kv = tiny_spm();
  kv["tokenizer.ggml.bos_token_id"] = gguf_string("1");
  EXPECT_NE(error_of(kv).find("tokenizer.ggml.bos_token_id"), std::string::npos) << error_of(kv);

  kv = tiny_spm();
  kv["tokenizer.ggml.model"] = gguf_string("gpt2");
  kv["tokenizer.ggml.pre"] = gguf_string("qwen2");
  kv["tokenizer.ggml.merges"] = gguf_strings({"a b c"});
  EXPECT_NE(error_of(kv).find("merges[0]"), std::string::npos) << error_of(kv);
  try {
    tokenizer_from_gguf_metadata(kv);
    ADD_FAILURE() << "a malformed merge was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.merges[0]"), std::string::npos);
  }
}

TEST(GgufVocab, FileErrorsNameTheFile) {
  const GgufFile empty;  // no metadata: no tokenizer
  try {
    gguf_vocab_from_file(empty);
    ADD_FAILURE() << "a file without tokenizer.ggml.model was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.model"), std::string::npos) << e.what();
  }
}

TEST(GgufVocab, ChatTemplatesAndStopIds) {
  GgufMetadata kv = tiny_spm();
  kv["tokenizer.chat_template"] = gguf_string("{{ messages }}");
  kv["tokenizer.chat_templates"] = gguf_strings({"tool_use", "rag"});
  kv["tokenizer.chat_template.tool_use"] = gguf_string("{{ tools }}");
  kv["tokenizer.chat_template.rag"] = gguf_string("{{ documents }}");
  kv["tokenizer.ggml.eot_token_id"] = gguf_u32(7);
  kv["tokenizer.ggml.eom_token_id"] = gguf_u32(2);
  const GgufVocab v = gguf_vocab_from_metadata(kv);
  EXPECT_EQ(v.stop_ids(), (std::vector<int32_t>{2, 7}));
  const Tokenizer t = tokenizer_from_gguf_vocab(v);
  EXPECT_EQ(t.chat_template(), "{{ messages }}");
  EXPECT_EQ(t.chat_template("tool_use"), "{{ tools }}");
  EXPECT_EQ(t.chat_template("rag"), "{{ documents }}");

  kv.erase("tokenizer.chat_template.rag");
  EXPECT_NE(error_of(kv).find("tokenizer.chat_template.rag"), std::string::npos);
  kv.erase("tokenizer.chat_templates");  // named templates found by key
  EXPECT_EQ(tokenizer_from_gguf_metadata(kv).chat_template("tool_use"), "{{ tools }}");
}

TEST(GgufVocab, AddFlagsAndSpacePrefix) {
  GgufMetadata kv = tiny_spm();
  kv["tokenizer.ggml.add_bos_token"] = gguf_bool(false);
  kv["tokenizer.ggml.add_eos_token"] = gguf_bool(true);
  Tokenizer t = tokenizer_from_gguf_metadata(kv);
  EXPECT_EQ(t.encode("a", true), (std::vector<int32_t>{6, 2}));
  EXPECT_FALSE(t.add_bos_token());
  kv["tokenizer.ggml.add_space_prefix"] = gguf_bool(false);
  t = tokenizer_from_gguf_metadata(kv);
  EXPECT_EQ(t.encode("a", false), (std::vector<int32_t>{4}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{4, 6}, false), "a a");
}

TEST(GgufValue, TypedReads) {
  EXPECT_EQ(gguf_u32(7).as_int("k"), 7);
  EXPECT_EQ(gguf_i32(-7).as_int("k"), -7);
  EXPECT_DOUBLE_EQ(gguf_u32(7).as_float("k"), 7.0);
  EXPECT_FLOAT_EQ(static_cast<float>(gguf_f32(0.5f).as_float("k")), 0.5f);
  EXPECT_TRUE(gguf_bool(true).as_bool("k"));
  EXPECT_EQ(gguf_string("x").as_string("k"), "x");
  EXPECT_EQ(gguf_strings({"a", "b"}).array_size(), 2u);
  EXPECT_EQ(gguf_ints(GgufValueType::kInt32, {1, 2, 3}).array_size(), 3u);
  EXPECT_EQ(gguf_floats({1.0}).array_size(), 1u);
  EXPECT_EQ(gguf_u32(1).array_size(), 0u);
  EXPECT_EQ(gguf_u64(~uint64_t{0}).type, GgufValueType::kUint64);
  try {
    gguf_string("x").as_int("general.alignment");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.alignment"), std::string::npos);
  }
  EXPECT_THROW(gguf_u64(~uint64_t{0}).as_int("k"), Error);
  EXPECT_THROW(gguf_f32(1.0f).as_int("k"), Error);
  EXPECT_THROW(gguf_u32(1).as_bool("k"), Error);
  EXPECT_THROW(gguf_strings({"a"}).as_string("k"), Error);
  EXPECT_THROW(gguf_ints(GgufValueType::kString, {1}),
               InternalError);  // a caller's mistake, not the file's
}

}  // namespace
}  // namespace inferd::testing
