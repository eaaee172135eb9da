// The LoRA adapters of a loaded model (inferd/lora.h): names, ids and host copies, handed to the
// engine (which gives them to the executor between steps). --max-cpu-loras bounds how many are
// loaded at once; the runner keeps --max-loras of them in device slots.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "inferd/engine.h"
#include "inferd/lora.h"
#include "model/lora/peft_adapter.h"

namespace inferd {

class LoraRegistry final : public LoraAdapters {
 public:
  // `read` loads an adapter directory for the model (shapes and --max-lora-rank checked);
  // `reserved`: names adapters may not take (the served model names).
  LoraRegistry(std::shared_ptr<Engine> engine,
               std::function<LoraAdapter(const std::string& path)> read,
               std::vector<std::string> reserved, int32_t max_loras, int32_t max_cpu_loras);
  LoraAdapterInfo load(const std::string& name, const std::string& path) override;
  void unload(const std::string& name) override;
  std::vector<LoraAdapterInfo> list() const override;
  int32_t id_of(const std::string& name) const override;
  int32_t max_loras() const override { return max_loras_; }

 private:
  std::shared_ptr<Engine> engine_;
  std::function<LoraAdapter(const std::string&)> read_;
  std::vector<std::string> reserved_;
  int32_t max_loras_, max_cpu_loras_;
  mutable std::mutex mu_;
  std::vector<LoraAdapterInfo> adapters_;
  int32_t next_id_ = 0;  // never reused: prefix-cache keys hold ids
};

// "name=path" (vLLM's --lora-modules form; also its JSON form {"name": ..., "path": ...}) ->
// (name, path). Throws Error naming the flag.
std::pair<std::string, std::string> parse_lora_module(const std::string& spec);

}  // namespace inferd
