// The weight files' read-ahead of `inferd serve` / `chat` (src/cli/weights_progress.cc): it reads
// every byte of every shard (several chunks of a file in flight), beside the load, and what it
// returns waits for it; nothing is read for dummy weights or a folder without weights; dropping it
// unrun stops the read; LLM::load runs it once the model is placed.
#include "cli/weights_progress.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "inferd/llm.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;

// Bytes this process has read through read(2) / pread(2) (/proc/self/io's rchar).
uint64_t bytes_read() {
  std::ifstream io("/proc/self/io");
  std::string key;
  uint64_t v = 0;
  while (io >> key >> v)
    if (key == "rchar:") return v;
  return 0;
}

class WeightsReadAhead : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("inferd-readahead-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, uint64_t bytes) {
    std::ofstream f(dir_ / name, std::ios::binary);
    const std::string block(1 << 20, 'w');
    for (uint64_t left = bytes; left > 0;) {
      const uint64_t n = std::min<uint64_t>(left, block.size());
      f.write(block.data(), std::streamsize(n));
      left -= n;
    }
  }
  fs::path dir_;
};

TEST_F(WeightsReadAhead, ReadsEveryByteOfEveryShard) {
  // A shard of two chunks and a partial third (32 MiB chunks), a small one, and files that are no
  // weights (not read).
  const uint64_t big = (70u << 20) + 123, small = 4097;
  write("model-00001-of-00002.safetensors", big);
  write("model-00002-of-00002.safetensors", small);
  write("pytorch_model.bin", 50u << 20);
  const uint64_t before = bytes_read();
  std::function<void()> finish = cli::read_weights_with_progress(dir_.string(), "auto");
  ASSERT_TRUE(finish);
  finish();
  const uint64_t got = bytes_read() - before;
  EXPECT_GE(got, big + small);
  EXPECT_LT(got, big + small + (8u << 20)) << "read more than the weight files";
}

TEST_F(WeightsReadAhead, NothingForDummyWeightsOrAFolderWithoutWeights) {
  EXPECT_FALSE(cli::read_weights_with_progress(dir_.string(), "auto"));
  write("model.safetensors", 1000);
  EXPECT_FALSE(cli::read_weights_with_progress(dir_.string(), "dummy"));
  EXPECT_TRUE(cli::read_weights_with_progress(dir_.string(), "auto"));
}

TEST_F(WeightsReadAhead, DroppedUnrunItStops) {
  write("model.safetensors", 64u << 20);
  for (int i = 0; i < 3; ++i) {
    std::function<void()> finish = cli::read_weights_with_progress(dir_.string(), "auto");
    ASSERT_TRUE(finish);
  }  // destroyed at once each time: the threads stop and join (no hang, no crash)
}

TEST_F(WeightsReadAhead, RunsBesideTheDemoModelsLoad) {
  EngineArgs a;
  a.model.model = std::string(INFERD_SOURCE_DIR) + "/models/demo";
  a.model.device = "cpu";
  a.model.threads = 1;
  a.cache.kv_cache_memory_gib = 0.01;
  LLMOptions o;
  o.before_weights = [](const EngineArgs& ea) {
    return cli::read_weights_with_progress(ea.model.model, ea.model.load_format);
  };
  const auto llm = LLM::load(a, o);
  EXPECT_GT(llm->summary().num_layers, 0);
}

}  // namespace
}  // namespace inferd
