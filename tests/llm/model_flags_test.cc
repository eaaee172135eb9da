// The model flags of `serve`, `run`, `chat` and the in-process benchmarks land in one EngineArgs
// (vLLM's names; defaults as before), vLLM's `-tp` is spelled out for CLI11, and the binary
// refuses what inferd cannot do yet by naming the flag.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace inferd::cli {
namespace {

EngineArgs parse(std::vector<std::string> args, bool batching = true) {
  CLI::App app{"test"};
  ModelFlags flags;
  flags.add_to(&app, batching);
  std::vector<const char*> argv = {"inferd"};
  for (const auto& a : args) argv.push_back(a.c_str());
  app.parse(int(argv.size()), const_cast<char**>(argv.data()));
  return flags.args;
}

TEST(ModelFlags, DefaultsAreEngineArgsDefaults) {
  const EngineArgs a = parse({"/m"});
  const EngineArgs d;
  EXPECT_EQ(a.model.model, "/m");
  EXPECT_EQ(a.model.device, d.model.device);
  EXPECT_EQ(a.model.load_format, d.model.load_format);
  EXPECT_EQ(a.model.dtype, d.model.dtype);
  EXPECT_EQ(a.model.threads, d.model.threads);
  EXPECT_EQ(a.cache.block_size, d.cache.block_size);
  EXPECT_EQ(a.cache.kv_cache_memory_gib, d.cache.kv_cache_memory_gib);
  EXPECT_EQ(a.scheduler.max_num_seqs, 256);
  EXPECT_EQ(a.scheduler.max_num_batched_tokens, 2048);
  EXPECT_EQ(a.parallel.tensor_parallel_size, 1);
  EXPECT_TRUE(a.speculative.config.empty());
  EXPECT_FALSE(a.lora.enable_lora);
}

TEST(ModelFlags, EveryFlagLandsInItsSection) {
  const EngineArgs a = parse({"/m",
                              "--device",
                              "cpu",
                              "--gpu-memory-utilization",
                              "0.5",
                              "--load-format",
                              "dummy",
                              "--dtype",
                              "float16",
                              "--max-model-len",
                              "512",
                              "--block-size",
                              "32",
                              "--num-kv-blocks",
                              "10",
                              "--kv-cache-memory",
                              "2",
                              "--kv-cache-dtype",
                              "fp8",
                              "--max-num-batched-tokens",
                              "128",
                              "--seed",
                              "9",
                              "--max-num-seqs",
                              "3",
                              "--quantization",
                              "fp8",
                              "--enforce-eager",
                              "--threads",
                              "2",
                              "--tensor-parallel-size",
                              "2",
                              "--speculative-config",
                              "{}",
                              "--enable-lora",
                              "--lora-modules",
                              "a=/x",
                              "b=/y",
                              "--max-loras",
                              "4",
                              "--max-lora-rank",
                              "32"});
  EXPECT_EQ(a.model.device, "cpu");
  EXPECT_EQ(a.cache.gpu_memory_utilization, 0.5);
  EXPECT_EQ(a.model.load_format, "dummy");
  EXPECT_EQ(a.model.dtype, "float16");
  EXPECT_EQ(a.scheduler.max_model_len, 512);
  EXPECT_EQ(a.cache.block_size, 32);
  EXPECT_EQ(a.cache.num_kv_blocks, 10);
  EXPECT_EQ(a.cache.kv_cache_memory_gib, 2.0);
  EXPECT_EQ(a.cache.kv_cache_dtype, "fp8");
  EXPECT_EQ(a.scheduler.max_num_batched_tokens, 128);
  EXPECT_EQ(a.model.seed, 9u);
  EXPECT_EQ(a.scheduler.max_num_seqs, 3);
  EXPECT_EQ(a.model.quantization, "fp8");
  EXPECT_TRUE(a.model.enforce_eager);
  EXPECT_EQ(a.model.threads, 2);
  EXPECT_EQ(a.parallel.tensor_parallel_size, 2);
  EXPECT_EQ(a.speculative.config, "{}");
  EXPECT_TRUE(a.lora.enable_lora);
  EXPECT_EQ(a.lora.lora_modules, (std::vector<std::string>{"a=/x", "b=/y"}));
  EXPECT_EQ(a.lora.max_loras, 4);
  EXPECT_EQ(a.lora.max_lora_rank, 32);
}

TEST(ModelFlags, RunHasNoMaxNumSeqs) {
  EXPECT_THROW(parse({"/m", "--max-num-seqs", "2"}, /*batching=*/false), CLI::ParseError);
}

TEST(ModelFlags, ShortTensorParallelFlagIsSpelledOut) {
  std::vector<std::string> args = {"inferd", "serve", "m", "-tp", "2", "-tp=4", "--", "-tp"};
  expand_vllm_short_flags(args);
  EXPECT_EQ(args, (std::vector<std::string>{"inferd", "serve", "m", "--tensor-parallel-size", "2",
                                            "--tensor-parallel-size=4", "--", "-tp"}));
}

struct ProcessResult {
  int status = -1;
  std::string output;
};

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

TEST(ModelFlags, TheBinaryRefusesWhatLaterIssuesAddAndBadLoraFlags) {
  const std::string demo = std::string(INFERD_SOURCE_DIR) + "/models/demo";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--kv-cache-dtype fp8_e5m2",
       "error: --kv-cache-dtype fp8_e5m2 is not supported: the FP8 KV cache is e4m3 (fp8, "
       "fp8_e4m3)"},
      {"--speculative-config '{\"method\": \"eagle\", \"model\": \"x\"}'",
       "error: --speculative-config: method \"eagle\" (EAGLE-1/2 heads) is not supported: "
       "expected ngram, draft_model or eagle3"},
      {"--max-loras 2", "error: --max-loras needs --enable-lora"},
      {"--enable-lora --lora-modules nopath", "error: --lora-modules 'nopath': expected name=path"},
  };
  for (const auto& [flags, message] : cases) {
    for (const char* cmd : {"run", "serve", "bench latency"}) {
      const std::string extra = std::string(cmd) == "run" ? " --prompt-ids 1" : "";
      const ProcessResult r = inferd(std::string(cmd) + " " + demo + extra + " " + flags);
      EXPECT_EQ(r.status, 1) << cmd << " " << flags << ": " << r.output;
      EXPECT_NE(r.output.find(message), std::string::npos)
          << cmd << " " << flags << ": " << r.output;
      EXPECT_EQ(r.output.find("loading weights"), std::string::npos) << r.output;
    }
  }
}

}  // namespace
}  // namespace inferd::cli
