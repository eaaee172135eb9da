// The gated MLP of the Llama family: down(act(gate(x)) * up(x)), gate and up as one merged GEMM
// (the checkpoint's gate_proj + up_proj, or Phi-3's fused gate_up_proj), SiLU or GELU (tanh).
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "model/layers/linear.h"

namespace inferd {

class ModelLoader;

enum class Activation : uint8_t { kSilu, kGeluTanh };

class GatedMlp {
 public:
  // `prefix`: "model.layers.<i>.mlp."
  GatedMlp(const std::string& prefix, int64_t hidden, int64_t intermediate, Activation act,
           bool fused_gate_up, ModelLoader& loader);
  // out [T, hidden]; `gate_up` [T, 2F] and `act` [T, F] are workspace.
  void forward(KernelOps& ops, const Tensor& x, Tensor gate_up, Tensor act, Tensor out) const;
  // The same with each row's LoRA adapter on gate_up and down (set_lora).
  void forward(KernelOps& ops, const DeviceBatch& b, const Tensor& x, Tensor gate_up, Tensor act,
               Tensor out) const;
  void set_lora(const LoraLinear* gate_up, const LoraLinear* down) {
    gate_up_.set_lora(gate_up);
    down_.set_lora(down);
  }

 private:
  void activate(KernelOps& ops, const Tensor& gate_up, Tensor act) const;

  Activation act_;
  LinearLayer gate_up_, down_;
};

}  // namespace inferd
