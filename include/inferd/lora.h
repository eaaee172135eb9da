// LoRA adapters served beside the base model (issue 29), as vLLM serves them: each has a name a
// request's `model` may give, the directory it was loaded from (PEFT's adapter_config.json +
// adapter_model.safetensors) and the id the engine knows it by (GenerateRequest::lora_adapter_id).
// LLM::lora() gives the set of a model loaded with --enable-lora; it is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace inferd {

struct LoraAdapterInfo {
  std::string name;
  std::string path;
  int32_t id = -1;
  int32_t rank = 0;  // the largest rank of its modules
};

class LoraAdapters {
 public:
  virtual ~LoraAdapters() = default;
  // Loads the adapter at `path` under `name`. Throws Error: the name is taken (by an adapter or
  // by the base model), the files are missing or unsupported, a rank exceeds --max-lora-rank, or
  // --max-cpu-loras adapters are loaded already.
  virtual LoraAdapterInfo load(const std::string& name, const std::string& path) = 0;
  // Throws Error when no adapter has that name. Requests already running with it finish.
  virtual void unload(const std::string& name) = 0;
  virtual std::vector<LoraAdapterInfo> list() const = 0;  // in load order
  // The id of adapter `name`, or -1.
  virtual int32_t id_of(const std::string& name) const = 0;
  virtual int32_t max_loras() const = 0;  // adapters one step may mix (--max-loras)
};

}  // namespace inferd
