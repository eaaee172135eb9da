// What the integer weight-only quantization methods share (issue 28: awq.cc, gptq.cc,
// compressed_tensors_int.cc): each reads its checkpoint format into one IntQuantWeight a part
// (codes unpacked, scales and zero points in fp32, the group of every input), and IntLinearMethod
// turns the parts into what the backend computes: on a backend with int4 kernels
// (DeviceRuntime::supports_int4) the canonical Int4Linear of backend_types.h (the one layout every
// format is repacked into, once, at load); elsewhere (the CPU, 8-bit weights) the dequantized
// weights w = (q - zero) * scale in fp32, computed by the dense GEMM.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/loader/model_loader.h"
#include "model/quant/quant_method.h"

namespace inferd {

class SafetensorsIndex;

// One linear weight [rows, cols] (out, in features) in `bits`-bit codes:
//   w[r, c] = (q[r, c] - zeros[g, r]) * scales[g, r],  g = group_of(c).
struct IntQuantWeight {
  int bits = 4;
  int64_t rows = 0, cols = 0;
  int64_t group_size = 0;      // inputs per group (cols when one group spans all inputs)
  std::vector<uint8_t> q;      // [rows, cols], 0 .. 2^bits - 1, in input order
  std::vector<float> scales;   // [groups, rows]
  std::vector<float> zeros;    // [groups, rows] (codes; 2^(bits-1) for symmetric formats)
  std::vector<int32_t> g_idx;  // [cols]: group of each input (act-order); empty: c / group_size
  int64_t groups() const { return group_size > 0 ? (cols + group_size - 1) / group_size : 0; }
  int64_t group_of(int64_t c) const { return g_idx.empty() ? c / group_size : g_idx[size_t(c)]; }
};

// A part of `bits`-bit codes, shape [rows, cols] and `group_size` inputs a group (<= 0: one group
// over all inputs), with its codes, scales and zeros sized but not yet read.
IntQuantWeight int_weight_part(int64_t rows, int64_t cols, int bits, int64_t group_size);

// Code j of an int32 word packing 32 / bits codes, least significant first: the word order of
// GPTQ, compressed-tensors and AWQ (before AWQ's own permutation of the codes).
inline uint8_t packed_code(uint32_t word, int64_t j, int bits) {
  return uint8_t((word >> (bits * j)) & ((1u << bits) - 1u));
}

// fp32 [rows, cols] host tensor of the dequantized weight.
Tensor dequantize_int_weight(const IntQuantWeight& w);

// The canonical Int4Linear (backend_types.h) of 4-bit parts stacked along the output dimension;
// false (and `out` untouched) when their act-order permutations differ or a group would not be
// contiguous after sorting the inputs by group (then the weights are computed dense).
bool pack_int4_linear(std::span<const IntQuantWeight> parts, Int4Linear* out);

// Checkpoint reading helpers: a tensor of `dtype` and exactly `shape` (the error names the
// tensor, the expectation and what the file holds), and a float tensor's values in fp32.
Tensor checkpoint_tensor(const SafetensorsIndex& st, const std::string& name, DType dtype,
                         std::initializer_list<int64_t> shape);
std::vector<float> checkpoint_floats(const SafetensorsIndex& st, const std::string& name,
                                     std::initializer_list<int64_t> shape);

// Turns act-order group indices (g_idx [cols], from a checkpoint) into w.g_idx, checked: every
// value in [0, groups). Trivial ones (c / group_size) leave w.g_idx empty.
void set_group_index(IntQuantWeight& w, const Tensor& g_idx, const std::string& name);

struct IntLinearWeights final : LinearWeights {
  bool packed = false;  // int4 kernels (else dense)
  Linear dense;
  Int4Linear int4;
};

// A weight-only integer method: create_weights reads each part through read_part (or under
// --load-format dummy draws random int4 weights), then packs or dequantizes.
class IntLinearMethod : public LinearMethod {
 public:
  // Tensor parallelism: dequantized whole, then sliced (create_weights).
  bool supports_shards() const override { return true; }
  std::unique_ptr<LinearWeights> create_weights(const LinearSpec& spec,
                                                ModelLoader& loader) const override;
  void apply(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out) const override;
  // The checkpoint tensor whose presence says a linear is stored quantized ("qweight").
  virtual std::string marker_suffix() const = 0;
  // Reads part `name` (no ".weight" suffix) of shape [rows, cols].
  virtual IntQuantWeight read_part(const SafetensorsIndex& st, const std::string& name,
                                   int64_t rows, int64_t cols, const QuantConfig& qc) const = 0;
};

// The methods (awq.cc, gptq.cc, compressed_tensors_int.cc) and the model-wide scheme over them:
// linears the checkpoint stores quantized get `method`, the rest (lm_head, ignore lists) stay
// unquantized; under --load-format dummy every linear but lm_head is quantized.
std::unique_ptr<IntLinearMethod> make_awq_method();
std::unique_ptr<IntLinearMethod> make_gptq_method();
std::unique_ptr<IntLinearMethod> make_compressed_tensors_int_method();
std::unique_ptr<QuantizationConfig> make_int_quantization_config(
    std::string name, std::unique_ptr<IntLinearMethod> method);

}  // namespace inferd
