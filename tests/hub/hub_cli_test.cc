// `inferd pull|ls|rm` and a command loading a model by hub name, run as the real binary against a
// local hub (fake_hub.h) serving a small checkpoint (tests/data/goldens/llama3); a corrupt weight
// file downloading while the model loads fails the start.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "fake_hub.h"

namespace fs = std::filesystem;
using inferd::testing::FakeHub;

namespace {

struct Result {
  int status = -1;
  std::string output;  // stdout and stderr
};

Result sh(const std::string& cmd) {
  Result r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;)
    r.output.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class HubCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = fs::temp_directory_path() / ("inferd_hub_cli_" + std::to_string(getpid()));
    fs::remove_all(cache_);
    hub_ = std::make_unique<FakeHub>(std::vector<inferd::testing::FakeHubRepo>{
        {"test-org/llama3", std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3"}});
  }
  void TearDown() override { fs::remove_all(cache_); }
  Result inferd(const std::string& args, const std::string& env = "") {
    return sh("env HF_HUB_CACHE=" + cache_.string() + " HF_ENDPOINT=" + hub_->endpoint() + " " +
              env + " " + INFERD_BINARY + " " + args + " </dev/null");
  }
  fs::path cache_;
  std::unique_ptr<FakeHub> hub_;
};

}  // namespace

TEST_F(HubCliTest, PullListRunRemove) {
  Result r = inferd("ls");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("no models in the Hugging Face cache"), std::string::npos) << r.output;
  r = inferd("pull test-org/llama3");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string snap =
      (cache_ / "models--test-org--llama3" / "snapshots" / hub_->commit("test-org/llama3"))
          .string();
  EXPECT_NE(r.output.find(snap + "\n"), std::string::npos) << r.output;
  r = inferd("ls");
  EXPECT_NE(r.output.find("test-org/llama3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("main (" + hub_->commit("test-org/llama3").substr(0, 8) + ")"),
            std::string::npos)
      << r.output;
  // A command that loads a model takes the hub name, from the cache when offline.
  r = inferd("run test-org/llama3 --prompt-ids 1,2,3 --max-tokens 2 --device cpu",
             "HF_HUB_OFFLINE=1");
  EXPECT_EQ(r.status, 0) << r.output;
  r = inferd("run test-org/absent --prompt-ids 1 --max-tokens 1 --device cpu", "HF_HUB_OFFLINE=1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("HF_HUB_OFFLINE is set and test-org/absent is not in the Hugging Face "
                          "cache"),
            std::string::npos)
      << r.output;
  r = inferd("rm test-org/llama3");  // no terminal to confirm on
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("give -y"), std::string::npos) << r.output;
  r = inferd("rm test-org/llama3 -y");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(cache_ / "models--test-org--llama3"));
  r = inferd("rm test-org/llama3 -y");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("not in the Hugging Face cache"), std::string::npos) << r.output;
}

TEST_F(HubCliTest, RunDownloadsAMissingModel) {
  const Result r = inferd("run test-org/llama3 --prompt-ids 1,2,3 --max-tokens 2 --device cpu");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::is_regular_file(cache_ / "models--test-org--llama3" / "refs" / "main"));
}

TEST_F(HubCliTest, BadNamesAreRefused) {
  Result r = inferd("pull not-a-hub-name");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("expected org/name[:revision]"), std::string::npos) << r.output;
  r = inferd("pull test-org/absent");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("repository test-org/absent or revision 'main' not found"),
            std::string::npos)
      << r.output;
}

// The weights load as they download (hub::resolve_overlapped); a corrupt one still stops the
// start with the checksum error, before anything is generated.
TEST_F(HubCliTest, ACorruptWeightFileFailsTheStart) {
  inferd::testing::FakeHubFaults f;
  f.corrupt_file = "model.safetensors";
  f.delay_ms["model.safetensors"] = 300;
  hub_ = std::make_unique<FakeHub>(
      std::vector<inferd::testing::FakeHubRepo>{
          {"test-org/llama3", std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3"}},
      f);
  Result r = inferd("run test-org/llama3 --prompt-ids 1,2,3 --max-tokens 2 --device cpu");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("checksum mismatch for model.safetensors of test-org/llama3"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(cache_ / "models--test-org--llama3" / "refs" / "main"));
  // Served right, the same start succeeds (resuming nothing: the corrupt file was removed).
  hub_ = std::make_unique<FakeHub>(std::vector<inferd::testing::FakeHubRepo>{
      {"test-org/llama3", std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3"}});
  r = inferd("run test-org/llama3 --prompt-ids 1,2,3 --max-tokens 2 --device cpu");
  EXPECT_EQ(r.status, 0) << r.output;
}
