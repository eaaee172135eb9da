// The gated MLP (mlp.h).
#include "model/layers/mlp.h"

#include "core/error.h"
#include "model/loader/model_loader.h"

namespace inferd {

GatedMlp::GatedMlp(const std::string& p, int64_t H, int64_t F, Activation act, bool fused,
                   ModelLoader& loader)
    : act_(act) {
  // Tensor parallelism: gate and up keep this rank's 1/size of the columns each, down the same
  // inputs (linear.h).
  if (const TensorParallel& tp = loader.options().tp; tp.enabled()) {
    if (fused)
      fail("--tensor-parallel-size {}: a fused gate_up_proj (Phi-3) is not sharded yet", tp.size);
    if (F % tp.size != 0)
      fail(
          "--tensor-parallel-size {}: the MLP's intermediate size {} does not divide into {} ranks",
          tp.size, F, tp.size);
  }
  if (fused) {
    gate_up_ = LinearLayer(merged_column_linear({{p + "gate_up_proj", 2 * F}}, H), loader);
  } else {
    gate_up_ =
        LinearLayer(merged_column_linear({{p + "gate_proj", F}, {p + "up_proj", F}}, H), loader);
  }
  down_ = LinearLayer(row_linear(p + "down_proj", H, F), loader);
}

void GatedMlp::activate(KernelOps& ops, const Tensor& gate_up, Tensor act) const {
  if (act_ == Activation::kGeluTanh) {
    ops.gelu_tanh_mul(gate_up, act);
  } else {
    ops.silu_mul(gate_up, act);
  }
}

void GatedMlp::forward(KernelOps& ops, const Tensor& x, Tensor gate_up, Tensor act,
                       Tensor out) const {
  gate_up_.apply(ops, x, gate_up);
  activate(ops, gate_up, act);
  down_.apply(ops, act, out);
}

void GatedMlp::forward(KernelOps& ops, const DeviceBatch& b, const Tensor& x, Tensor gate_up,
                       Tensor act, Tensor out) const {
  gate_up_.apply(ops, x, gate_up, b);
  activate(ops, gate_up, act);
  down_.apply(ops, act, out, b);
}

}  // namespace inferd
