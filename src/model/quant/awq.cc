// AWQ checkpoints (quant_method "awq", version "gemm"), as AutoAWQ's WQLinear_GEMM writes them
// (AutoAWQ, awq/modules/linear/gemm.py: from_linear packs, and awq/utils/packing_utils.py's
// AWQ_ORDER / AWQ_REVERSE_ORDER unpack; vLLM's awq.py reads the same layout):
//   qweight int32 [in, out / 8]: the codes of outputs 8w .. 8w+7 of one input, packed in AWQ's
//     nibble order: bits 4i..4i+3 hold output 8w + kOrder[i], kOrder = [0, 2, 4, 6, 1, 3, 5, 7];
//   qzeros  int32 [in / group, out / 8]: the zero points, packed the same way;
//   scales  fp16  [in / group, out];
//   w[o, i] = (q[i, o] - zero[i / group, o]) * scale[i / group, o].
// 4 bits only, zero points always (zero_point = false is refused when the config is parsed).
#include "core/error.h"
#include "model/loader/safetensors.h"
#include "model/quant/int_weights.h"

namespace inferd {

namespace {

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

class AwqMethod final : public IntLinearMethod {
 public:
  std::string name() const override { return "awq"; }
  std::string marker_suffix() const override { return "qweight"; }

  IntQuantWeight read_part(const SafetensorsIndex& st, const std::string& name, int64_t rows,
                           int64_t cols, const QuantConfig& qc) const override {
    if (rows % 8 != 0)
      fail("awq linear '{}': {} output features is not a multiple of 8", name, rows);
    if (cols % qc.group_size != 0)
      fail("awq linear '{}': {} input features is not a multiple of group_size {}", name, cols,
           qc.group_size);
    IntQuantWeight w = int_weight_part(rows, cols, 4, qc.group_size);
    const int64_t G = w.groups();
    const Tensor qweight = checkpoint_tensor(st, name + ".qweight", DType::kI32, {cols, rows / 8});
    const Tensor qzeros = checkpoint_tensor(st, name + ".qzeros", DType::kI32, {G, rows / 8});
    w.scales = checkpoint_floats(st, name + ".scales", {G, rows});
    const auto* qw = qweight.data_as<const uint32_t>();
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t p = 0; p < rows / 8; ++p)
        for (int n = 0; n < 8; ++n)
          w.q[size_t((p * 8 + kAwqOrder[n]) * cols + i)] =
              packed_code(qw[i * (rows / 8) + p], n, 4);
    const auto* qz = qzeros.data_as<const uint32_t>();
    for (int64_t g = 0; g < G; ++g)
      for (int64_t p = 0; p < rows / 8; ++p)
        for (int n = 0; n < 8; ++n)
          w.zeros[size_t(g * rows + p * 8 + kAwqOrder[n])] =
              float(packed_code(qz[g * (rows / 8) + p], n, 4));
    return w;
  }
};

}  // namespace

std::unique_ptr<IntLinearMethod> make_awq_method() {
  return std::make_unique<AwqMethod>();
}

}  // namespace inferd
