// The chat templates real models ship (tests/data/tokenizers/<model>/tokenizer_config.json,
// fetched by scripts/fetch-test-data.sh) rendered through ChatTemplate for every conversation of
// tests/data/chat_template_fixtures/<model>.json; the prompts must equal Python jinja2's
// byte-for-byte.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "jinja/chat_template.h"
#include "jinja/fixture_util.h"

namespace inferd {
namespace {

using jinja::testing::fixture_dir;
using jinja::testing::load_json;
using jinja::testing::tokenizers_dir;

// Every case of fixture `fx` through `tmpl`: the prompt jinja2 rendered, or its error.
void check_cases(ChatTemplate& tmpl, const nlohmann::ordered_json& fx, const std::string& model) {
  int checked = 0;
  for (const auto& c : fx["cases"]) {
    SCOPED_TRACE(model + "/" + c["name"].get<std::string>());
    const bool gen = c["add_generation_prompt"].get<bool>();
    if (c.contains("expected")) {
      std::string got;
      try {
        got = tmpl.apply(c["messages"], c["tools"], gen, c["kwargs"]);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "threw: " << e.what();
        continue;
      }
      EXPECT_EQ(got, c["expected"].get<std::string>());
    } else {
      try {
        std::string got = tmpl.apply(c["messages"], c["tools"], gen, c["kwargs"]);
        ADD_FAILURE() << "expected error '" << c["error"].get<std::string>() << "', got: " << got;
      } catch (const jinja::TemplateError& e) {
        if (c["error_type"] == "raise_exception") {
          EXPECT_EQ(e.kind(), jinja::TemplateError::Kind::kRaised);
          EXPECT_EQ(std::string(e.what()), c["error"].get<std::string>());
        } else {
          EXPECT_EQ(e.kind(), jinja::TemplateError::Kind::kRuntime) << e.what();
        }
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 40);
}

void check_model(const std::string& model) {
  const std::string dir = tokenizers_dir() + "/" + model;
  ASSERT_TRUE(std::filesystem::exists(dir + "/tokenizer_config.json"))
      << dir
      << "/tokenizer_config.json is missing: run scripts/fetch-test-data.sh to fetch the tokenizer "
         "files";
  auto fx = load_json(fixture_dir() + "/" + model + ".json");
  const std::string source = fx["source"].get<std::string>();
  ChatTemplate tmpl = source == "tokenizer_config.json"
                          ? ChatTemplate::from_model_dir(dir)
                          : ChatTemplate::from_file(fixture_dir() + "/" + source, dir);
  tmpl.set_now(jinja::testing::fixture_now);
  // The special tokens the fixture script saw.
  std::map<std::string, std::string> want_tokens;
  for (auto it = fx["special_tokens"].begin(); it != fx["special_tokens"].end(); ++it)
    want_tokens[it.key()] = it.value().get<std::string>();
  EXPECT_EQ(tmpl.special_tokens(), want_tokens);
  check_cases(tmpl, fx, model);
}

TEST(ChatTemplateReal, Llama2) {
  check_model("llama2");
}
TEST(ChatTemplateReal, Llama3) {
  check_model("llama3");
}
TEST(ChatTemplateReal, Llama3_1) {
  check_model("llama3_1");
}
TEST(ChatTemplateReal, Qwen3) {
  check_model("qwen3");
}
TEST(ChatTemplateReal, Gemma3) {
  check_model("gemma3");
}
TEST(ChatTemplateReal, DeepseekV3) {
  check_model("deepseek_v3");
}
// gpt-oss's harmony template (committed: gpt_oss_chat_template.jinja), with its special tokens.
TEST(ChatTemplateReal, GptOss) {
  auto fx = load_json(fixture_dir() + "/gpt_oss.json");
  std::map<std::string, std::string> tokens;
  for (auto it = fx["special_tokens"].begin(); it != fx["special_tokens"].end(); ++it)
    tokens[it.key()] = it.value().get<std::string>();
  std::ifstream in(fixture_dir() + "/" + fx["source"].get<std::string>());
  ASSERT_TRUE(in) << fx["source"];
  const std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ChatTemplate tmpl(source, tokens);
  tmpl.set_now(jinja::testing::fixture_now);
  check_cases(tmpl, fx, "gpt_oss");
}

}  // namespace
}  // namespace inferd

namespace inferd {
namespace {

// tests/data/chat_template_fixtures/styles.json: templates in the style of other model families,
// rendered for the same conversations.
TEST(ChatTemplateStyles, MatchPythonJinja2) {
  auto fx = load_json(fixture_dir() + "/styles.json");
  std::map<std::string, std::string> tokens;
  for (auto it = fx["special_tokens"].begin(); it != fx["special_tokens"].end(); ++it)
    tokens[it.key()] = it.value().get<std::string>();
  int checked = 0;
  for (const auto& t : fx["templates"]) {
    ChatTemplate tmpl(t["template"].get<std::string>(), tokens);
    tmpl.set_now(jinja::testing::fixture_now);
    for (const auto& c : t["cases"]) {
      const auto& conv = fx["conversations"][c["conversation"].get<std::string>()];
      SCOPED_TRACE(t["name"].get<std::string>() + "/" + c["conversation"].get<std::string>() +
                   (c["add_generation_prompt"].get<bool>() ? "" : "_nogen"));
      try {
        std::string got = tmpl.apply(conv["messages"], conv["tools"],
                                     c["add_generation_prompt"].get<bool>(), conv["kwargs"]);
        if (c.contains("expected"))
          EXPECT_EQ(got, c["expected"].get<std::string>());
        else
          ADD_FAILURE() << "expected error '" << c["error"].get<std::string>() << "', got: " << got;
      } catch (const jinja::TemplateError& e) {
        if (c.contains("expected")) {
          ADD_FAILURE() << "threw: " << e.what();
        } else if (c["error_type"] == "raise_exception") {
          EXPECT_STREQ(e.what(), c["error"].get<std::string>().c_str());
        } else {
          EXPECT_EQ(e.kind(), jinja::TemplateError::Kind::kRuntime) << e.what();
          EXPECT_EQ(e.message(), c["error"].get<std::string>());
        }
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 200);
}

}  // namespace
}  // namespace inferd
