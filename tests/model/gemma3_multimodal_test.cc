// Gemma3ForConditionalGeneration's text model (issue 34): the gemma3 golden model saved again as
// a vision-language checkpoint (the config under text_config with the multimodal keys at the top
// level, the tensors under "language_model.model." or "model.language_model.", a vision tensor
// beside them) gives the golden logits.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;

// The gemma3 golden model as a Gemma3ForConditionalGeneration directory; `prefix` replaces
// "model." in the text model's tensor names.
std::string make_multimodal_copy(const std::string& prefix, bool drop_defaults) {
  const std::string src = testing_util::goldens_dir() + "gemma3";
  const std::string dir =
      (fs::temp_directory_path() /
       ("inferd-gemma3-mm-" + std::to_string(::getpid()) + "-" + std::to_string(prefix.size())))
          .string();
  fs::create_directories(dir);
  std::ifstream f(src + "/config.json");
  nlohmann::json text = nlohmann::json::parse(f);
  text.erase("architectures");
  if (drop_defaults) text.erase("rms_norm_eps");  // Gemma3TextConfig's default (1e-6) fills it
  nlohmann::json top = {{"architectures", {"Gemma3ForConditionalGeneration"}},
                        {"model_type", "gemma3"},
                        {"mm_tokens_per_image", 4},
                        {"boi_token_index", 5},
                        {"eoi_token_index", 6},
                        {"image_token_index", 7},
                        {"text_config", text},
                        {"vision_config", {{"hidden_size", 8}}}};
  std::ofstream(dir + "/config.json") << top.dump(2);
  fs::copy_file(src + "/generation_config.json", dir + "/generation_config.json",
                fs::copy_options::overwrite_existing);
  const SafetensorsIndex st = SafetensorsIndex::open_file(src + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, info] : st.tensors()) {
    std::string n = name;
    if (n.starts_with("model.")) n = prefix + n.substr(6);
    out.emplace_back(n, st.get(name));
  }
  std::vector<float> v(8, 1.0f);
  out.emplace_back("vision_tower.vision_model.post_layernorm.weight",
                   Tensor(v.data(), DType::kF32, {8}));
  write_safetensors(dir + "/model.safetensors", out);
  return dir;
}

void expect_golden_logits(const std::string& dir) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  ModelRunner m(dir, o, make_cpu_backend(2));
  EXPECT_EQ(m.config().architecture, "Gemma3ForConditionalGeneration");
  const auto gold =
      SafetensorsIndex::open_file(testing_util::goldens_dir() + "gemma3/golden.safetensors");
  const auto ids = testing_util::ints(gold.get("prompt0.ids"));
  const Tensor ref = gold.get("prompt0.logits");
  const auto got = testing_util::forward_all(m, {ids}, 64)[0];
  ASSERT_EQ(got.size(), size_t(ref.numel()));
  EXPECT_LT(testing_util::rel_err(got.data(), ref.data_as<float>(), got.size()), 1e-4);
}

TEST(Gemma3Multimodal, TextModelOfAnOlderSave) {
  const std::string dir = make_multimodal_copy("language_model.model.", false);
  expect_golden_logits(dir);
  fs::remove_all(dir);
}

TEST(Gemma3Multimodal, TextModelOfANewerSaveWithDefaultsLeftOut) {
  const std::string dir = make_multimodal_copy("model.language_model.", true);
  expect_golden_logits(dir);
  fs::remove_all(dir);
}

TEST(Gemma3Multimodal, MissingTextConfigIsAnError) {
  const std::string dir = make_multimodal_copy("language_model.model.", false);
  std::ofstream(dir + "/config.json")
      << R"({"architectures": ["Gemma3ForConditionalGeneration"], "vision_config": {}})";
  RunnerOptions o;
  o.num_kv_blocks = 8;
  EXPECT_THROW(ModelRunner(dir, o, make_cpu_backend(1)), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace inferd
