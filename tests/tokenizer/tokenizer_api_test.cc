// Tokenizer API beyond the reference fixtures: configuration files, errors, special-token
// control and concurrent use.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include <thread>

#include "core/error.h"
#include "tokenizer_fixtures.h"

namespace inferd::testing {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("inferd_tok_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

TEST(TokenizerApi, MissingDirectoryOrFileIsAnError) {
  try {
    Tokenizer::from_dir("/nonexistent/model/dir");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model/dir"), std::string::npos) << e.what();
  }
  const fs::path empty = temp_dir("empty");
  try {
    Tokenizer::from_dir(empty.string());
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  write(empty / "tokenizer.json", "{not json");
  EXPECT_THROW(Tokenizer::from_dir(empty.string()), Error);
  write(empty / "tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  EXPECT_THROW(Tokenizer::from_dir(empty.string()), Error);
  fs::remove_all(empty);
}

TEST(TokenizerApi, InvalidUtf8IsAnError) {
  const Tokenizer& t = fixture_tokenizer("qwen3");
  EXPECT_THROW(t.encode("abc\xff", false), Error);
  EXPECT_THROW(t.encode("\xe4\xbd", false), Error);
}

TEST(TokenizerApi, ConfigBosEos) {
  const Tokenizer& l31 = fixture_tokenizer("llama3_1");
  EXPECT_EQ(l31.bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(l31.bos_id(), 128000);
  EXPECT_EQ(l31.eos_token(), "<|eot_id|>");
  EXPECT_EQ(l31.eos_id(), 128009);
  EXPECT_TRUE(l31.add_bos_token());  // from the TemplateProcessing post-processor
  EXPECT_EQ(l31.special_prefix(), std::vector<int32_t>{128000});
  EXPECT_EQ(l31.encode("hi", true).front(), 128000);
  EXPECT_NE(l31.encode("hi", false).front(), 128000);

  const Tokenizer& l3 = fixture_tokenizer("llama3");
  EXPECT_FALSE(l3.add_bos_token());  // ByteLevel post-processor only, no add_bos_token
  EXPECT_EQ(l3.encode("hi", true), l3.encode("hi", false));

  const Tokenizer& q = fixture_tokenizer("qwen3");
  EXPECT_EQ(q.bos_id(), std::nullopt);
  EXPECT_EQ(q.eos_id(), 151645);
  EXPECT_FALSE(q.add_bos_token());
  EXPECT_EQ(q.eos_ids(), std::vector<int32_t>{151645});
  ASSERT_TRUE(q.chat_template().has_value());
  EXPECT_NE(q.chat_template()->find("<|im_start|>"), std::string::npos);

  const Tokenizer& l2 = fixture_tokenizer("llama2");
  EXPECT_EQ(l2.bos_id(), 1);
  EXPECT_EQ(l2.eos_id(), 2);
  EXPECT_TRUE(l2.add_bos_token());
  EXPECT_FALSE(l2.chat_template().has_value());

  const Tokenizer& g = fixture_tokenizer("gemma3");
  EXPECT_EQ(g.eos_token(), "<end_of_turn>");
  EXPECT_EQ(g.eos_id(), g.token_to_id("<end_of_turn>"));

  const Tokenizer& d = fixture_tokenizer("deepseek_v3");  // tokens given as AddedToken objects
  EXPECT_EQ(d.bos_id(), 0);
  EXPECT_EQ(d.eos_id(), 1);
}

TEST(TokenizerApi, GenerationConfigEosAndChatTemplateFile) {
  const std::string src = tokenizer_dir("llama3_1");
  const fs::path dir = temp_dir("genconfig");
  fs::create_symlink(fs::path(src) / "tokenizer.json", dir / "tokenizer.json");
  fs::copy_file(fs::path(src) / "tokenizer_config.json", dir / "tokenizer_config.json");
  write(dir / "generation_config.json",
        R"({"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})");
  write(dir / "chat_template.jinja", "{{ messages }}");
  const Tokenizer t = Tokenizer::from_dir(dir.string());
  EXPECT_EQ(t.eos_ids(), (std::vector<int32_t>{128009, 128001, 128008}));
  EXPECT_EQ(t.chat_template(), "{{ messages }}");
  EXPECT_EQ(t.chat_template("tool_use"), std::nullopt);
  fs::remove(dir / "generation_config.json");
  write(dir / "config.json", R"({"eos_token_id": 128001})");
  EXPECT_EQ(Tokenizer::from_dir(dir.string()).eos_ids(), (std::vector<int32_t>{128009, 128001}));
  fs::remove_all(dir);
}

TEST(TokenizerApi, NamedChatTemplates) {
  const nlohmann::json tj = nlohmann::json::parse(R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
    "added_tokens": [{"id": 3, "content": "<s>", "special": true}]})");
  const nlohmann::json cfg = nlohmann::json::parse(R"({"bos_token": "<s>", "chat_template": [
    {"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  const Tokenizer t = Tokenizer::from_json(tj, cfg);
  EXPECT_EQ(t.chat_template(), "D");
  EXPECT_EQ(t.chat_template("tool_use"), "T");
  EXPECT_EQ(t.bos_id(), 3);
  EXPECT_EQ(t.encode("abab<s>a", false), (std::vector<int32_t>{2, 2, 3, 0}));
  EXPECT_EQ(t.vocab_size(), 4u);
  EXPECT_EQ(t.id_limit(), 4u);
}

// Found by fuzz_tokenizer: keys missing from objects of tokenizer.json were read with json's
// const operator[], which is undefined behaviour (ASan: heap-buffer-overflow); each is now an
// Error naming tokenizer.json.
TEST(TokenizerApi, MissingKeysInTokenizerJsonAreErrors) {
  const std::string model =
      R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "<s>": 2}, "merges": []})";
  const char* cases[] = {
      // a SpecialToken piece without "id"
      R"("post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {}}],
          "special_tokens": {}})",
      // a special token entry without "ids"
      R"("post_processor": {"type": "TemplateProcessing",
          "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {"<s>": {}}})",
      // a Sequence decoder without "decoders"
      R"("decoder": {"type": "Sequence"})",
  };
  for (const char* c : cases) {
    SCOPED_TRACE(c);
    const auto j = nlohmann::json::parse("{" + model + ", " + c + "}");
    try {
      (void)Tokenizer::from_json(j);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
    }
  }
  // Without "model" at all.
  EXPECT_THROW((void)Tokenizer::from_json(nlohmann::json::parse(R"({"added_tokens": []})")), Error);
}

