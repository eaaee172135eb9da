// --task and the model's pooling read from temporary model directories as vLLM reads them:
// sentence-transformers' modules.json, Pooling config and Normalize module, Matryoshka sizes in
// config.json, --pooler-config over them, and every unsupported setting an Error naming it.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "llm/pooling_config.h"
#include "llm/resolved_config.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;

class PoolingConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("inferd-pooling-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write("config.json", R"({"architectures": ["Qwen3ForCausalLM"]})");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& rel, const std::string& text) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  // A sentence-transformers layout: Transformer, Pooling (with `pooling_json`), and Normalize
  // when asked.
  void sentence_transformers(const std::string& pooling_json, bool normalize,
                             const std::string& extra_module = "") {
    std::string modules =
        R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})";
    if (normalize)
      modules +=
          R"(, {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})";
    modules += extra_module + "]";
    write("modules.json", modules);
    write("1_Pooling/config.json", pooling_json);
  }
  EngineConfig resolve(const std::string& task, const std::string& pooler_config = "") {
    EngineConfig e;
    resolve_task_and_pooling(dir_.string(), task, pooler_config, e);
    return e;
  }
  std::string error_of(const std::string& task, const std::string& pooler_config = "") {
    try {
      resolve(task, pooler_config);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

constexpr const char* kLastToken =
    R"({"word_embedding_dimension": 1024, "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false, "pooling_mode_weightedmean_tokens": false,
        "pooling_mode_lasttoken": true, "include_prompt": true})";

TEST_F(PoolingConfigTest, AutoEmbedsOnlyWithModulesJson) {
  EXPECT_EQ(resolve("auto").task, ModelTask::kGenerate);
  EXPECT_FALSE(has_sentence_transformers_config(dir_.string()));
  sentence_transformers(kLastToken, true);
  EXPECT_TRUE(has_sentence_transformers_config(dir_.string()));
  EXPECT_EQ(resolve("auto").task, ModelTask::kEmbed);
  // --task generate wins, and the sentence-transformers files are then not read.
  write("1_Pooling/config.json", R"({"pooling_mode_max_tokens": true})");
  EXPECT_EQ(resolve("generate").task, ModelTask::kGenerate);
  EXPECT_NE(error_of("auto").find("pooling_mode_max_tokens"), std::string::npos);
}

TEST_F(PoolingConfigTest, EmbedWithoutSentenceTransformersIsLastTokenNormalized) {
  const EngineConfig e = resolve("embed");
  EXPECT_EQ(e.task, ModelTask::kEmbed);
  EXPECT_EQ(e.pooling.type, PoolingType::kLast);
  EXPECT_TRUE(e.pooling.normalize);
  EXPECT_FALSE(e.pooling.matryoshka);
  EXPECT_TRUE(e.pooling.dimensions.empty());
}

TEST_F(PoolingConfigTest, Qwen3EmbeddingLayout) {
  sentence_transformers(kLastToken, true);
  write("config_sentence_transformers.json",
        R"({"prompts": {"query": "Instruct: Given a web search query\nQuery:", "document": ""},
            "default_prompt_name": null, "similarity_fn_name": "cosine"})");
  const EngineConfig e = resolve("embed");
  EXPECT_EQ(e.pooling.type, PoolingType::kLast);
  EXPECT_TRUE(e.pooling.normalize);
}

TEST_F(PoolingConfigTest, MeanAndClsAndNormalizeModule) {
  sentence_transformers(R"({"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false})",
                        false);
  EngineConfig e = resolve("embed");
  EXPECT_EQ(e.pooling.type, PoolingType::kMean);
  EXPECT_FALSE(e.pooling.normalize);  // no Normalize module
  sentence_transformers(R"({"pooling_mode_cls_token": true})", true);
  e = resolve("embed");
  EXPECT_EQ(e.pooling.type, PoolingType::kCls);
  EXPECT_TRUE(e.pooling.normalize);
  // sentence-transformers' newer single key.
  sentence_transformers(R"({"pooling_mode": "mean"})", true);
  EXPECT_EQ(resolve("embed").pooling.type, PoolingType::kMean);
}

TEST_F(PoolingConfigTest, WhatCannotBeHonouredIsAnErrorNamingIt) {
  struct Case {
    std::string pooling;
    std::string extra_module;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {R"({"pooling_mode_max_tokens": true})", "",
       "1_Pooling/config.json: pooling_mode_max_tokens"},
      {R"({"pooling_mode_weightedmean_tokens": true})", "", "pooling_mode_weightedmean_tokens"},
      {R"({"pooling_mode_mean_sqrt_len_tokens": true})", "", "pooling_mode_mean_sqrt_len_tokens"},
      {R"({"pooling_mode_lasttoken": true, "pooling_mode_mean_tokens": true})", "",
       "pooling_mode_mean_tokens"},
      {R"({"pooling_mode_lasttoken": false})", "", "no pooling mode"},
      {R"({"pooling_mode_lasttoken": true, "include_prompt": false})", "", "include_prompt"},
      {R"({"pooling_mode": "max"})", "", "pooling_mode 'max'"},
      {kLastToken,
       R"(, {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})",
       "sentence_transformers.models.Dense"},
      {"not json", "", "1_Pooling/config.json: not valid JSON"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.pooling + c.extra_module);
    sentence_transformers(c.pooling, true, c.extra_module);
    EXPECT_NE(error_of("embed").find(c.expect), std::string::npos) << error_of("embed");
  }
  sentence_transformers(kLastToken, true);
  fs::remove(dir_ / "1_Pooling" / "config.json");
  EXPECT_NE(error_of("embed").find("1_Pooling/config.json does not exist"), std::string::npos);
  sentence_transformers(kLastToken, true);
  write("sentence_bert_config.json", R"({"max_seq_length": 512, "do_lower_case": true})");
  EXPECT_NE(error_of("embed").find("do_lower_case"), std::string::npos);
  write("sentence_bert_config.json", R"({"max_seq_length": 512, "do_lower_case": false})");
  EXPECT_EQ(error_of("embed"), "");
  write("modules.json", R"({"not": "a list"})");
  EXPECT_NE(error_of("embed").find("modules.json"), std::string::npos);
}

