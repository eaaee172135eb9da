// Quantization methods (vLLM's QuantizationConfig / LinearMethodBase shape): a method says how a
// linear layer's weights are created from checkpoint tensors, how they are processed once every
// weight is loaded (repack, transpose, quantize on the device), and how the layer is applied.
// One method a file in this folder: unquantized.cc, fp8.cc (--quantization fp8 and transformers'
// block-scaled "fp8" checkpoints), compressed_tensors.cc (FP8 per tensor / channel). The
// QuantizationConfig of a model (make_quantization_config) gives each linear layer its method.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/moe_types.h"
#include "model/parallel.h"

namespace inferd {

class ModelLoader;

// A linear layer as the checkpoint holds it: parts stacked along the output dimension (q/k/v for a
// merged qkv, gate/up; one part for a plain linear), each `<name>.weight` [rows, in_features], and
// an optional bias (`<name>.bias` per part, fp32 when placed).
struct LinearSpec {
  // How tensor parallelism (issue 33) splits the layer: a column-parallel linear (q/k/v, gate/up)
  // keeps a slice of the output rows, a row-parallel one (o, down) a slice of the inputs and
  // all-reduces its output; replicated ones (lm_head today) are whole on every rank.
  // Under tensor parallelism a column-parallel part keeps its `shard` of the rows (dim 0), a
  // row-parallel linear its `in_shard` of the inputs (dim 1); `rows` and `in_features` are always
  // the checkpoint's, the local_ functions this rank's.
  enum class Parallel : uint8_t { kReplicated, kColumn, kRow };
  struct Part {
    std::string name;  // e.g. "model.layers.0.self_attn.q_proj"
    int64_t rows = 0;
    Shard shard = {};
    int64_t local_rows() const { return shard.whole() ? rows : rows / shard.size; }
  };
  std::vector<Part> parts;
  int64_t in_features = 0;
  bool bias = false;
  Parallel parallel = Parallel::kReplicated;
  Shard in_shard = {};
  // This rank's output rows (every row without tensor parallelism).
  int64_t out_features() const {
    int64_t n = 0;
    for (const Part& p : parts) n += p.local_rows();
    return n;
  }
  int64_t local_in_features() const {
    return in_shard.whole() ? in_features : in_features / in_shard.size;
  }
  // True when this rank holds a slice of the layer rather than all of it.
  bool sharded() const {
    if (!in_shard.whole()) return true;
    for (const Part& p : parts)
      if (!p.shard.whole()) return true;
    return false;
  }
  // The slice of part p's weight [rows, in_features] this rank reads.
  Shard weight_shard(const Part& p) const { return p.shard.whole() ? in_shard : p.shard; }
};

// The weights of one linear layer, as its method keeps them (each method has its own type).
struct LinearWeights {
  virtual ~LinearWeights() = default;
};

class LinearMethod {
 public:
  virtual ~LinearMethod() = default;
  virtual std::string name() const = 0;
  // True when create_weights reads the slices of a sharded spec (LinearSpec::sharded: tensor
  // parallelism); a method that does not is refused with tensor parallelism, naming it.
  virtual bool supports_shards() const { return false; }
  // Reads (or, under --load-format dummy, draws) the layer's tensors and places them.
  virtual std::unique_ptr<LinearWeights> create_weights(const LinearSpec& spec,
                                                        ModelLoader& loader) const = 0;
  // Once every weight of the model is loaded.
  virtual void process_weights_after_loading(LinearWeights& w, DeviceRuntime& runtime) const {
    (void)w;
    (void)runtime;
  }
  // out [T, out_features] = x [T, in_features] W^T (+ b)
  virtual void apply(KernelOps& ops, const LinearWeights& w, const Tensor& x, Tensor out) const = 0;
};

// One MoE layer's experts as the checkpoint holds them (issue 27): per expert
// `<prefix>experts.<e>.<gate_name|up_name|down_name>.weight` (Qwen3-MoE's gate_proj / up_proj /
// down_proj, Mixtral's w1 / w3 / w2), or stacked as transformers 5 saves them,
// `<prefix>experts.gate_up_proj` [E, 2F, H] (gate rows, then up rows) and
// `<prefix>experts.down_proj` [E, H, F].
// gpt-oss: stacked and stored input-major (`transposed`: gate_up_proj [E, H, 2F], down_proj
// [E, F, H], transposed at load), gate and up rows interleaved, biases `<prefix>experts.
// gate_up_proj_bias` [E, 2F] and `down_proj_bias` [E, H], the clamped SwiGLU.
struct MoeExpertsSpec {
  std::string prefix;  // "model.layers.<i>.mlp."
  int64_t num_experts = 0, hidden = 0, intermediate = 0;
  std::string gate_name = "gate_proj", up_name = "up_proj", down_name = "down_proj";
  bool transposed = false;
  bool interleaved = false;
  bool bias = false;
  MoeExperts::Act act = MoeExperts::Act::kSilu;
  float act_alpha = 1.702f, act_limit = 7.0f;
};

// The expert biases of `spec` into `t`: `<prefix>experts.gate_up_proj_bias` [E, 2F] and
// `down_proj_bias` [E, H] (dummy: fp32, drawn on the backend's device). moe_experts.cc.
void load_moe_expert_biases(const MoeExpertsSpec& spec, ModelLoader& loader, MoeExpertTensors& t);

// A model's quantization scheme (from config.json's quantization_config and --quantization):
// the method of each linear layer, by its name, and the weights of each MoE layer's experts.
class QuantizationConfig {
 public:
  virtual ~QuantizationConfig() = default;
  virtual std::string name() const = 0;
  // The method of one linear layer (an FP8 checkpoint's scheme asks `loader` how the checkpoint
  // stores it).
  virtual const LinearMethod& linear_method(const LinearSpec& spec, ModelLoader& loader) const = 0;
  // One MoE layer's experts, read (or drawn, under dummy) and placed (moe_experts.cc: dense
  // weights as stored; float8 checkpoint tensors dequantized; --quantization fp8 rounds them per
  // expert and channel on backends that compute FP8; MXFP4 experts, as the checkpoint's
  // quantization_config or its `*_blocks` tensors say, through mxfp4.cc).
  virtual MoeExperts create_moe_experts(const MoeExpertsSpec& spec, ModelLoader& loader) const;
};

// The plain method: weights as stored (bf16/f16/f32), the backend's dense GEMM.
const LinearMethod& unquantized_linear_method();

}  // namespace inferd
