// compressed-tensors pack-quantized checkpoints (llm-compressor's W4A16 / W8A16: quant_method
// "compressed-tensors", format "pack-quantized"), as compressed-tensors'
// PackedQuantizationCompressor writes them
// (compressed_tensors/compressors/quantized_compressors/pack_quantized.py: pack_to_int32 /
// unpack_from_int32, and quantization/lifecycle/forward.py's dequantize). With pf = 32 / bits codes
// a word, a code stored as the signed value plus 2^(bits-1):
//   weight_packed      int32 [out, in / pf]: word p of output o holds inputs pf*p + j in bits
//                      bits*j ..;
//   weight_scale       float [out, in / group] ("group") or [out, 1] ("channel");
//   weight_zero_point  int32 [out / pf, groups], packed along the outputs the same way
//                      (asymmetric only; symmetric weights have zero point 0, i.e. code
//                      2^(bits-1));
//   weight_g_idx       int32 [in] (actorder "group"): the group of each input;
//   weight_shape       int [2] = [out, in];
//   w[o, i] = (q[o, i] - zero[o, g]) * scale[o, g],  g = g_idx[i] or i / group_size.
#include "core/error.h"
#include "model/loader/safetensors.h"
#include "model/quant/int_weights.h"

namespace inferd {

namespace {

class CompressedTensorsIntMethod final : public IntLinearMethod {
 public:
  std::string name() const override { return "compressed-tensors (pack-quantized)"; }
  std::string marker_suffix() const override { return "weight_packed"; }

  IntQuantWeight read_part(const SafetensorsIndex& st, const std::string& name, int64_t rows,
                           int64_t cols, const QuantConfig& qc) const override {
    const int bits = qc.bits;
    const int64_t pf = 32 / bits;
    check_shape(st, name + ".weight_shape", rows, cols);
    IntQuantWeight w = int_weight_part(rows, cols, bits, qc.group_size);
    const int64_t G = w.groups();
    const int64_t words = (cols + pf - 1) / pf;
    const Tensor packed =
        checkpoint_tensor(st, name + ".weight_packed", DType::kI32, {rows, words});
    const std::vector<float> scale = checkpoint_floats(st, name + ".weight_scale", {rows, G});
    const auto* pw = packed.data_as<const uint32_t>();
    for (int64_t o = 0; o < rows; ++o)
      for (int64_t c = 0; c < cols; ++c)
        w.q[size_t(o * cols + c)] = packed_code(pw[o * words + c / pf], c % pf, bits);
    std::fill(w.zeros.begin(), w.zeros.end(), float(1 << (bits - 1)));
    for (int64_t o = 0; o < rows; ++o)
      for (int64_t g = 0; g < G; ++g) w.scales[size_t(g * rows + o)] = scale[size_t(o * G + g)];
    if (!qc.symmetric) {
      const Tensor zp = checkpoint_tensor(st, name + ".weight_zero_point", DType::kI32,
                                          {(rows + pf - 1) / pf, G});
      const auto* z = zp.data_as<const uint32_t>();
      for (int64_t o = 0; o < rows; ++o)
        for (int64_t g = 0; g < G; ++g)
          w.zeros[size_t(g * rows + o)] = float(packed_code(z[(o / pf) * G + g], o % pf, bits));
    }
    if (qc.act_order) {
      const std::string gi = name + ".weight_g_idx";
      if (!st.contains(gi)) fail("tensor '{}' is missing (actorder \"group\" needs it)", gi);
      set_group_index(w, checkpoint_tensor(st, gi, DType::kI32, {cols}), gi);
    }
    return w;
  }

 private:
  static void check_shape(const SafetensorsIndex& st, const std::string& name, int64_t rows,
                          int64_t cols) {
    if (!st.contains(name)) return;  // optional: the linear's shape is known from the config
    const Tensor t = st.get(name);
    int64_t v[2] = {-1, -1};
    if (t.numel() == 2 && t.dtype() == DType::kI32) {
      v[0] = t.data_as<int32_t>()[0];
      v[1] = t.data_as<int32_t>()[1];
    } else if (t.numel() == 2 && t.dtype() == DType::kI64) {
      v[0] = t.data_as<int64_t>()[0];
      v[1] = t.data_as<int64_t>()[1];
    }
    if (v[0] != rows || v[1] != cols)
      fail("tensor '{}' must be the two integers [{}, {}] (the weight's shape)", name, rows, cols);
  }
};

}  // namespace

std::unique_ptr<IntLinearMethod> make_compressed_tensors_int_method() {
  return std::make_unique<CompressedTensorsIntMethod>();
}

}  // namespace inferd
