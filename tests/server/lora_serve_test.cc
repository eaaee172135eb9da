// `inferd serve --enable-lora` (issue 29) as vLLM serves adapters: --lora-modules at start, a
// request's model naming an adapter, /v1/models listing adapters with their parent, 404 for an
// unknown name, /v1/load_lora_adapter and /v1/unload_lora_adapter behind
// --enable-runtime-lora-updating (a rank above --max-lora-rank is a 400 naming both), more
// adapters than --max-loras taking turns in one slot, vllm:lora_requests_info on /metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "model/config.h"
#include "model/loader/safetensors.h"
#include "model/lora/peft_adapter.h"
#include "serve_process_util.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
using testing_util::http_request;
using testing_util::HttpReply;
using testing_util::ServeProcess;

const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

// A PEFT adapter for the demo model: rank r on q, v and down of every layer, seeded.
void write_adapter(const std::string& dir, int32_t r, uint32_t seed) {
  const ModelConfig cfg = load_model_config(kDemo);
  fs::create_directories(dir);
  const nlohmann::json config = {{"peft_type", "LORA"},
                                 {"r", r},
                                 {"lora_alpha", 2 * r},
                                 {"target_modules", {"q_proj", "v_proj", "down_proj"}}};
  std::ofstream(dir + "/adapter_config.json") << config.dump();
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  auto rnd = [&](int64_t rows, int64_t cols, float scale) {
    Tensor t = Tensor::empty_host(DType::kF32, {rows, cols});
    for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = d(rng) * scale;
    return t;
  };
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    for (LoraModule m : {LoraModule::kQ, LoraModule::kV, LoraModule::kDown}) {
      const auto [out_f, in_f] = lora_module_shape(cfg, m);
      const std::string p = "base_model.model.model.layers." + std::to_string(l) +
                            (m == LoraModule::kDown ? ".mlp." : ".self_attn.") +
                            lora_module_name(m);
      tensors.emplace_back(p + ".lora_A.weight", rnd(r, in_f, 1.0f / std::sqrt(float(in_f))));
      tensors.emplace_back(p + ".lora_B.weight", rnd(out_f, r, 0.5f / float(r)));
    }
  }
  write_safetensors(dir + "/adapter_model.safetensors", tensors);
}

std::string completion(const std::string& model) {
  return R"({"model": ")" + model +
         R"(", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0})";
}

std::string body_of(const HttpReply& r) {
  const size_t p = r.text.find("\r\n\r\n");
  return p == std::string::npos ? "" : r.text.substr(p + 4);
}

std::string text_of(const HttpReply& r) {
  const auto j = nlohmann::json::parse(body_of(r), nullptr, false);
  if (j.is_discarded() || !j.contains("choices")) return "<" + r.text + ">";
  return j["choices"][0]["text"].get<std::string>();
}

