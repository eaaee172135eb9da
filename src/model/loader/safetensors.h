// safetensors reading by mmap: tensors are views into the mapping (no copy at load). A shard still
// being downloaded (core/arriving_files.h) is read as its bytes land.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap_file.h"
#include "core/tensor.h"

namespace inferd {

struct TensorInfo {
  std::string file;  // path of the shard holding it
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  size_t offset = 0;  // absolute byte offset in the file
  size_t nbytes = 0;
};

class ArrivingFiles;

// All tensors of a model directory: `model.safetensors`, or the shards listed by
// `model.safetensors.index.json`, or every `*.safetensors` file in the directory; with files
// arriving in it (arriving_files(dir)), those are read as they land.
class SafetensorsIndex {
 public:
  static SafetensorsIndex open_dir(const std::string& model_dir);
  static SafetensorsIndex open_file(const std::string& path);

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws Error naming the tensor
  // A host view of the tensor (kept alive by the mapping). Throws Error if the tensor is
  // missing or its shape differs from what is expected (an empty `shape` accepts any).
  Tensor get(const std::string& name, std::span<const int64_t> expected_shape = {}) const;
  // As get(), and the dtype must be BF16, F16 or F32 (model weights).
  Tensor get_float(const std::string& name, std::span<const int64_t> expected_shape = {}) const;
  // As get_float(), as a 2-D view [shape[0], product of the other dims] whatever the stored rank
  // (a Conv3d patch embedding [out, c, t, h, w] read as the linear weight it is).
  Tensor get_float_2d(const std::string& name, std::span<const int64_t> expected_shape) const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  // Every tensor's name gets `prefix` in front (a checkpoint saved from the bare decoder, as
  // embedding models are, read under the causal LM's "model." names).
  void add_prefix(const std::string& prefix);
  // Every tensor whose name starts with `from` is renamed to start with `to` instead (a
  // vision-language checkpoint's "language_model.model." read as the text model's "model.").
  void replace_prefix(const std::string& from, const std::string& to);

 private:
  void add_file(const std::string& path);
  void add_mapped(const std::string& path, std::shared_ptr<MappedFile> f);
  // A shard still being downloaded (core/arriving_files.h): mapped at its final size, its header
  // read once it has landed, each tensor's bytes waited for by data_of().
  void add_arriving_file(const std::string& path, const std::string& name,
                         const std::shared_ptr<ArrivingFiles>& arriving);
  const char* data_of(const TensorInfo& ti) const;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::shared_ptr<MappedFile>> files_;
  // Path -> its download and name there, for the shards still arriving when opened.
  std::map<std::string, std::pair<std::shared_ptr<ArrivingFiles>, std::string>> arriving_;
};

// Parses the JSON header of a safetensors file held in memory (tests use this directly).
std::map<std::string, TensorInfo> parse_safetensors_header(const char* data, size_t size,
                                                           const std::string& path);

// Writes tensors to a safetensors file (used by tools and tests to make small models).
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace inferd
