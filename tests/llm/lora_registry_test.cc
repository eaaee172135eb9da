// LoRA adapters through LLM::load (issue 29): --lora-modules in both of vLLM's forms, the names
// and ids LLM::lora() keeps, and its refusals (a taken name, the base model's name, more than
// --max-cpu-loras, an unknown name to unload).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/error.h"
#include "inferd/llm.h"
#include "llm/lora_registry.h"

namespace inferd {
namespace {

const std::string kBase = std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3";
const std::string kLora = std::string(INFERD_TEST_DATA_DIR) + "/lora";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(LoraModules, BothFormsOfTheFlag) {
  EXPECT_EQ(parse_lora_module("sql=/a/b"), (std::pair<std::string, std::string>{"sql", "/a/b"}));
  EXPECT_EQ(parse_lora_module(R"({"name": "sql", "path": "/a/b", "base_model_name": "m"})"),
            (std::pair<std::string, std::string>{"sql", "/a/b"}));
  EXPECT_EQ(error_of([] { parse_lora_module("sql"); }), "--lora-modules 'sql': expected name=path");
  EXPECT_EQ(error_of([] { parse_lora_module("sql="); }),
            "--lora-modules 'sql=': expected name=path");
  EXPECT_NE(error_of([] { parse_lora_module(R"({"name": "sql"})"); }).find("expected {\"name\""),
            std::string::npos);
}

EngineArgs lora_args() {
  EngineArgs a;
  a.model.model = kBase;
  a.model.skip_tokenizer_init = true;
  a.model.device = "cpu";
  a.model.threads = 1;
  a.model.served_model_names = {"base"};
  a.cache.kv_cache_memory_gib = 0.01;
  a.lora.enable_lora = true;
  a.lora.max_loras = 1;
  a.lora.max_cpu_loras = 2;
  a.lora.lora_modules = {"a=" + kLora + "/adapter_a"};
  return a;
}

TEST(LoraRegistry, LoadsNamesAndRefusesByName) {
  const auto llm = LLM::load(lora_args());
  ASSERT_NE(llm->lora(), nullptr);
  LoraAdapters& lora = *llm->lora();
  ASSERT_EQ(lora.list().size(), 1u);
  EXPECT_EQ(lora.list()[0].name, "a");
  EXPECT_EQ(lora.list()[0].rank, 8);
  EXPECT_EQ(lora.id_of("a"), lora.list()[0].id);
  EXPECT_EQ(lora.id_of("b"), -1);
  EXPECT_NE(error_of([&] { lora.load("a", kLora + "/adapter_b"); }).find("already loaded"),
            std::string::npos);
  EXPECT_NE(error_of([&] { lora.load("base", kLora + "/adapter_b"); }).find("the base model's"),
            std::string::npos);
  const LoraAdapterInfo b = lora.load("b", kLora + "/adapter_b");
  EXPECT_EQ(b.rank, 16);
  EXPECT_NE(b.id, lora.id_of("a"));
  EXPECT_NE(error_of([&] { lora.load("c", kLora + "/adapter_a"); }).find("--max-cpu-loras"),
            std::string::npos);
  lora.unload("a");
  EXPECT_EQ(lora.id_of("a"), -1);
  EXPECT_NE(error_of([&] { lora.unload("a"); }).find("no LoRA adapter named 'a'"),
            std::string::npos);
  // A name comes back with a new id (ids are never reused: prefix-cache keys hold them).
  const LoraAdapterInfo a2 = lora.load("a", kLora + "/adapter_a");
  EXPECT_GT(a2.id, b.id);
  // Requests run with it.
  GenerateRequest r;
  r.prompt_token_ids = {5, 6, 7, 8};
  r.params.temperature = 0;
  r.params.max_tokens = 3;
  r.lora_adapter_id = a2.id;
  const auto out = llm->engine()->generate({r});
  ASSERT_TRUE(out[0].error.empty()) << out[0].error;
  EXPECT_EQ(out[0].outputs[0].token_ids.size(), 3u);
}

TEST(LoraRegistry, OffWithoutEnableLora) {
  EngineArgs a = lora_args();
  a.lora = LoraArgs{};
  EXPECT_EQ(LLM::load(a)->lora(), nullptr);
}

}  // namespace
}  // namespace inferd
