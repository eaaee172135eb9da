// API keys: the key file (comments, blank lines, errors at start), several keys from commas, the
// constant-time match and the Bearer check; and `inferd serve --api-key-file` failing at start.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/types.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"
#include "server/api_error.h"
#include "server/api_keys.h"
#include "server/test_client.h"

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

// The real binary with keys from INFERD_API_KEY (two, comma-separated) and from a key file: each
// key opens /v1, anything else is 401.
TEST(ApiKeys, ServeTakesKeysFromTheEnvironmentAndAFile) {
  const std::string file = write_temp("serve_keys", "# keys\n\nsk-file\n");
  const std::string cmd = std::string("echo $$; INFERD_API_KEY='sk-env1, sk-env2' exec ") +
                          INFERD_BINARY + " serve " + INFERD_SOURCE_DIR +
                          "/models/demo --host 127.0.0.1 --port 0 --no-ui --api-key-file '" + file +
                          "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[4096];
  ASSERT_NE(fgets(line, sizeof line, p), nullptr);
  const pid_t pid = pid_t(std::stol(line));
  std::string out;
  uint16_t port = 0;
  while (port == 0 && fgets(line, sizeof line, p)) {
    out += line;
    const std::string l(line);
    if (l.find("ready:") == std::string::npos) continue;
    const size_t at = l.find("http://127.0.0.1:");
    if (at != std::string::npos) port = uint16_t(std::stoi(l.substr(at + 17)));
  }
  if (port != 0) {
    using testing::get;
    EXPECT_EQ(get(port, "/v1/models").status, 401);
    EXPECT_EQ(get(port, "/v1/models", {{"Authorization", "Bearer sk-env1"}}).status, 200);
    EXPECT_EQ(get(port, "/v1/models", {{"Authorization", "Bearer sk-env2"}}).status, 200);
    EXPECT_EQ(get(port, "/v1/models", {{"Authorization", "Bearer sk-file"}}).status, 200);
    EXPECT_EQ(get(port, "/v1/models", {{"Authorization", "Bearer sk-env1, sk-env2"}}).status, 401);
    EXPECT_EQ(get(port, "/v1/models", {{"Authorization", "Bearer # keys"}}).status, 401);
  }
  kill(pid, SIGTERM);
  for (size_t n; (n = fread(line, 1, sizeof line, p)) > 0;) out.append(line, n);
  pclose(p);
  EXPECT_NE(port, 0) << "the server did not become ready:\n" << out;
  EXPECT_NE(out.find("api key on"), std::string::npos) << out;
  fs::remove(file);
}

}  // namespace
}  // namespace inferd::server
