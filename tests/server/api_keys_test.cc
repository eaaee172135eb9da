// API keys: the key file (comments, blank lines, errors at start), several keys from commas, the
// constant-time match and the Bearer check; and `inferd serve --api-key-file` failing at start.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"
#include "server/api_error.h"
#include "server/api_keys.h"

namespace inferd::server {
namespace {

namespace fs = std::filesystem;

std::string write_temp(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("inferd_api_keys_test_" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(ApiKeys, FileOneKeyALineWithCommentsAndBlanks) {
  const std::string p =
      write_temp("ok", "# production keys\n\nsk-one\n  sk-two  \r\n\t# indented comment\nsk-3,x\n");
  EXPECT_EQ(read_api_key_file(p), (std::vector<std::string>{"sk-one", "sk-two", "sk-3,x"}));
  fs::remove(p);
}

TEST(ApiKeys, FileErrorsNameTheFile) {
  const std::string missing = (fs::temp_directory_path() / "inferd_no_such_key_file").string();
  std::string e = error_of([&] { read_api_key_file(missing); });
  EXPECT_NE(e.find(missing), std::string::npos) << e;
  EXPECT_NE(e.find("cannot read"), std::string::npos) << e;

  const std::string empty = write_temp("empty", "");
  e = error_of([&] { read_api_key_file(empty); });
  EXPECT_NE(e.find(empty), std::string::npos) << e;
  EXPECT_NE(e.find("holds no key"), std::string::npos) << e;

  const std::string comments = write_temp("comments", "# only\n\n   \n#another\n");
  e = error_of([&] { read_api_key_file(comments); });
  EXPECT_NE(e.find("holds no key"), std::string::npos) << e;

  e = error_of([&] { read_api_key_file(fs::temp_directory_path().string()); });
  EXPECT_FALSE(e.empty()) << "a directory is not a key file";
  fs::remove(empty);
  fs::remove(comments);
}

TEST(ApiKeys, CollectSplitsCommasAndAddsTheFile) {
  const std::string p = write_temp("collect", "sk-file\n");
  EXPECT_EQ(collect_api_keys({"a, b", "c", ",,"}, p),
            (std::vector<std::string>{"a", "b", "c", "sk-file"}));
  EXPECT_TRUE(collect_api_keys({}, "").empty());
  EXPECT_THROW(collect_api_keys({"a"}, p + ".missing"), Error);
  fs::remove(p);
}

TEST(ApiKeys, MatchIsExact) {
  const std::vector<std::string> keys = {"sk-secret", "sk-other"};
  EXPECT_TRUE(api_key_matches("sk-secret", keys));
  EXPECT_TRUE(api_key_matches("sk-other", keys));
  EXPECT_FALSE(api_key_matches("sk-secre", keys));
  EXPECT_FALSE(api_key_matches("sk-secrett", keys));
  EXPECT_FALSE(api_key_matches("sk-secreT", keys));
  EXPECT_FALSE(api_key_matches("", keys));
  EXPECT_FALSE(api_key_matches(std::string("sk-secret\0", 10), keys));
  EXPECT_FALSE(api_key_matches("sk-secret", {}));
}

TEST(ApiKeys, BearerCheck) {
  const std::vector<std::string> keys = {"k1", "k2"};
  EXPECT_NO_THROW(check_bearer("", {}));
  EXPECT_NO_THROW(check_bearer("Bearer k1", keys));
  EXPECT_NO_THROW(check_bearer("bearer k2", keys));
  for (const char* h : {"", "k1", "Bearer ", "Bearer k3", "Basic k1", "Bearer k1 "}) {
    SCOPED_TRACE(h);
    try {
      check_bearer(h, keys);
      FAIL() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 401);
      EXPECT_EQ(e.code(), "invalid_api_key");
    }
  }
}

// The real binary: a bad --api-key-file stops `inferd serve` (before the model loads) and
// `inferd router` at start.
TEST(ApiKeys, ServeAndRouterFailAtStartOnABadKeyFile) {
  const std::string missing = (fs::temp_directory_path() / "inferd_no_such_key_file").string();
  const std::string empty = write_temp("serve_empty", "# nothing\n");
  for (const std::string& f : {missing, empty})
    for (const char* sub :
         {"serve --load-format dummy --port 0", "router --backend http://127.0.0.1:9 --port 0"}) {
      const std::string cmd =
          std::string(INFERD_BINARY) + " " + sub + " --api-key-file '" + f + "' 2>&1";
      FILE* p = popen(cmd.c_str(), "r");
      ASSERT_NE(p, nullptr);
      std::string out;
      char buf[4096];
      for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
      const int rc = pclose(p);
      EXPECT_NE(rc, 0) << out;
      EXPECT_NE(out.find("--api-key-file '" + f + "'"), std::string::npos) << out;
    }
  fs::remove(empty);
}

}  // namespace
}  // namespace inferd::server