TEST(LoraServe, AdaptersByNameLoadedAndUnloadedWhileServing) {
  const fs::path dir =
      fs::temp_directory_path() / ("inferd_lora_serve_" + std::to_string(getpid()));
  write_adapter((dir / "sql").string(), 8, 1);
  write_adapter((dir / "chat").string(), 16, 2);
  write_adapter((dir / "big").string(), 32, 3);
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + " --served-model-name demo --device cpu --host 127.0.0.1 --port 0" +
                      " --enable-lora --max-loras 1 --max-lora-rank 16 --lora-modules sql=" +
                      (dir / "sql").string() + " --enable-runtime-lora-updating"))
      << p.log();
  // /v1/models: the base, then the adapter with its parent.
  const HttpReply models = http_request(p.port(), "GET", "/v1/models");
  ASSERT_EQ(models.status, 200) << models.text;
  const auto list = nlohmann::json::parse(body_of(models));
  ASSERT_EQ(list["data"].size(), 2u) << models.text;
  EXPECT_EQ(list["data"][1]["id"], "sql");
  EXPECT_EQ(list["data"][1]["parent"], "demo");
  EXPECT_EQ(list["data"][1]["root"], (dir / "sql").string());

  const HttpReply base = http_request(p.port(), "POST", "/v1/completions", completion("demo"));
  const HttpReply sql = http_request(p.port(), "POST", "/v1/completions", completion("sql"));
  ASSERT_EQ(base.status, 200) << base.text;
  ASSERT_EQ(sql.status, 200) << sql.text;
  EXPECT_NE(text_of(base), text_of(sql)) << "the adapter changes nothing";
  EXPECT_NE(body_of(sql).find(R"("model":"sql")"), std::string::npos) << sql.text;

  const HttpReply unknown = http_request(p.port(), "POST", "/v1/completions", completion("nope"));
  EXPECT_EQ(unknown.status, 404) << unknown.text;
  EXPECT_NE(unknown.text.find("model_not_found"), std::string::npos) << unknown.text;

  // Loading at run time: a rank over --max-lora-rank is refused naming both.
  const HttpReply big =
      http_request(p.port(), "POST", "/v1/load_lora_adapter",
                   R"({"lora_name": "big", "lora_path": ")" + (dir / "big").string() + R"("})");
  EXPECT_EQ(big.status, 400) << big.text;
  EXPECT_NE(big.text.find("rank 32, more than --max-lora-rank 16"), std::string::npos) << big.text;
  const HttpReply load =
      http_request(p.port(), "POST", "/v1/load_lora_adapter",
                   R"({"lora_name": "chat", "lora_path": ")" + (dir / "chat").string() + R"("})");
  EXPECT_EQ(load.status, 200) << load.text;
  EXPECT_NE(load.text.find("Success: LoRA adapter 'chat' added successfully."), std::string::npos);
  const HttpReply again =
      http_request(p.port(), "POST", "/v1/load_lora_adapter",
                   R"({"lora_name": "chat", "lora_path": ")" + (dir / "chat").string() + R"("})");
  EXPECT_EQ(again.status, 400) << again.text;
  // Two adapters, one slot: they take turns and each answers as it did alone.
  const HttpReply chat = http_request(p.port(), "POST", "/v1/completions", completion("chat"));
  ASSERT_EQ(chat.status, 200) << chat.text;
  EXPECT_NE(text_of(chat), text_of(sql));
  EXPECT_EQ(text_of(http_request(p.port(), "POST", "/v1/completions", completion("sql"))),
            text_of(sql));
  EXPECT_EQ(text_of(http_request(p.port(), "POST", "/v1/completions", completion("chat"))),
            text_of(chat));
  EXPECT_EQ(text_of(http_request(p.port(), "POST", "/v1/completions", completion("demo"))),
            text_of(base));

  const HttpReply metrics = http_request(p.port(), "GET", "/metrics");
  EXPECT_NE(metrics.text.find("vllm:lora_requests_info{max_lora=\"1\",running_lora_adapters=\"\","
                              "waiting_lora_adapters=\"\"}"),
            std::string::npos)
      << metrics.text;

  const HttpReply unload =
      http_request(p.port(), "POST", "/v1/unload_lora_adapter", R"({"lora_name": "chat"})");
  EXPECT_EQ(unload.status, 200) << unload.text;
  EXPECT_EQ(http_request(p.port(), "POST", "/v1/completions", completion("chat")).status, 404);
  const HttpReply unload2 =
      http_request(p.port(), "POST", "/v1/unload_lora_adapter", R"({"lora_name": "chat"})");
  EXPECT_EQ(unload2.status, 404) << unload2.text;
  fs::remove_all(dir);
}

TEST(LoraServe, RuntimeUpdatingIsOffUnlessAsked) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + " --served-model-name demo --device cpu --host 127.0.0.1 --port 0" +
                      " --enable-lora"))
      << p.log();
  const HttpReply r = http_request(p.port(), "POST", "/v1/load_lora_adapter",
                                   R"({"lora_name": "x", "lora_path": "/nonexistent"})");
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_NE(r.text.find("--enable-runtime-lora-updating"), std::string::npos) << r.text;
}

}  // namespace
}  // namespace inferd