// Found by fuzz_tokenizer: a vocab id 1.7e51 was cast to an integer with undefined behaviour
// (UBSan). Ids and counts must be integers in range; ids at most 2^24 (a larger one would size
// the vocabulary tables to it).
TEST(TokenizerApi, NumbersOutOfRangeInTokenizerJsonAreErrors) {
  const char* cases[] = {
      R"({"model": {"type": "BPE", "vocab": {"a": 1.7e51}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0.5}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 3000000000}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 16777216}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
          "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "a"}}],
          "special_tokens": {"a": {"id": "a", "ids": [1e40]}}}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
          "post_processor": {"type": "BertProcessing", "cls": ["a", -1], "sep": ["a", 0]}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
          "decoder": {"type": "Strip", "content": " ", "start": 1e30, "stop": 0}})",
  };
  for (const char* c : cases) {
    SCOPED_TRACE(c);
    try {
      (void)Tokenizer::from_json(nlohmann::json::parse(c));
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
    }
  }
}

TEST(TokenizerApi, ParseSpecialOff) {
  const Tokenizer& q = fixture_tokenizer("qwen3");
  const std::string text = "<|im_start|>user\nhi<|im_end|><tool_call>";
  const auto parsed = q.encode(text, false);
  EXPECT_EQ(parsed.front(), 151644);
  const auto plain = q.encode(text, false, /*parse_special=*/false);
  for (int32_t id : plain) EXPECT_FALSE(q.is_special(id)) << id;
  // non-special added tokens are still recognised, as tokenizers' split_special_tokens does
  EXPECT_EQ(plain.back(), 151657);
  EXPECT_EQ(q.decode(plain, false), text);
  EXPECT_EQ(q.decode(plain, true), text);
  EXPECT_TRUE(q.is_special(151644));
  EXPECT_FALSE(q.is_special(151657));
  EXPECT_FALSE(q.is_special(9707));
}

TEST(TokenizerApi, UnknownIdsAreDroppedByDecode) {
  const Tokenizer& t = fixture_tokenizer("llama3");
  const std::vector<int32_t> ids = {9906, -5, 1000000, 1917};
  EXPECT_EQ(t.decode(ids, false), t.decode(std::vector<int32_t>{9906, 1917}, false));
  EXPECT_FALSE(t.is_valid_id(-5));
  EXPECT_FALSE(t.is_valid_id(1000000));
  EXPECT_TRUE(t.is_valid_id(128255));
  EXPECT_EQ(t.id_limit(), 128256u);
}

TEST(TokenizerApi, ConcurrentEncodeMatchesSequential) {
  const Tokenizer& t = fixture_tokenizer("llama3_1");
  const auto& corpus = fixture_corpus();
  std::vector<std::vector<int32_t>> want;
  for (const auto& text : corpus) want.push_back(t.encode(text, true));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 3; ++rep) {
        for (size_t i = 0; i < corpus.size(); ++i) {
          const size_t j = (i * 7 + static_cast<size_t>(k) * 13) % corpus.size();
          if (t.encode(corpus[j], true) != want[j]) ++mismatches[static_cast<size_t>(k)];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(TokenizerApi, LongInputs) {
  // Long words and long whitespace runs go through the uncached BPE path and the regex JIT stack.
  const Tokenizer& t = fixture_tokenizer("qwen3");
  std::string big;
  for (int i = 0; i < 2000; ++i) big += "tokenization ";
  big += std::string(100000, ' ') + std::string(50000, 'x') + "\n";
  const auto ids = t.encode(big, false);
  EXPECT_EQ(t.decode(ids, false), big);
  const Tokenizer& l2 = fixture_tokenizer("llama2");
  const std::string cjk = [] {
    std::string s;
    for (int i = 0; i < 5000; ++i) s += "\xE6\xBC\xA2\xF0\x9F\x98\x80";  // 漢😀
    return s;
  }();
  EXPECT_EQ(l2.decode(l2.encode(cjk, false), false), cjk);
}

}  // namespace
}  // namespace inferd::testing
