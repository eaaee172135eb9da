// A GGUF file used as a user uses it (issue 35): the project's demo model and its tokenizer written
// as llama.cpp's converter writes them (tests/model/gguf_convert_util.h for the tensors,
// tests/tokenizer/gguf_hf_metadata.h for the tokenizer keys), loaded by LLM::load like a model
// directory: the same chat prompt, the same greedy tokens and text, the same stop ids.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "inferd/engine.h"
#include "inferd/llm.h"
#include "jinja/chat_template.h"
#include "model/config.h"
#include "model/gguf_convert_util.h"
#include "tokenizer/gguf_hf_metadata.h"
#include "tokenizer/tokenizer.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

// `eot`: the file also names the demo's end-of-turn token (tokenizer.ggml.eot_token_id), which
// its generation_config.json lists as an eos id and which llama.cpp's converter does not write.
std::string demo_gguf(ggml::Type type, bool eot = false) {
  const fs::path dir =
      fs::temp_directory_path() / ("inferd-gguf-llm-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string file =
      (dir / ("demo-" + std::string(ggml::type_name(uint32_t(type))) + ".gguf")).string();
  const auto tj = nlohmann::json::parse(std::ifstream(kDemo + "/tokenizer.json"));
  const auto tc = nlohmann::json::parse(std::ifstream(kDemo + "/tokenizer_config.json"));
  GgufMetadata kv = testing::gguf_metadata_from_hf(tj, tc, {"gpt2", "llama-bpe", {}});
  if (eot) {
    for (const auto& t : tj["added_tokens"])
      if (t["content"] == "<|end_of_turn|>") kv["tokenizer.ggml.eot_token_id"] = gguf_u32(t["id"]);
  }
  testing_util::write_gguf_like_llama_cpp(kDemo, load_model_config(kDemo), file, type, false, kv);
  return file;
}

std::unique_ptr<LLM> load(const std::string& model) {
  EngineArgs a;
  a.model.model = model;
  a.model.device = "cpu";
  a.model.threads = 2;
  a.cache.kv_cache_memory_gib = 0.05;
  a.scheduler.max_model_len = 512;
  LLMOptions o;
  o.load_chat_template = true;
  return LLM::load(a, o);
}

struct Answer {
  std::string prompt;
  std::vector<int32_t> prompt_ids, ids;
  std::string text;
};

Answer answer(LLM& llm, const std::string& question) {
  Answer r;
  const nlohmann::ordered_json messages = {{{"role", "user"}, {"content", question}}};
  r.prompt = llm.chat_template()->apply(messages, nullptr, true);
  r.prompt_ids = llm.tokenizer()->encode(r.prompt, false);
  GenerateRequest req;
  req.prompt_token_ids = r.prompt_ids;
  req.params.temperature = 0.0f;
  req.params.max_tokens = 32;
  const auto res = llm.engine()->generate({req});
  r.ids = res.at(0).outputs.at(0).token_ids;
  r.text = llm.tokenizer()->decode(r.ids, true);
  return r;
}

TEST(GgufLlm, DemoModelFromItsGgufFileAnswersAsFromItsDirectory) {
  const std::string file = demo_gguf(ggml::Type::kF32, true);
  auto dir = load(kDemo);
  auto gguf = load(file);
  EXPECT_EQ(gguf->summary().architecture, "LlamaForCausalLM");
  for (const char* q : {"What is a bore?", "What is a hacker?", "Tell me about the sea."}) {
    const Answer a = answer(*dir, q), b = answer(*gguf, q);
    EXPECT_EQ(a.prompt, b.prompt);
    EXPECT_EQ(a.prompt_ids, b.prompt_ids);
    EXPECT_EQ(a.ids, b.ids) << q;
    EXPECT_EQ(a.text, b.text) << q;
    EXPECT_FALSE(b.ids.empty());
  }
  fs::remove(file);
}

// Without the end-of-turn id (as llama.cpp's converter writes this model), generation runs on to
// the eos token: the same tokens up to the directory's stop, then eos.
TEST(GgufLlm, WithoutEndOfTurnIdGenerationStopsAtEos) {
  const std::string file = demo_gguf(ggml::Type::kF32);
  auto dir = load(kDemo);
  auto gguf = load(file);
  const Answer a = answer(*dir, "What is a bore?"), b = answer(*gguf, "What is a bore?");
  ASSERT_GE(b.ids.size(), a.ids.size());
  EXPECT_TRUE(std::equal(a.ids.begin(), a.ids.end(), b.ids.begin()));
  const auto& eos = gguf->engine()->config().eos_token_ids;
  EXPECT_NE(std::find(eos.begin(), eos.end(), *dir->tokenizer()->eos_id()), eos.end());
  if (b.ids.size() < 32) {
    EXPECT_EQ(b.ids.back(), *dir->tokenizer()->eos_id());
  }
  fs::remove(file);
}

TEST(GgufLlm, QuantizedDemoFileAnswers) {
  const std::string file = demo_gguf(ggml::Type::kQ8_0);
  auto gguf = load(file);
  const Answer b = answer(*gguf, "What is a bore?");
  EXPECT_FALSE(b.ids.empty());
  EXPECT_FALSE(b.text.empty());
  fs::remove(file);
}

}  // namespace
}  // namespace inferd
