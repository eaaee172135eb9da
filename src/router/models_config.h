// What `inferd serve` with several models reads before it starts (model_manager.h): the models
// of repeated --model flags ("PATH" or "NAME=PATH") or of a --models file, each with its own serve
// flags; memory sizes ("24GiB", "512MiB", "8e9"); and each model's memory need, estimated before
// it loads from its files (or, for --load-format dummy, from config.json's shape) and its KV-cache
// settings.
//
// The --models file is JSON (nlohmann-json) or YAML (yaml-cpp, models_yaml.h) with the same keys:
// {"models": [{"name": "qwen", "model": "/models/qwen3-8b", "aliases": ["q"], "memory": "20GiB",
// "max_model_len": 8192, "dtype": "bfloat16", ...}, ...]} (or the list alone), or in YAML
//   models:
//     - name: qwen
//       model: /models/qwen3-8b
//       max_model_len: 8192
// Any other key is a serve flag in snake_case or kebab-case.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace inferd::router {

// A serve flag without its dashes and its value ("max-model-len", "8192"); a flag without a value
// ("enforce-eager", "") is passed bare.
using FlagValue = std::pair<std::string, std::string>;

struct ModelEntry {
  std::string name;
  std::vector<std::string> aliases;
  std::string path;
  std::optional<int64_t> memory_bytes;  // "memory": what the model may take, overriding estimates
  std::vector<FlagValue> flags;         // its own serve flags
  int line = 0;                         // where it starts in its file (0: a --model flag)
};

// "123" (bytes), "1.5GiB", "24G" (binary), "24GB" (decimal), "512MiB", "512M", "64KiB", "2TiB".
// Throws Error naming `what` and the text.
int64_t parse_memory_size(const std::string& text, const std::string& what);

// A --model value: "NAME=PATH" or "PATH" (the name: the directory's or file's name, without
// .gguf).
ModelEntry model_from_flag(const std::string& value);

// Parses a --models file: YAML when `source` ends in .yaml or .yml (or, with neither those nor
// .json, when `text` opens no JSON object or list), else JSON. `known_flag(name)` says whether
// `serve` takes --name (name in kebab-case) per model; any other key is an Error naming the file,
// its line and the key.
std::vector<ModelEntry> parse_models_file(
    const std::string& text, const std::string& source,
    const std::function<bool(const std::string&)>& known_flag);

// Checks a set of models: names and aliases unique, paths given. Throws Error.
void check_models(const std::vector<ModelEntry>& models);

// The flags a model's process gets: `shared` (the serve command line's) with the model's own
// replacing any of the same name. As "--flag=value" / "--flag" arguments.
std::vector<FlagValue> merge_flags(const std::vector<FlagValue>& shared,
                                   const std::vector<FlagValue>& own);
std::vector<std::string> to_args(const std::vector<FlagValue>& flags);

// What the estimate needs to know of the machine.
struct MachineMemory {
  int64_t gpu_total_bytes = 0;   // 0: no GPU
  int64_t host_total_bytes = 0;  // MemTotal
};
MachineMemory probe_machine_memory();  // nvidia-smi (when there is one) and /proc/meminfo

// Whether a model with these flags runs on the GPU (--device cuda, or auto with a GPU).
bool runs_on_gpu(const std::vector<FlagValue>& flags, const MachineMemory& m);

// The memory a model takes once loaded, in bytes: "memory" when given; else its weights (the
// sizes of its weight files, or config.json's shape for --load-format dummy) plus its KV cache
// (--num-kv-blocks, else on a GPU --gpu-memory-utilization x the GPU's memory in all, else
// --kv-cache-memory) plus an allowance for activations and runtime. `how` says which.
int64_t estimate_need_bytes(const ModelEntry& m, const std::vector<FlagValue>& flags,
                            const MachineMemory& machine, std::string* how = nullptr);

// The default --memory-budget: the GPU's memory when a model runs on the GPU, else 90 % of the
// host's.
int64_t default_memory_budget(bool gpu, const MachineMemory& m);

}  // namespace inferd::router
