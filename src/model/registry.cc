// The model registry (registry.h): one line a family.
#include "model/registry.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/causal_lm.h"
#include "model/loader/model_loader.h"
#include "model/models/models.h"

namespace inferd {

nlohmann::json Architecture::text_config(const nlohmann::json& j, const std::string& src) const {
  (void)src;
  return j;
}

namespace {

const std::vector<const Architecture*>& registry() {
  // One line a family (models/models.h names what each serves).
  // clang-format off
  static const std::vector<const Architecture*> kFamilies = {
      &llama_architecture(),
      &qwen2_architecture(),
      &qwen2_5_vl_architecture(),
      &qwen3_architecture(),
      &gemma3_architecture(),
      &phi3_architecture(),
      &olmo2_architecture(),
      &granite_architecture(),
      &qwen3_moe_architecture(),
      &mixtral_architecture(),
      &gpt_oss_architecture(),
      &eagle3_architecture(),
  };
  // clang-format on

  return kFamilies;
}

}  // namespace

const Architecture* find_architecture(const std::string& architecture) {
  for (const Architecture* a : registry()) {
    for (const std::string& n : a->names())
      if (n == architecture) return a;
  }
  return nullptr;
}

std::string supported_architectures() {
  std::string out;
  for (const Architecture* a : registry()) {
    for (const std::string& n : a->names()) out += (out.empty() ? "" : ", ") + n;
  }
  return out;
}

bool CausalLM::takes_images(std::string* why_not) const {
  if (why_not) *why_not = fmt::format("{} has no vision tower", cfg_.architecture);
  return false;
}

int32_t CausalLM::image_tokens(const media::PixelValues& pv) const {
  (void)pv;
  fail("{} takes no images", cfg_.architecture);
}

std::vector<float> CausalLM::embed_image(const media::PixelValues& pv) const {
  (void)pv;
  fail("{} takes no images", cfg_.architecture);
}

void CausalLM::attach_lora(const LoraWeights& lora) {
  (void)lora;
  fail(
      "LoRA adapters are not supported for {} models: expected a Llama-family model "
      "(LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
      "GraniteForCausalLM)",
      cfg_.architecture);
}

std::vector<KvCacheSpec> CausalLM::kv_cache_spec() const {
  return std::vector<KvCacheSpec>(size_t(cfg_.num_layers), {cfg_.num_kv_heads, cfg_.head_dim});
}

std::unique_ptr<CausalLM> create_model(ModelLoader& loader) {
  const ModelConfig& c = loader.config();
  const Architecture* arch = find_architecture(c.architecture);
  INFERD_CHECK(arch != nullptr, "no architecture '{}' in the registry", c.architecture);
  return arch->create(c, loader);
}

}  // namespace inferd
