// Runs `inferd` subcommands in-process for tests: registers them on a fresh CLI11 app, parses
// the arguments and returns what they printed on stdout (exceptions propagate).
#pragma once

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace inferd::testing_util {

inline std::string run_cli(const std::function<void(CLI::App&)>& register_commands,
                           const std::vector<std::string>& args) {
  CLI::App app{"test"};
  app.require_subcommand(1);
  register_commands(app);
  std::vector<const char*> argv = {"inferd"};
  for (const auto& a : args) argv.push_back(a.c_str());
  ::testing::internal::CaptureStdout();
  try {
    app.parse(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  } catch (...) {
    std::fflush(stdout);
    ::testing::internal::GetCapturedStdout();
    throw;
  }
  std::fflush(stdout);
  return ::testing::internal::GetCapturedStdout();
}

}  // namespace inferd::testing_util
