// GGUF models (issue 35): a GGUF file's metadata read as the config.json of the Hugging Face model
// it was converted from, so each architecture's own config parsing applies unchanged, and its
// tensors found under the Hugging Face names the architectures ask for (llama.cpp's Q/K row
// permutation of llama-style rope undone, Gemma's folded (1 + w) norms noted).
//
// Architectures (general.architecture): llama (Llama, Mistral), qwen2, qwen3, gemma3, phi3.
// Published descriptions followed: llama.cpp's convert_hf_to_gguf.py (how each Hugging Face
// config key and tensor is written) and src/llama-arch.cpp (key and tensor names).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/tensor.h"
#include "model/config.h"
#include "model/loader/gguf.h"

namespace inferd {

// True when `path` names a GGUF file (by its magic), a split set's first file included.
bool is_gguf_model_path(const std::string& path);

// The config.json the metadata stands for (throws Error naming a missing or unsupported key, or an
// unsupported general.architecture with the supported list).
nlohmann::json gguf_config_json(const GgufFile& f);
// parse_model_config of that JSON, plus what config.json cannot say: llama.cpp's rope frequency
// factors (the rope_freqs tensor of Llama 3.1 files) and the longrope factors of Phi-3 files.
ModelConfig gguf_model_config(const GgufFile& f);
// One line for the load log: the file, its GGUF version, the tensor types with their counts and
// bytes ("GGUF v3 model.gguf: 8 files ... q4_K 193 tensors (3.9 GB), q6_K 33 (1.0 GB), f32 65").
std::string gguf_summary(const GgufFile& f);
// Opens `path` and returns its model config.
ModelConfig load_gguf_model_config(const std::string& path);

// The tensors of a GGUF model under Hugging Face names.
class GgufWeights {
 public:
  GgufWeights(std::shared_ptr<const GgufFile> file, const ModelConfig& config);

  const GgufFile& file() const { return *file_; }
  // The GGUF name of a Hugging Face tensor name ("model.layers.3.self_attn.q_proj.weight" ->
  // "blk.3.attn_q.weight"), or "" when the architecture has no such tensor.
  std::string gguf_name(const std::string& hf_name) const;
  // The tensor behind a Hugging Face name, or null.
  const GgufTensorInfo* find(const std::string& hf_name) const;
  const GgufTensorInfo& get(const std::string& hf_name) const;  // throws Error naming both names
  // True when the tensor's rows must be reordered (llama.cpp permutes q/k of llama-style rope).
  bool permuted(const std::string& hf_name) const;
  // The tensor as it is stored, rows in the Hugging Face order, checked against `shape`
  // ([rows, cols] or [n]): float types (F32/F16/BF16) as their dtype, block types as kU8
  // [rows, row_bytes]. A view of the mapping unless rows had to be reordered (then a copy).
  Tensor raw(const std::string& hf_name, std::span<const int64_t> shape) const;
  // The values as floats: F32/F16/BF16 as stored (view or reordered copy), block types
  // dequantized into a new fp32 host tensor.
  Tensor get_float(const std::string& hf_name, std::span<const int64_t> shape) const;
  // Gemma's converter stores norm weights as (1 + w): the loader must not add 1 again.
  bool norms_plus_one_folded() const { return norms_folded_; }

 private:
  std::shared_ptr<const GgufFile> file_;
  std::string arch_;
  int64_t num_heads_ = 0, num_kv_heads_ = 0;
  bool permute_qk_ = false;
  bool norms_folded_ = false;
};

}  // namespace inferd
