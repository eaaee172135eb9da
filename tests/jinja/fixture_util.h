// Helpers shared by the chat-template tests.
#pragma once

#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace inferd::jinja::testing {

inline std::string fixture_dir() {
  return std::string(INFERD_TEST_DATA_DIR) + "/chat_template_fixtures";
}
inline std::string tokenizers_dir() {
  return std::string(INFERD_TEST_DATA_DIR) + "/tokenizers";
}

inline nlohmann::ordered_json load_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::ordered_json::parse(ss.str());
}

// The time tools/make_chat_template_fixtures.py pins strftime_now to (2025-03-07 14:05:09).
inline std::tm fixture_now() {
  std::tm tm{};
  tm.tm_year = 2025 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 7;
  tm.tm_hour = 14;
  tm.tm_min = 5;
  tm.tm_sec = 9;
  std::time_t t = timegm(&tm);  // fills tm_wday and tm_yday
  std::tm out{};
  gmtime_r(&t, &out);
  return out;
}

}  // namespace inferd::jinja::testing
