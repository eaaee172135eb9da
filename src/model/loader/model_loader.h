// The model loader: what an architecture's create() reads its weights through. It maps checkpoint
// tensors (safetensors, mmap'd: no copy on the CPU) or seeded dummy values (--load-format dummy:
// drawn on the device, no host copy) to module weights by name, shard-aware (a column- or
// row-parallel linear can take its slice; issue 33), and gives each linear layer its quantization
// method. A GGUF file (issue 35) is the other source: its tensors under the Hugging Face names.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/quant/quant_method.h"

namespace inferd {

class SafetensorsIndex;
class GgufWeights;

enum class LoadFormat : uint8_t { kAuto, kSafetensors, kGguf, kDummy };
LoadFormat parse_load_format(const std::string& s);

struct LoadOptions {
  LoadFormat format = LoadFormat::kAuto;
  uint64_t dummy_seed = 0;
  DType dummy_dtype = DType::kBF16;  // weight dtype of --load-format dummy
  // "fp8": linear weights quantized to FP8 per output channel at load (vLLM's --quantization
  // fp8); "": as stored (FP8 checkpoints stay FP8 whatever this says).
  std::string quantization;
  // Embeddings (--task embed): the model is loaded without an lm_head (checkpoints of embedding
  // models have none; compute_logits then fails). Checkpoints saved from the bare decoder (tensor
  // names without the "model." prefix, as embedding models ship) load whatever this says.
  bool pooling_only = false;
  // Tensor parallelism (issue 33): this copy of the model is one rank of a group, and its
  // column- and row-parallel linears (and a vocabulary that divides evenly) read their slices.
  TensorParallel tp;
  // EAGLE-3 heads (issue 26): the target's token embedding table ([vocab, hidden] on the same
  // device), which the head embeds its tokens with (published heads carry no embed_tokens).
  Tensor shared_embedding;
};

class ModelLoader {
 public:
  // `model_dir`: a Hugging Face directory or a GGUF file. `max_model_len`: the runner's longest
  // sequence (rope types that depend on it).
  ModelLoader(const std::string& model_dir, const ModelConfig& config, const LoadOptions& opts,
              DeviceRuntime& runtime, int64_t max_model_len);
  ~ModelLoader();
  ModelLoader(const ModelLoader&) = delete;
  ModelLoader& operator=(const ModelLoader&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const LoadOptions& options() const { return opts_; }
  DeviceRuntime& runtime() { return rt_; }
  int64_t max_model_len() const { return max_model_len_; }
  const std::string& model_dir() const { return model_dir_; }
  bool dummy() const { return opts_.format == LoadFormat::kDummy; }
  // The checkpoint's tensors (not under --load-format dummy).
  const SafetensorsIndex& checkpoint() const;
  // The same, or null under --load-format dummy.
  const SafetensorsIndex* checkpoint_if_any() const { return st_.get(); }
  // The GGUF file's tensors when the model is one, else null.
  const GgufWeights* gguf() const { return gguf_.get(); }
  const QuantizationConfig& quantization() const { return *quant_; }
  // Shared: the model's linear layers keep their methods alive after the loader is gone.
  const std::shared_ptr<const QuantizationConfig>& quantization_ptr() const { return quant_; }

  // A float weight [shape] as stored (a host view of the mapping), checked against `shape`; under
  // dummy, seeded values drawn on the device (stddev 0.02, the dummy dtype). With a shard: its
  // slice (rows: a view; columns: a copy).
  Tensor weight(const std::string& name, std::span<const int64_t> shape, const Shard& shard = {});
  Tensor weight(const std::string& name, std::initializer_list<int64_t> shape) {
    return weight(name, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  // A norm weight [n] placed for the backend (fp32). `plus_one`: the checkpoint stores w and the
  // norm scales by (1 + w) (Gemma): folded here in fp32 (dummy norms are the neutral 1 already).
  Tensor norm(const std::string& name, int64_t n, bool plus_one = false);
  // The fp32 bias of a linear made of `parts` ("<name>.bias" each, each part's shard), or
  // undefined.
  Tensor bias(const std::vector<LinearSpec::Part>& parts);
  // Bytes of the tensors weight(), norm() and bias() handed out so far: slices of sharded
  // tensors, and whole ones (tensor parallelism: each rank reads its shard only; tests).
  int64_t sharded_bytes() const { return sharded_bytes_; }
  int64_t whole_bytes() const { return whole_bytes_; }

 private:
  ModelConfig cfg_;
  LoadOptions opts_;
  DeviceRuntime& rt_;
  int64_t max_model_len_;
  std::string model_dir_;
  std::unique_ptr<SafetensorsIndex> st_;
  std::unique_ptr<GgufWeights> gguf_;
  std::shared_ptr<const QuantizationConfig> quant_;
  int64_t sharded_bytes_ = 0, whole_bytes_ = 0;
  // Counts t's bytes as sharded (a slice) or whole; returns t.
  Tensor count(Tensor t, const Shard& shard);
};

// Part s.rank of s.size along s.dim of a host [rows, cols] tensor of any dtype (or of a vector,
// dim 0): rows are a view, columns a copy; `t` itself when s is whole. Throws Error naming `name`
// when the dimension does not divide.
Tensor host_shard(const Tensor& t, const Shard& s, const std::string& name);

// The seed of the dummy values of tensor `name` (FNV-1a of the name, mixed with the load seed).
uint64_t dummy_seed_of(uint64_t load_seed, const std::string& name);

}  // namespace inferd
