// GPTQ checkpoints (quant_method "gptq"), as AutoGPTQ's QuantLinear.pack and GPTQModel write them
// (AutoGPTQ auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py; GPTQModel's "gptq" and "gptq_v2"
// checkpoint formats; vLLM's gptq.py reads the same layout). With pf = 32 / bits codes a word:
//   qweight int32 [in / pf, out]: word r of output o holds inputs pf*r .. pf*r + pf-1, input
//     pf*r + j in bits bits*j ..;
//   qzeros  int32 [groups, out / pf]: word p of group g holds outputs pf*p + j in bits bits*j ..,
//     each stored minus one in the v1 format (checkpoint_format "gptq", AutoGPTQ's off-by-one:
//     read back plus one, after masking); as they are in "gptq_v2";
//   scales  fp16  [groups, out];
//   g_idx   int32 [in]: the group of each input (act-order, desc_act = true; ignored otherwise,
//     where the group of input i is i / group_size); group_size -1 means one group;
//   w[o, i] = (q[i, o] - zero[g_idx[i], o]) * scale[g_idx[i], o].
// Symmetric checkpoints store their zero points too (2^(bits-1), minus one in v1): they are read
// like the others. 4 and 8 bits.
#include "core/error.h"
#include "model/loader/safetensors.h"
#include "model/quant/int_weights.h"

namespace inferd {

namespace {

class GptqMethod final : public IntLinearMethod {
 public:
  std::string name() const override { return "gptq"; }
  std::string marker_suffix() const override { return "qweight"; }

  IntQuantWeight read_part(const SafetensorsIndex& st, const std::string& name, int64_t rows,
                           int64_t cols, const QuantConfig& qc) const override {
    const int bits = qc.bits;
    const int64_t pf = 32 / bits;
    if (cols % pf != 0 || rows % pf != 0)
      fail("gptq linear '{}': {} x {} is not a multiple of {} both ways ({} bits)", name, rows,
           cols, pf, bits);
    IntQuantWeight w = int_weight_part(rows, cols, bits, qc.group_size);
    const int64_t G = w.groups();
    const Tensor qweight = checkpoint_tensor(st, name + ".qweight", DType::kI32, {cols / pf, rows});
    const Tensor qzeros = checkpoint_tensor(st, name + ".qzeros", DType::kI32, {G, rows / pf});
    w.scales = checkpoint_floats(st, name + ".scales", {G, rows});
    const auto* qw = qweight.data_as<const uint32_t>();
    for (int64_t r = 0; r < cols / pf; ++r)
      for (int64_t o = 0; o < rows; ++o)
        for (int64_t j = 0; j < pf; ++j)
          w.q[size_t(o * cols + r * pf + j)] = packed_code(qw[r * rows + o], j, bits);
    const auto* qz = qzeros.data_as<const uint32_t>();
    const float off = qc.gptq_v1_zeros ? 1.0f : 0.0f;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t p = 0; p < rows / pf; ++p)
        for (int64_t j = 0; j < pf; ++j)
          w.zeros[size_t(g * rows + p * pf + j)] =
              float(packed_code(qz[g * (rows / pf) + p], j, bits)) + off;
    if (qc.act_order) {
      const std::string gi = name + ".g_idx";
      if (!st.contains(gi)) fail("tensor '{}' is missing (desc_act = true needs it)", gi);
      set_group_index(w, checkpoint_tensor(st, gi, DType::kI32, {cols}), gi);
    }
    return w;
  }
};

}  // namespace

std::unique_ptr<IntLinearMethod> make_gptq_method() {
  return std::make_unique<GptqMethod>();
}

}  // namespace inferd
