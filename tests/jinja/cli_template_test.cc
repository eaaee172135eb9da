// `inferd template` through its CLI11 registration: the printed prompt equals the fixture
// prompt from Python jinja2, byte for byte (no newline added), and bad input is an Error.
#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_test_util.h"
#include "core/error.h"
#include "jinja/fixture_util.h"

namespace inferd::cli {
void register_template_command(CLI::App& app);
}

namespace inferd {
namespace {

using jinja::testing::fixture_dir;
using jinja::testing::load_json;
using jinja::testing::tokenizers_dir;
namespace fs = std::filesystem;

std::string run_cli(const std::vector<std::string>& args) {
  return testing_util::run_cli(cli::register_template_command, args);
}

std::string write_temp(const std::string& name, const std::string& text) {
  fs::path p = fs::temp_directory_path() /
               ("inferd_cli_template_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

const nlohmann::ordered_json& find_case(const nlohmann::ordered_json& fx, const std::string& name) {
  for (const auto& c : fx["cases"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no fixture case " + name);
}

std::string model_dir(const std::string& model) {
  const std::string dir = tokenizers_dir() + "/" + model;
  if (!fs::exists(dir + "/tokenizer_config.json"))
    throw std::runtime_error(
        dir + " is missing: run scripts/fetch-test-data.sh to fetch the tokenizer files");
  return dir;
}

TEST(TemplateCli, PrintsExactlyThePrompt) {
  const std::string dir = model_dir("qwen3");
  auto fx = load_json(fixture_dir() + "/qwen3.json");
  for (const std::string name :
       {"tool_call_roundtrip_dict_args", "tool_call_roundtrip_dict_args_nogen", "unicode"}) {
    SCOPED_TRACE(name);
    const auto& c = find_case(fx, name);
    std::vector<std::string> args = {"template", dir, "--messages",
                                     write_temp("m.json", c["messages"].dump())};
    if (!c["tools"].is_null()) {
      args.push_back("--tools");
      args.push_back(write_temp("t.json", c["tools"].dump()));
    }
    if (!c["add_generation_prompt"].get<bool>()) args.push_back("--no-generation-prompt");
    EXPECT_EQ(run_cli(args), c["expected"].get<std::string>());
  }
  // An OpenAI-style request body works as the messages file, and kwargs reach the template.
  const auto& c = find_case(fx, "enable_thinking_false");
  nlohmann::ordered_json body = {{"model", "x"}, {"messages", c["messages"]}};
  EXPECT_EQ(run_cli({"template", dir, "--messages", write_temp("body.json", body.dump()),
                     "--chat-template-kwargs", R"({"enable_thinking": false})"}),
            c["expected"].get<std::string>());
}

TEST(TemplateCli, ChatTemplateFileForAModelWithoutOne) {
  const std::string dir = model_dir("llama2");
  auto fx = load_json(fixture_dir() + "/llama2.json");
  const auto& c = find_case(fx, "multi_turn");
  const std::string msgs = write_temp("m2.json", c["messages"].dump());
  // Llama 2's tokenizer_config.json has no chat template: a clear error, unless one is given.
  try {
    run_cli({"template", dir, "--messages", msgs});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--chat-template"), std::string::npos) << e.what();
  }
  EXPECT_EQ(run_cli({"template", dir, "--messages", msgs, "--chat-template",
                     fixture_dir() + "/" + fx["source"].get<std::string>()}),
            c["expected"].get<std::string>());
}

TEST(TemplateCli, Errors) {
  const std::string dir = model_dir("gemma3");
  EXPECT_THROW(run_cli({"template", dir}), CLI::ParseError);
  EXPECT_THROW(run_cli({"template", dir, "--messages", "/no/such/file.json"}), Error);
  EXPECT_THROW(run_cli({"template", dir, "--messages", write_temp("bad.json", "[{")}), Error);
  EXPECT_THROW(
      run_cli({"template", dir, "--messages", write_temp("obj.json", R"({"role": "user"})")}),
      Error);
  EXPECT_THROW(run_cli({"template", "/no/such/model", "--messages", write_temp("ok.json", "[]")}),
               Error);
  // raise_exception in the template: the template's own message.
  try {
    run_cli(
        {"template", dir, "--messages",
         write_temp("alt.json",
                    R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])")});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "Conversation roles must alternate user/assistant/user/assistant/...");
  }
}

}  // namespace
}  // namespace inferd
