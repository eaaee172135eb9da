// A linear layer y = x W^T (+ b): plain, merged column (q/k/v or gate/up stacked along the output,
// one GEMM) or row (o, down). Its quantization method (model/quant) creates, processes and applies
// the weights; the layer does not know which method that is. Under tensor parallelism (the
// loader's TensorParallel) a column-parallel layer keeps its rank's rows of each part (a part's
// own shard when the spec sets one, else 1/size), a row-parallel one its rank's inputs, adds the
// bias on rank 0 only and all-reduces its output, so that every rank holds the whole sum.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/communicator.h"
#include "model/quant/quant_method.h"

namespace inferd {

class ModelLoader;

class LinearLayer {
 public:
  LinearLayer() = default;
  // Creates the weights through the loader's quantization config and processes them at once
  // (weights load layer by layer, so a bf16 copy quantized on the device is freed right away).
  LinearLayer(const LinearSpec& spec, ModelLoader& loader);
  LinearLayer(LinearLayer&&) noexcept = default;
  LinearLayer& operator=(LinearLayer&&) noexcept = default;

  void apply(KernelOps& ops, const Tensor& x, Tensor out) const {
    method_->apply(ops, *w_, x, out);
    if (reduce_ != nullptr) reduce_->all_reduce_sum(out);
  }
  // The same, then each row's LoRA adapter added when one is attached (issue 29).
  void apply(KernelOps& ops, const Tensor& x, Tensor out, const DeviceBatch& b) const {
    if (lora_ != nullptr) ops.lora_begin(x, *lora_, b);  // the shrink may run beside the GEMM
    method_->apply(ops, *w_, x, out);
    if (lora_ != nullptr) ops.lora_add(x, *lora_, b, out);
    if (reduce_ != nullptr) reduce_->all_reduce_sum(out);
  }
  // The LoRA slots of this linear (owned by the runner's LoraWeights); null: none.
  void set_lora(const LoraLinear* lora) { lora_ = lora; }

 private:
  std::shared_ptr<const QuantizationConfig> quant_;  // owns method_
  const LinearMethod* method_ = nullptr;
  std::unique_ptr<LinearWeights> w_;
  const LoraLinear* lora_ = nullptr;
  Communicator* reduce_ = nullptr;  // a row-parallel layer's group (tensor parallelism)
};

// A plain linear `<name>.weight` [out, in] (+ `<name>.bias`).
LinearSpec plain_linear(const std::string& name, int64_t out, int64_t in, bool bias = false,
                        LinearSpec::Parallel parallel = LinearSpec::Parallel::kReplicated);
// Column-parallel parts stacked along the output: (name, rows) each, one `in`.
LinearSpec merged_column_linear(std::vector<LinearSpec::Part> parts, int64_t in, bool bias = false);
// A row-parallel linear (attention output, MLP down).
LinearSpec row_linear(const std::string& name, int64_t out, int64_t in, bool bias = false);

}  // namespace inferd
