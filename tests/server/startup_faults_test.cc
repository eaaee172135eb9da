// Issue 17 (faults): `inferd serve` given what cannot work stops at start with one clear message
// (exit status 1), never hangs: a --max-model-len the KV pool cannot hold, a truncated weights
// file, an unreadable --api-key-file, a pooling configuration inferd cannot honour (issue 30).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

struct ProcessResult {
  int status = -1;
  std::string output;
};

// Runs `inferd ARGS` with a 120 s guard; stdout and stderr together.
ProcessResult inferd(const std::string& args) {
  const std::string cmd = "timeout 120 " + std::string(INFERD_BINARY) + " " + args + " 2>&1";
  ProcessResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

TEST(StartupFaults, MaxModelLenTheKvPoolCannotHold) {
  const ProcessResult r =
      inferd("serve " + kDemo + " --port 0 --num-kv-blocks 4 --max-model-len 4096");
  EXPECT_EQ(r.status, 1) << r.output;  // 124 would be the timeout: a hang
  EXPECT_NE(r.output.find("max_model_len 4096 does not fit the KV cache (4 blocks x 16 tokens = "
                          "64 tokens)"),
            std::string::npos)
      << r.output;
}

TEST(StartupFaults, TruncatedWeightsFile) {
  const fs::path dir = fs::temp_directory_path() / "inferd_startup_faults_truncated";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kDemo))
    if (e.is_regular_file()) fs::copy_file(e.path(), dir / e.path().filename());
  const fs::path w = dir / "model.safetensors";
  fs::resize_file(w, fs::file_size(w) / 2);
  const ProcessResult r = inferd("serve " + dir.string() + " --port 0");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(w.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("run past the end of the file"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tensor '"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

TEST(StartupFaults, UnreadableKeyFileBeforeTheModelLoads) {
  const ProcessResult r = inferd("serve " + kDemo + " --port 0 --api-key-file /nonexistent/keys");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--api-key-file '/nonexistent/keys': cannot read it"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("loading weights"), std::string::npos) << r.output;
}

TEST(StartupFaults, PoolingTheServerCannotHonour) {
  ProcessResult r =
      inferd("serve " + kDemo + " --port 0 --pooler-config '{\"pooling_type\": \"MEAN\"}'");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--pooler-config applies to embedding models: add --task embed"),
            std::string::npos)
      << r.output;
  r = inferd("serve " + kDemo +
             " --port 0 --task embed --pooler-config '{\"pooling_type\": \"ALL\"}'");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("pooling_type \"ALL\" is not supported"), std::string::npos) << r.output;
  // A sentence-transformers layout with a Dense module: --task auto reads it and refuses.
  const fs::path dir = fs::temp_directory_path() / "inferd_startup_faults_dense";
  fs::remove_all(dir);
  fs::create_directories(dir / "1_Pooling");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(kDemo) / f, dir / f);
  std::ofstream(dir / "modules.json")
      << R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
             {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])";
  std::ofstream(dir / "1_Pooling" / "config.json") << R"({"pooling_mode_mean_tokens": true})";
  r = inferd("serve " + dir.string() + " --port 0 --load-format dummy");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("modules.json: module 2 (sentence_transformers.models.Dense) is not "
                          "supported"),
            std::string::npos)
      << r.output;
  fs::remove_all(dir);
}

}  // namespace