TEST_F(PoolingConfigTest, MatryoshkaFromConfigJson) {
  write("config.json", R"({"is_matryoshka": true})");
  EngineConfig e = resolve("embed");
  EXPECT_TRUE(e.pooling.matryoshka);
  EXPECT_TRUE(e.pooling.dimensions.empty());
  write("config.json", R"({"matryoshka_dimensions": [256, 512, 1024]})");
  e = resolve("embed");
  EXPECT_TRUE(e.pooling.matryoshka);
  EXPECT_EQ(e.pooling.dimensions, (std::vector<int32_t>{256, 512, 1024}));
  write("config.json", R"({"matryoshka_dimensions": [256, -1]})");
  EXPECT_NE(error_of("embed").find("matryoshka_dimensions"), std::string::npos);
  write("config.json", R"({"is_matryoshka": "yes"})");
  EXPECT_NE(error_of("embed").find("is_matryoshka"), std::string::npos);
}

TEST_F(PoolingConfigTest, PoolerConfigOverridesTheModel) {
  sentence_transformers(kLastToken, true);
  EngineConfig e = resolve("embed", R"({"pooling_type": "MEAN", "normalize": false})");
  EXPECT_EQ(e.pooling.type, PoolingType::kMean);
  EXPECT_FALSE(e.pooling.normalize);
  e = resolve("auto", R"({"seq_pooling_type": "CLS", "use_activation": true})");
  EXPECT_EQ(e.pooling.type, PoolingType::kCls);
  EXPECT_TRUE(e.pooling.normalize);
  e = resolve("embed", R"({"normalize": false})");  // the type stays the model's
  EXPECT_EQ(e.pooling.type, PoolingType::kLast);
  EXPECT_FALSE(e.pooling.normalize);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"pooling_type": "ALL"})", "pooling_type \"ALL\""},
      {R"({"pooling_type": "MEAN", "seq_pooling_type": "CLS"})", "disagree"},
      {R"({"normalize": "yes"})", "normalize must be true or false"},
      {R"({"normalize": true, "use_activation": false})", "disagree"},
      {R"({"dimensions": 128})", "key 'dimensions'"},
      {R"({"enable_chunked_processing": true})", "enable_chunked_processing"},
      {R"({"foo": 1})", "key 'foo'"},
      {R"([1])", "expected a JSON object"},
      {R"({"pooling_type": )", "not valid JSON"},
  };
  for (const auto& [json_text, expect] : bad) {
    SCOPED_TRACE(json_text);
    const std::string err = error_of("embed", json_text);
    EXPECT_NE(err.find("--pooler-config"), std::string::npos) << err;
    EXPECT_NE(err.find(expect), std::string::npos) << err;
  }
  EXPECT_NE(error_of("generate", R"({"pooling_type": "MEAN"})").find("--task embed"),
            std::string::npos);
  EXPECT_NE(error_of("classify").find("unknown --task 'classify'"), std::string::npos);
}

TEST_F(PoolingConfigTest, EngineArgsCarryTaskAndPoolingIntoTheEngineConfig) {
  sentence_transformers(R"({"pooling_mode_mean_tokens": true})", true);
  EngineArgs a;
  a.model.model = dir_.string();
  EXPECT_EQ(a.model.task, "auto");
  ResolvedConfig rc = resolve_engine_args(a, 0, false);
  EXPECT_EQ(rc.engine.task, ModelTask::kEmbed);
  EXPECT_EQ(rc.engine.pooling.type, PoolingType::kMean);
  a.model.task = "generate";
  EXPECT_EQ(resolve_engine_args(a, 0, false).engine.task, ModelTask::kGenerate);
  a.model.task = "embed";
  a.model.pooler_config = R"({"pooling_type": "CLS"})";
  rc = resolve_engine_args(a, 0, false);
  EXPECT_EQ(rc.engine.pooling.type, PoolingType::kCls);
}

TEST(TaskFlags, TaskAndPoolerConfigParse) {
  auto parse = [](std::vector<std::string> args) {
    CLI::App app{"test"};
    EngineArgs a;
    cli::add_task_flags(&app, a);
    std::vector<const char*> argv = {"inferd"};
    for (const auto& s : args) argv.push_back(s.c_str());
    app.parse(int(argv.size()), const_cast<char**>(argv.data()));
    return a;
  };
  EXPECT_EQ(parse({}).model.task, "auto");
  EXPECT_EQ(parse({"--task", "embed"}).model.task, "embed");
  EXPECT_EQ(parse({"--pooler-config", R"({"pooling_type":"MEAN"})"}).model.pooler_config,
            R"({"pooling_type":"MEAN"})");
  EXPECT_EQ(parse({"--override-pooler-config", "{}"}).model.pooler_config, "{}");
  EXPECT_THROW(parse({"--task", "classify"}), CLI::ValidationError);
}

}  // namespace
}  // namespace inferd
