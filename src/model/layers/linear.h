// A linear layer y = x W^T (+ b): plain, merged column (q/k/v or gate/up stacked along the output,
// one GEMM) or row (o, down). Its quantization method (model/quant) creates, processes and applies
// the weights; the layer does not know which method that is.
#pragma once

#include <memory>
#include <string>
#include <vector>

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
  }
  // The same, then each row's LoRA adapter added when one is attached (issue 29).
  void apply(KernelOps& ops, const Tensor& x, Tensor out, const DeviceBatch& b) const {
    if (lora_ != nullptr) ops.lora_begin(x, *lora_, b);  // the shrink may run beside the GEMM
    method_->apply(ops, *w_, x, out);
    if (lora_ != nullptr) ops.lora_add(x, *lora_, b, out);
  }
  // The LoRA slots of this linear (owned by the runner's LoraWeights); null: none.
  void set_lora(const LoraLinear* lora) { lora_ = lora; }

 private:
  std::shared_ptr<const QuantizationConfig> quant_;  // owns method_
  const LinearMethod* method_ = nullptr;
  std::unique_ptr<LinearWeights> w_;
  const LoraLinear* lora_ = nullptr;
};

// A plain linear `<name>.weight` [out, in] (+ `<name>.bias`).
LinearSpec plain_linear(const std::string& name, int64_t out, int64_t in, bool bias = false,
                        LinearSpec::Parallel parallel = LinearSpec::Parallel::kReplicated);
// Column-parallel parts stacked along the output: (name, rows) each, one `in`.
LinearSpec merged_column_linear(std::vector<LinearSpec::Part> parts, int64_t in, bool bias = false);
// A row-parallel linear (attention output, MLP down).
LinearSpec row_linear(const std::string& name, int64_t out, int64_t in, bool bias = false);

}  // namespace inferd
