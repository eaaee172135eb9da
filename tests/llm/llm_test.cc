// LLM::load on a tiny model: dummy weights without a tokenizer (as `run --prompt-ids` and the
// in-process benchmarks use it), the summary, the EOS fallback to the model config, the resolved
// limits reaching the engine, the tokenizer / vocabulary check, and the chat template options.
#include "inferd/llm.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "jinja/chat_template.h"
#include "runner/executor.h"
#include "tokenizer/tokenizer.h"

namespace inferd {
namespace {

const std::string kQwen2 = std::string(INFERD_TEST_DATA_DIR) + "/goldens/qwen2";
const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

// The tiny Qwen2 golden (vocab 320, 256 positions, eos 2) with random float32 weights on 1 thread.
EngineArgs tiny() {
  EngineArgs a;
  a.model.model = kQwen2;
  a.model.load_format = "dummy";
  a.model.dtype = "float32";
  a.model.skip_tokenizer_init = true;
  a.model.device = "cpu";
  a.model.threads = 1;
  a.cache.kv_cache_memory_gib = 0.01;
  return a;
}

std::string load_error(const EngineArgs& a, const LLMOptions& o = {}) {
  try {
    LLM::load(a, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LLM, LoadsWithoutATokenizerAndGenerates) {
  EngineArgs a = tiny();
  a.scheduler.max_num_seqs = 4;
  a.scheduler.max_num_batched_tokens = 64;
  a.scheduler.max_model_len = 128;
  a.scheduler.max_logprobs = 3;
  a.scheduler.max_queue = 0;
  a.cache.enable_prefix_caching = false;
  a.model.seed = 11;
  const auto llm = LLM::load(a);
  EXPECT_EQ(llm->tokenizer(), nullptr);
  EXPECT_EQ(llm->chat_template(), nullptr);
  EXPECT_EQ(llm->served_model_names(), std::vector<std::string>{kQwen2});

  const ModelSummary& s = llm->summary();
  EXPECT_EQ(s.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(s.num_layers, 3);
  EXPECT_EQ(s.backend.rfind("cpu", 0), 0u) << s.backend;
  EXPECT_EQ(s.dtype, "float32");
  EXPECT_EQ(s.block_size, 16);
  EXPECT_GT(s.num_kv_blocks, 0);
  EXPECT_EQ(s.num_kv_blocks, llm->executor()->num_kv_blocks());
  EXPECT_EQ(s.max_model_len, 128);
  EXPECT_EQ(s.max_num_seqs, 4);

  // The limits given once reach the engine and the model alike.
  const EngineConfig& c = llm->engine()->config();
  EXPECT_EQ(c.max_num_seqs, 4);
  EXPECT_EQ(c.max_num_batched_tokens, 64);
  EXPECT_EQ(llm->executor()->max_num_batched_tokens(), 64);
  EXPECT_EQ(c.max_model_len, 128);
  EXPECT_EQ(llm->executor()->max_model_len(), 128);
  EXPECT_EQ(c.max_logprobs, 3);
  EXPECT_EQ(c.max_queue, 0);
  EXPECT_FALSE(c.enable_prefix_caching);
  EXPECT_EQ(c.seed, 11u);
  // No tokenizer: the model config's eos_token_id.
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{2});

  GenerateRequest r;
  r.prompt_token_ids = {5, 6, 7};
  r.params.max_tokens = 4;
  r.params.temperature = 0;
  r.params.ignore_eos = true;
  r.params.detokenize = false;
  const std::vector<GenerateResult> out = llm->engine()->generate({r});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].outputs.size(), 1u);
  EXPECT_EQ(out[0].outputs[0].token_ids.size(), 4u);
}

TEST(LLM, MaxModelLenDefaultsToTheModelsCappedByTheKvCache) {
  EngineArgs a = tiny();
  a.cache.num_kv_blocks = 4;  // 64 tokens
  EXPECT_EQ(LLM::load(a)->summary().max_model_len, 64);
  a.cache.num_kv_blocks = 100;
  EXPECT_EQ(LLM::load(a)->summary().max_model_len, 256);  // max_position_embeddings
  a.scheduler.max_model_len = 4096;
  a.cache.num_kv_blocks = 4;
  EXPECT_NE(load_error(a).find("max_model_len 4096 does not fit the KV cache"), std::string::npos);
}

TEST(LLM, UnsupportedFlagsStopTheLoadByName) {
  // Tensor parallelism (issue 33): ranks on the CPU; what they cannot do yet stops the load.
  EngineArgs a = tiny();
  a.parallel.tensor_parallel_size = 2;
  EXPECT_NE(LLM::load(a)->summary().backend.find("x 2 ranks (tensor parallel)"), std::string::npos);
  a.model.quantization = "fp8";  // weights rounded over whole rows, then sharded (session 11)
  EXPECT_NE(LLM::load(a)->summary().backend.find("x 2 ranks (tensor parallel)"), std::string::npos);
  // LoRA (issue 29): an adapter that does not exist stops the load naming it.
  a = tiny();
  a.lora.enable_lora = true;
  a.lora.lora_modules = {"sql=/nonexistent/adapter"};
  EXPECT_EQ(load_error(a), "LoRA adapter /nonexistent/adapter: not a directory");
}

TEST(LLM, ATokenizerLargerThanTheVocabularyIsRefused) {
  EngineArgs a = tiny();
  a.model.skip_tokenizer_init = false;
  a.model.tokenizer = std::string(INFERD_TEST_DATA_DIR) + "/tokenizers/llama3";
  if (!std::filesystem::exists(a.model.tokenizer + "/tokenizer.json"))
    GTEST_SKIP() << "tests/data/tokenizers/llama3 absent (scripts/fetch-test-data.sh)";
  EXPECT_NE(load_error(a).find("the tokenizer has ids up to 128256 but the model's vocabulary has "
                               "320 entries"),
            std::string::npos)
      << load_error(a);
}

// The demo model has a tokenizer: its EOS ids are the engine's, and so is its chat template.
TEST(LLM, TheTokenizersEosAndChatTemplate) {
  EngineArgs a;
  a.model.model = kDemo;
  a.model.device = "cpu";
  a.model.threads = 1;
  a.cache.kv_cache_memory_gib = 0.01;
  LLMOptions o;
  o.load_chat_template = true;
  bool before = false, finished = false;
  o.before_weights = [&](const EngineArgs& ea) -> std::function<void()> {
    EXPECT_EQ(ea.model.model, kDemo);
    before = true;
    return [&] { finished = true; };  // run once the model is placed
  };
  const auto llm = LLM::load(a, o);
  EXPECT_TRUE(before);
  EXPECT_TRUE(finished);
  ASSERT_NE(llm->tokenizer(), nullptr);
  ASSERT_FALSE(llm->tokenizer()->eos_ids().empty());
  EXPECT_EQ(llm->engine()->config().eos_token_ids, llm->tokenizer()->eos_ids());
  ASSERT_NE(llm->chat_template(), nullptr);
  const std::string p = llm->chat_template()->apply(
      nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}}), nullptr, true);
  EXPECT_NE(p.find("hi"), std::string::npos);
}

TEST(LLM, AMissingChatTemplateGoesToTheCallback) {
  EngineArgs a = tiny();
  LLMOptions o;
  o.load_chat_template = true;  // the Qwen2 golden has none
  EXPECT_NE(load_error(a, o), "");
  std::string why;
  o.on_chat_template_error = [&](const Error& e) { why = e.what(); };
  const auto llm = LLM::load(a, o);
  EXPECT_EQ(llm->chat_template(), nullptr);
  EXPECT_NE(why, "");
  o.on_chat_template_error = [](const Error&) { throw; };
  EXPECT_NE(load_error(a, o), "");
}

}  // namespace
}  // namespace inferd
