// MXFP4 expert weights (OCP Microscaling Formats v1.0, MXFP4: e2m1 elements in blocks of 32 with
// one e8m0 scale), in the layout of the published gpt-oss checkpoints (quantization_config
// quant_method "mxfp4", as transformers' integrations/mxfp4.py reads them): for each expert
// projection `<name>_blocks` uint8 [E, out, in / 32, 16] (byte i of a block holds element 2i in
// its low nibble and 2i + 1 in the high one) and `<name>_scales` uint8 [E, out, in / 32]
// (2^(s - 127)). Backends that compute MXFP4 (DeviceRuntime::supports_mxfp4) keep the packed bytes
// (KernelOps::moe_experts dequantizes them as it loads); the others get exact bf16 values at load.
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/loader/model_loader.h"
#include "model/loader/safetensors.h"
#include "model/quant/mxfp4.h"

namespace inferd {

namespace {

constexpr int64_t kGroup = 32;  // values a scale

// Seeded dummy bytes (--load-format dummy): random codes, scales near 2^-7 (values of a few
// hundredths, as the dense dummy weights).
Tensor dummy_bytes(std::initializer_list<int64_t> shape, uint64_t seed, bool scales) {
  Tensor t = Tensor::empty_host(DType::kU8, shape);
  auto* p = t.data_as<uint8_t>();
  uint64_t s = seed;
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += 8) {
    s += 0x9e3779b97f4a7c15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int64_t j = 0; j < 8 && i + j < n; ++j) {
      const auto b = uint8_t(z >> (8 * j));
      p[i + j] = scales ? uint8_t(119 + b % 3) : b;
    }
  }
  return t;
}

}  // namespace

float mxfp4_value(uint8_t code) {
  static constexpr float kValues[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float v = kValues[code & 7];
  return (code & 8) != 0 ? -v : v;
}

void dequantize_mxfp4(const uint8_t* blocks, const uint8_t* scales, int64_t rows, int64_t in,
                      uint16_t* out) {
  const int64_t groups = in / kGroup;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int exp = int(scales[r * groups + g]) - 127;
      const uint8_t* b = blocks + (r * groups + g) * (kGroup / 2);
      uint16_t* o = out + r * in + g * kGroup;
      for (int64_t i = 0; i < kGroup / 2; ++i) {
        // e2m1 x 2^exp is exact in fp32 and in bf16 (8 exponent bits, subnormals included).
        o[2 * i] = f32_to_bf16(std::ldexp(mxfp4_value(b[i] & 0x0F), exp));
        o[2 * i + 1] = f32_to_bf16(std::ldexp(mxfp4_value(b[i] >> 4), exp));
      }
    }
  }
}

bool is_mxfp4_experts(const MoeExpertsSpec& spec, ModelLoader& loader) {
  const SafetensorsIndex* st = loader.checkpoint_if_any();
  return loader.config().quant.method == QuantMethod::kMxfp4 ||
         (st != nullptr && st->contains(spec.prefix + "experts.gate_up_proj_blocks"));
}

MoeExperts create_mxfp4_moe_experts(const MoeExpertsSpec& s, ModelLoader& loader) {
  const int64_t E = s.num_experts, H = s.hidden, F = s.intermediate;
  const std::string ex = s.prefix + "experts.";
  if (H % kGroup != 0 || F % kGroup != 0)
    fail("{}: MXFP4 experts need hidden ({}) and intermediate ({}) sizes divisible by {}", ex, H, F,
         kGroup);
  if (loader.gguf() != nullptr) fail("{}: MXFP4 experts from a GGUF file are not supported", ex);
  DeviceRuntime& rt = loader.runtime();
  const bool packed = rt.supports_mxfp4();
  MoeExpertTensors t;
  // One projection `name` [E, rows, cols] (output-major, as the checkpoint stores MXFP4 experts).
  auto read = [&](const std::string& name, int64_t rows, int64_t cols, Tensor& dense,
                  Tensor& blocks, Tensor& scales) {
    if (loader.dummy()) {
      if (!packed) {  // dequantized anyway: dense dummy values of the same scale
        dense = loader.weight(name, {E, rows, cols});
        return;
      }
      const uint64_t seed = dummy_seed_of(loader.options().dummy_seed, name);
      blocks = dummy_bytes({E, rows, cols / 2}, seed, false);
      scales = dummy_bytes({E, rows, cols / kGroup}, seed ^ 0x5ca1e5ull, true);
      return;
    }
    const SafetensorsIndex& st = loader.checkpoint();
    for (const char* suffix : {"_blocks", "_scales"}) {
      const std::string n = name + suffix;
      if (!st.contains(n)) fail("tensor '{}' is missing (MXFP4 experts of '{}')", n, name);
      if (st.info(n).dtype != DType::kU8)
        fail("tensor '{}' must be uint8 (MXFP4 {}), got {}", n, suffix + 1,
             dtype_name(st.info(n).dtype));
    }
    const int64_t bshape[4] = {E, rows, cols / kGroup, kGroup / 2};
    const int64_t sshape[3] = {E, rows, cols / kGroup};
    blocks = st.get(name + "_blocks", bshape).view({E, rows, cols / 2});
    scales = st.get(name + "_scales", sshape);
    if (packed) return;
    dense = Tensor::empty_host(DType::kBF16, {E, rows, cols});
    dequantize_mxfp4(blocks.data_as<uint8_t>(), scales.data_as<uint8_t>(), E * rows, cols,
                     dense.data_as<uint16_t>());
    blocks = scales = Tensor();
  };
  read(ex + "gate_up_proj", 2 * F, H, t.w13, t.w13_blocks, t.w13_scales);
  read(ex + "down_proj", H, F, t.w2, t.w2_blocks, t.w2_scales);
  if (s.bias) load_moe_expert_biases(s, loader, t);
  MoeExperts w = rt.make_moe_experts(std::move(t), H, F);
  if (w.num_experts != E) fail("{}: {} experts placed, {} expected", s.prefix, w.num_experts, E);
  return w;
}

}  // namespace inferd
