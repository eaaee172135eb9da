// EngineArgs -> ResolvedConfig: the defaults the commands had, the device choice, every error
// naming its flag, the refusal of what later issues add, and the one EOS rule.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "llm/resolved_config.h"

namespace inferd {
namespace {

EngineArgs args_for(const std::string& model = "/models/m") {
  EngineArgs a;
  a.model.model = model;
  return a;
}

// The message of the Error resolving `a` throws ("" when it resolves).
std::string error_of(const EngineArgs& a, int gpu_count = 0, bool cuda_built = false) {
  try {
    resolve_engine_args(a, gpu_count, cuda_built);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(EngineArgs, DefaultsAreTheCommandsDefaults) {
  const ResolvedConfig rc = resolve_engine_args(args_for(), 0, false);
  EXPECT_EQ(rc.model_dir, "/models/m");
  EXPECT_EQ(rc.tokenizer_dir, "/models/m");
  EXPECT_TRUE(rc.load_tokenizer);
  EXPECT_EQ(rc.served_model_names, std::vector<std::string>{"/models/m"});
  EXPECT_EQ(rc.load_format, "auto");
  EXPECT_EQ(rc.dtype, DType::kBF16);
  EXPECT_EQ(rc.quantization, "");
  EXPECT_EQ(rc.device, DeviceKind::kCpu);
  EXPECT_GE(rc.threads, 1);
  EXPECT_FALSE(rc.enforce_eager);
  EXPECT_EQ(rc.block_size, 16);
  EXPECT_EQ(rc.num_kv_blocks, 0);
  EXPECT_EQ(rc.kv_cache_bytes, int64_t(1) << 30);
  EXPECT_DOUBLE_EQ(rc.gpu_memory_utilization, 0.9);
  const EngineConfig& e = rc.engine;
  EXPECT_EQ(e.max_num_seqs, 256);
  EXPECT_EQ(e.max_num_batched_tokens, 2048);
  EXPECT_EQ(e.max_model_len, 0);
  EXPECT_TRUE(e.enable_prefix_caching);
  EXPECT_TRUE(e.enable_chunked_prefill);
  EXPECT_EQ(e.max_queue, 4096);
  EXPECT_EQ(e.max_logprobs, 20);
  EXPECT_EQ(e.seed, 0u);
  EXPECT_TRUE(e.eos_token_ids.empty());  // filled at load
}

TEST(EngineArgs, EachLimitGoesToTheOneConfig) {
  EngineArgs a = args_for();
  a.model.tokenizer = "/tok";
  a.model.skip_tokenizer_init = true;
  a.model.served_model_names = {"a", "b"};
  a.model.dtype = "float16";
  a.model.seed = 7;
  a.model.threads = 3;
  a.model.enforce_eager = true;
  a.cache.block_size = 32;
  a.cache.num_kv_blocks = 100;
  a.cache.kv_cache_memory_gib = 0.5;
  a.cache.enable_prefix_caching = false;
  a.scheduler.max_num_seqs = 8;
  a.scheduler.max_num_batched_tokens = 512;
  a.scheduler.max_model_len = 1024;
  a.scheduler.enable_chunked_prefill = false;
  a.scheduler.max_queue = 0;
  a.scheduler.max_logprobs = 5;
  a.scheduler.long_prefill_token_threshold = 256;
  a.scheduler.max_num_partial_prefills = 4;
  a.scheduler.max_long_partial_prefills = 2;
  const ResolvedConfig rc = resolve_engine_args(a, 0, false);
  EXPECT_EQ(rc.tokenizer_dir, "/tok");
  EXPECT_FALSE(rc.load_tokenizer);
  EXPECT_EQ(rc.served_model_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(rc.dtype, DType::kF16);
  EXPECT_EQ(rc.seed, 7u);
  EXPECT_EQ(rc.threads, 3);
  EXPECT_TRUE(rc.enforce_eager);
  EXPECT_EQ(rc.block_size, 32);
  EXPECT_EQ(rc.num_kv_blocks, 100);
  EXPECT_EQ(rc.kv_cache_bytes, int64_t(1) << 29);
  const EngineConfig& e = rc.engine;
  EXPECT_FALSE(e.enable_prefix_caching);
  EXPECT_EQ(e.max_num_seqs, 8);
  EXPECT_EQ(e.max_num_batched_tokens, 512);
  EXPECT_EQ(e.max_model_len, 1024);
  EXPECT_FALSE(e.enable_chunked_prefill);
  EXPECT_EQ(e.max_queue, 0);
  EXPECT_EQ(e.max_logprobs, 5);
  EXPECT_EQ(e.long_prefill_token_threshold, 256);
  EXPECT_EQ(e.max_num_partial_prefills, 4);
  EXPECT_EQ(e.max_long_partial_prefills, 2);
  EXPECT_EQ(e.seed, 7u);
}

TEST(EngineArgs, DeviceAutoTakesAGpuWhenThereIsOne) {
  EngineArgs a = args_for();
  EXPECT_EQ(resolve_engine_args(a, 1, true).device, DeviceKind::kCuda);
  EXPECT_EQ(resolve_engine_args(a, 0, true).device, DeviceKind::kCpu);
  EXPECT_EQ(resolve_engine_args(a, 2, false).device, DeviceKind::kCpu);
  a.model.device = "cpu";
  EXPECT_EQ(resolve_engine_args(a, 1, true).device, DeviceKind::kCpu);
  a.model.device = "cuda";
  EXPECT_EQ(resolve_engine_args(a, 1, true).device, DeviceKind::kCuda);
  EXPECT_EQ(error_of(a, 0, true), "--device cuda: no CUDA GPU is visible");
  EXPECT_NE(error_of(a, 0, false).find("--device cuda: this build of inferd has no CUDA backend"),
            std::string::npos);
}

struct BadValue {
  const char* flag;  // the error must name it
  std::function<void(EngineArgs&)> set;
  const char* message;
};

TEST(EngineArgs, EveryErrorNamesTheFlag) {
  const std::vector<BadValue> cases = {
      {"model", [](EngineArgs& a) { a.model.model = ""; },
       "no model given: expected a model directory or GGUF file"},
      {"--device", [](EngineArgs& a) { a.model.device = "gpu"; },
       "unknown --device 'gpu': expected auto, cpu or cuda"},
      {"--dtype", [](EngineArgs& a) { a.model.dtype = "fp9"; },
       "--dtype: unsupported dtype 'fp9': expected one of float32, bfloat16, float16"},
      {"--threads", [](EngineArgs& a) { a.model.threads = -1; }, "--threads must be >= 0, got -1"},
      {"--block-size", [](EngineArgs& a) { a.cache.block_size = 0; },
       "--block-size 0 is out of range: expected 1..1024"},
      {"--block-size", [](EngineArgs& a) { a.cache.block_size = 2048; },
       "--block-size 2048 is out of range: expected 1..1024"},
      {"--num-kv-blocks", [](EngineArgs& a) { a.cache.num_kv_blocks = -1; },
       "--num-kv-blocks must be >= 0 (0: derive), got -1"},
      {"--kv-cache-memory", [](EngineArgs& a) { a.cache.kv_cache_memory_gib = 0; },
       "--kv-cache-memory must be positive, got 0"},
      {"--gpu-memory-utilization", [](EngineArgs& a) { a.cache.gpu_memory_utilization = 1.5; },
       "--gpu-memory-utilization must be in (0, 1], got 1.5"},
      {"--gpu-memory-utilization", [](EngineArgs& a) { a.cache.gpu_memory_utilization = 0; },
       "--gpu-memory-utilization must be in (0, 1], got 0"},
      {"--max-num-seqs", [](EngineArgs& a) { a.scheduler.max_num_seqs = 0; },
       "--max-num-seqs must be >= 1, got 0"},
      {"--max-num-batched-tokens", [](EngineArgs& a) { a.scheduler.max_num_batched_tokens = 0; },
       "--max-num-batched-tokens must be positive, got 0"},
      {"--max-model-len", [](EngineArgs& a) { a.scheduler.max_model_len = -5; },
       "--max-model-len must be >= 0 (0: the model's), got -5"},
      {"--max-queue", [](EngineArgs& a) { a.scheduler.max_queue = -1; },
       "--max-queue must be >= 0, got -1"},
      {"--long-prefill-token-threshold",
       [](EngineArgs& a) { a.scheduler.long_prefill_token_threshold = -1; },
       "--long-prefill-token-threshold must be >= 0 (0: off), got -1"},
      {"--max-num-partial-prefills",
       [](EngineArgs& a) { a.scheduler.max_num_partial_prefills = 0; },
       "--max-num-partial-prefills must be >= 1, got 0"},
      {"--max-long-partial-prefills",
       [](EngineArgs& a) { a.scheduler.max_long_partial_prefills = 0; },
       "--max-long-partial-prefills must be >= 1, got 0"},
      {"--max-long-partial-prefills",
       [](EngineArgs& a) {
         a.scheduler.max_num_partial_prefills = 2;
         a.scheduler.max_long_partial_prefills = 3;
       },
       "--max-long-partial-prefills (3) must be <= --max-num-partial-prefills (2)"},
      {"--max-logprobs", [](EngineArgs& a) { a.scheduler.max_logprobs = -1; },
       "--max-logprobs must be >= 0, got -1"},
      {"--grammar-compile-timeout",
       [](EngineArgs& a) { a.scheduler.grammar_compile_timeout_s = -1; },
       "--grammar-compile-timeout must be >= 0 seconds, got -1"},
      {"--tensor-parallel-size", [](EngineArgs& a) { a.parallel.tensor_parallel_size = 0; },
       "--tensor-parallel-size must be >= 1, got 0"},
      {"--tensor-parallel-size", [](EngineArgs& a) { a.parallel.tensor_parallel_size = 65; },
       "--tensor-parallel-size must be <= 64, got 65"},
      {"--kv-cache-dtype", [](EngineArgs& a) { a.cache.kv_cache_dtype = "fp8_e5m2"; },
       "--kv-cache-dtype fp8_e5m2 is not supported: the FP8 KV cache is e4m3 (fp8, fp8_e4m3)"},
      {"--kv-cache-dtype", [](EngineArgs& a) { a.cache.kv_cache_dtype = "int8"; },
       "--kv-cache-dtype 'int8' is not supported: expected auto, fp8 or fp8_e4m3"},
      {"--tensor-parallel-size",
       [](EngineArgs& a) {
         a.parallel.tensor_parallel_size = 2;
         a.lora.enable_lora = true;
       },
       "--enable-lora with --tensor-parallel-size 2: LoRA adapters are not sharded yet"},
      {"--tensor-parallel-size",
       [](EngineArgs& a) {
         a.parallel.tensor_parallel_size = 2;
         a.model.enable_sleep_mode = true;
       },
       "--enable-sleep-mode with --tensor-parallel-size 2: not supported yet"},
      {"--speculative-config",
       [](EngineArgs& a) { a.speculative.config = R"({"method": "ngram"})"; },
       "--speculative-config: \"num_speculative_tokens\" is missing (1..16)"},
      {"--speculative-config",
       [](EngineArgs& a) { a.speculative.config = R"({"method": "eagle", "model": "h"})"; },
       "--speculative-config: method \"eagle\" (EAGLE-1/2 heads) is not supported: expected "
       "ngram, draft_model or eagle3"},
      {"--lora-modules", [](EngineArgs& a) { a.lora.lora_modules = {"sql=/adapters/sql"}; },
       "--lora-modules needs --enable-lora"},
      {"--max-loras", [](EngineArgs& a) { a.lora.max_loras = 4; },
       "--max-loras needs --enable-lora"},
      {"--max-lora-rank", [](EngineArgs& a) { a.lora.max_lora_rank = 64; },
       "--max-lora-rank needs --enable-lora"},
      {"--max-cpu-loras", [](EngineArgs& a) { a.lora.max_cpu_loras = 2; },
       "--max-cpu-loras needs --enable-lora"},
      {"--max-loras",
       [](EngineArgs& a) {
         a.lora.enable_lora = true;
         a.lora.max_loras = 0;
       },
       "--max-loras must be >= 1, got 0"},
      {"--max-cpu-loras",
       [](EngineArgs& a) {
         a.lora.enable_lora = true;
         a.lora.max_loras = 4;
         a.lora.max_cpu_loras = 2;
       },
       "--max-cpu-loras (2) must be >= --max-loras (4)"},
      {"--lora-modules",
       [](EngineArgs& a) {
         a.lora.enable_lora = true;
         a.lora.lora_modules = {"=/x"};
       },
       "--lora-modules '=/x': expected name=path"},
  };
  for (const BadValue& c : cases) {
    EngineArgs a = args_for();
    c.set(a);
    const std::string err = error_of(a);
    EXPECT_EQ(err, c.message) << c.flag;
    EXPECT_NE(err.find(c.flag), std::string::npos) << err;
  }
}

TEST(EngineArgs, ABadTensorParallelSizeIsRefusedBeforeAnythingElse) {
  EngineArgs a = args_for("");
  a.parallel.tensor_parallel_size = 0;
  EXPECT_EQ(error_of(a), "--tensor-parallel-size must be >= 1, got 0");
}

TEST(EngineArgs, TensorParallelRanksRunOnTheCpuAndShareItsThreads) {
  EngineArgs a = args_for();
  a.parallel.tensor_parallel_size = 2;
  a.model.threads = 8;
  const ResolvedConfig rc = resolve_engine_args(a, 0, false);
  EXPECT_EQ(rc.tensor_parallel_size, 2);
  EXPECT_EQ(rc.threads, 4);  // a rank's
  a.model.threads = 1;
  EXPECT_EQ(resolve_engine_args(a, 0, false).threads, 1);
  // GPUs: not yet, whatever their number; --device auto names itself too.
  a.model.device = "cuda";
  EXPECT_EQ(error_of(a, 1, true),
            "--tensor-parallel-size 2 with --device cuda: tensor parallelism runs on the CPU "
            "backend only so far (--device cpu); the GPU communicator (NCCL) is not built yet; "
            "this machine has 1 GPU(s) for 2 ranks");
  a.model.device = "auto";
  EXPECT_EQ(error_of(a, 2, true),
            "--tensor-parallel-size 2 with --device auto: tensor parallelism runs on the CPU "
            "backend only so far (--device cpu); the GPU communicator (NCCL) is not built yet");
  EXPECT_EQ(resolve_engine_args(a, 0, true).tensor_parallel_size, 2);  // auto: the CPU here
}

TEST(EngineArgs, QuantizedWeightsAndAnFp8KvCacheGoToTheRanks) {
  EngineArgs a = args_for();
  a.parallel.tensor_parallel_size = 2;
  a.model.quantization = "fp8";  // sharded on the CPU (tensor_parallel_test)
  EXPECT_EQ(resolve_engine_args(a, 0, false).quantization, "fp8");
  EXPECT_FALSE(resolve_engine_args(a, 0, false).kv_cache_fp8);
  for (const char* d : {"fp8", "fp8_e4m3"}) {
    a.cache.kv_cache_dtype = d;
    EXPECT_TRUE(resolve_engine_args(a, 0, false).kv_cache_fp8) << d;
  }
}

TEST(EngineArgs, OneEosRule) {
  EXPECT_EQ(default_eos_ids({128001, 128009}, {128001}), (std::vector<int32_t>{128001, 128009}));
  EXPECT_EQ(default_eos_ids({}, {2, 7}), (std::vector<int32_t>{2, 7}));
  EXPECT_TRUE(default_eos_ids({}, {}).empty());
}

}  // namespace
}  // namespace inferd
