// The LoRA adapters of a loaded model (lora_registry.h).
#include "llm/lora_registry.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/logging.h"

namespace inferd {

LoraRegistry::LoraRegistry(std::shared_ptr<Engine> engine,
                           std::function<LoraAdapter(const std::string&)> read,
                           std::vector<std::string> reserved, int32_t max_loras,
                           int32_t max_cpu_loras)
    : engine_(std::move(engine)),
      read_(std::move(read)),
      reserved_(std::move(reserved)),
      max_loras_(max_loras),
      max_cpu_loras_(max_cpu_loras) {}

LoraAdapterInfo LoraRegistry::load(const std::string& name, const std::string& path) {
  if (name.empty()) fail("a LoRA adapter needs a name");
  if (path.empty()) fail("LoRA adapter '{}': no path", name);
  if (std::find(reserved_.begin(), reserved_.end(), name) != reserved_.end())
    fail("LoRA adapter '{}': the name is the base model's", name);
  {
    std::lock_guard lk(mu_);
    for (const auto& a : adapters_)
      if (a.name == name) fail("LoRA adapter '{}' is already loaded (from {})", name, a.path);
    if (int32_t(adapters_.size()) >= max_cpu_loras_)
      fail(
          "LoRA adapter '{}': {} adapters are loaded, the most --max-cpu-loras allows; unload "
          "one first",
          name, adapters_.size());
  }
  // Read without the lock: a large adapter takes a while, requests go on meanwhile.
  auto adapter = std::make_shared<const LoraAdapter>(read_(path));
  LoraAdapterInfo info{name, path, -1, adapter->max_rank};
  {
    std::lock_guard lk(mu_);
    for (const auto& a : adapters_)
      if (a.name == name) fail("LoRA adapter '{}' is already loaded (from {})", name, a.path);
    info.id = next_id_++;
    engine_->add_lora_adapter(info.id, std::move(adapter));
    adapters_.push_back(info);
  }
  LOG_INFO("LoRA adapter '{}' loaded from {} (rank {}, id {})", name, path, info.rank, info.id);
  return info;
}

void LoraRegistry::unload(const std::string& name) {
  std::lock_guard lk(mu_);
  auto it = std::find_if(adapters_.begin(), adapters_.end(),
                         [&](const LoraAdapterInfo& a) { return a.name == name; });
  if (it == adapters_.end()) fail("no LoRA adapter named '{}' is loaded", name);
  engine_->remove_lora_adapter(it->id);
  LOG_INFO("LoRA adapter '{}' unloaded", name);
  adapters_.erase(it);
}

std::vector<LoraAdapterInfo> LoraRegistry::list() const {
  std::lock_guard lk(mu_);
  return adapters_;
}

int32_t LoraRegistry::id_of(const std::string& name) const {
  std::lock_guard lk(mu_);
  for (const auto& a : adapters_)
    if (a.name == name) return a.id;
  return -1;
}

std::pair<std::string, std::string> parse_lora_module(const std::string& spec) {
  if (!spec.empty() && spec.front() == '{') {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(spec);
    } catch (const nlohmann::json::exception&) {
      fail("--lora-modules '{}': not valid JSON", spec);
    }
    if (!j.contains("name") || !j["name"].is_string() || !j.contains("path") ||
        !j["path"].is_string())
      fail("--lora-modules '{}': expected {{\"name\": ..., \"path\": ...}}", spec);
    if (j.contains("base_model_name") && !j["base_model_name"].is_null() &&
        !j["base_model_name"].is_string())
      fail("--lora-modules '{}': base_model_name must be a string", spec);
    return {j["name"].get<std::string>(), j["path"].get<std::string>()};
  }
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    fail("--lora-modules '{}': expected name=path", spec);
  return {spec.substr(0, eq), spec.substr(eq + 1)};
}

}  // namespace inferd
