// `inferd tokenize` / `inferd detokenize` through their CLI11 registration.
#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli_test_util.h"
#include "core/error.h"
#include "tokenizer_fixtures.h"

namespace inferd::cli {
void register_tokenizer_commands(CLI::App& app);
}

namespace inferd::testing {
namespace {

std::string run_cli(const std::vector<std::string>& args) {
  return testing_util::run_cli(cli::register_tokenizer_commands, args);
}

TEST(TokenizerCli, TokenizeAndDetokenize) {
  const std::string dir = tokenizer_dir("llama3_1");
  const Tokenizer& tok = fixture_tokenizer("llama3_1");
  const std::string text = "Hello <|eot_id|> world 😀";
  std::string want;
  for (int32_t id : tok.encode(text, false)) want += (want.empty() ? "" : ",") + std::to_string(id);
  EXPECT_EQ(run_cli({"tokenize", dir, text}), want + "\n");
  EXPECT_EQ(run_cli({"tokenize", dir, text, "--add-special-tokens"}), "128000," + want + "\n");
  EXPECT_EQ(run_cli({"detokenize", dir, want}), text);
  EXPECT_EQ(run_cli({"detokenize", dir, "128000," + want}), "<|begin_of_text|>" + text);
  EXPECT_EQ(run_cli({"detokenize", dir, "128000, " + want + ",", "--skip-special-tokens"}),
            "Hello  world 😀");
  EXPECT_EQ(run_cli({"detokenize", dir, ""}), "");
}

TEST(TokenizerCli, Errors) {
  const std::string dir = tokenizer_dir("qwen3");
  EXPECT_THROW(run_cli({"tokenize", "/no/such/model", "x"}), Error);
  EXPECT_THROW(run_cli({"detokenize", dir, "1,x,3"}), Error);
  EXPECT_THROW(run_cli({"detokenize", dir, "1,-2"}), Error);
  EXPECT_THROW(run_cli({"detokenize", dir, "99999999"}), Error);
  EXPECT_THROW(run_cli({"detokenize", dir, "1,,2"}), Error);
  EXPECT_THROW(run_cli({"tokenize", dir}), CLI::ParseError);
}

}  // namespace
}  // namespace inferd::testing
