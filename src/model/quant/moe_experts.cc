// The default MoE experts method (QuantizationConfig::create_moe_experts, issue 27): reads one
// layer's experts in either checkpoint layout (per expert as the published Qwen3-MoE / Mixtral
// checkpoints ship them, or transformers 5's stacked gate_up_proj / down_proj), dequantizes
// float8 expert tensors (FP8 checkpoints: block or channel scales), draws dummy experts stacked on
// the device, places them (DeviceRuntime::make_moe_experts) and, under --quantization fp8, rounds
// them to FP8 per expert and output channel (on the device where the backend computes FP8; on the
// CPU rounded and dequantized, so it computes what FP8 weights hold). MXFP4 experts: mxfp4.cc.
#include <cstring>

#include "core/error.h"
#include "model/loader/model_loader.h"
#include "model/loader/safetensors.h"
#include "model/quant/fp8_weights.h"
#include "model/quant/mxfp4.h"

namespace inferd {

namespace {

// `name` [rows, cols] as a float host tensor: float8 tensors dequantized with their scales; this
// rank's `shard` of it (tensor parallelism: gate/up rows, down columns). Rounded to FP8 per output
// channel over whole rows, then sliced, so that every rank holds one rank's values.
Tensor read_expert_part(ModelLoader& loader, const std::string& name, int64_t rows, int64_t cols,
                        bool round_fp8, const Shard& shard) {
  const int64_t shape[2] = {rows, cols};
  const SafetensorsIndex& st = loader.checkpoint();
  if (st.contains(name) && st.info(name).dtype == DType::kF8E4M3) {
    Tensor t = dequantize_fp8(read_fp8_weight(st, name, shape, loader.config().quant));
    if (round_fp8) t = dequantize_fp8(quantize_fp8_per_channel(t));
    return host_shard(t, shard, name);
  }
  return round_fp8 ? read_fp8_rounded(loader, name, shape, shard)
                   : loader.weight(name, shape, shard);
}

// A stacked host tensor [E, I, O] as a new [E, O, I] one (gpt-oss stores x @ W, input-major).
Tensor transpose_experts(const Tensor& w) {
  const int64_t E = w.size(0), I = w.size(1), O = w.size(2);
  Tensor t = Tensor::empty_host(w.dtype(), {E, O, I});
  const size_t es = dtype_size(w.dtype());
  const auto* src = static_cast<const char*>(w.data());
  auto* dst = static_cast<char*>(t.data());
  for (int64_t e = 0; e < E; ++e)
    for (int64_t i = 0; i < I; ++i)
      for (int64_t o = 0; o < O; ++o)
        std::memcpy(dst + size_t((e * O + o) * I + i) * es, src + size_t((e * I + i) * O + o) * es,
                    es);
  return t;
}

// Expert e of a stacked host tensor [E, R, C] as a [R, C] view.
Tensor expert_view(const Tensor& a, int64_t e) {
  const size_t bytes = size_t(a.size(1) * a.size(2)) * dtype_size(a.dtype());
  return Tensor(static_cast<char*>(a.data()) + size_t(e) * bytes, a.dtype(), {a.size(1), a.size(2)},
                a.device(), a.holder());
}

// The gate/up layout and activation the spec names.
void set_activation(const MoeExpertsSpec& spec, MoeExperts& w) {
  w.gate_up_interleaved = spec.interleaved;
  w.act = spec.act;
  w.act_alpha = spec.act_alpha;
  w.act_limit = spec.act_limit;
}

}  // namespace

void load_moe_expert_biases(const MoeExpertsSpec& spec, ModelLoader& loader, MoeExpertTensors& t) {
  const int64_t E = spec.num_experts, H = spec.hidden, F = spec.intermediate;
  const std::string ex = spec.prefix + "experts.";
  if (loader.checkpoint_if_any() == nullptr) {  // dummy: fp32 biases drawn where the weights are
    const uint64_t seed = loader.options().dummy_seed;
    const int64_t s13[2] = {E, 2 * F}, s2[2] = {E, H};
    t.w13_bias = loader.runtime().random_tensor(
        DType::kF32, s13, dummy_seed_of(seed, ex + "gate_up_proj_bias"), 0.02f, 0.f);
    t.w2_bias = loader.runtime().random_tensor(
        DType::kF32, s2, dummy_seed_of(seed, ex + "down_proj_bias"), 0.02f, 0.f);
    return;
  }
  t.w13_bias = loader.weight(ex + "gate_up_proj_bias", {E, 2 * F});
  t.w2_bias = loader.weight(ex + "down_proj_bias", {E, H});
}

MoeExperts QuantizationConfig::create_moe_experts(const MoeExpertsSpec& spec,
                                                  ModelLoader& loader) const {
  if (loader.options().tp.enabled() && (spec.transposed || spec.interleaved || spec.bias))
    fail(
        "--tensor-parallel-size {}: {}'s experts (input-major, gate/up interleaved, biases: "
        "gpt-oss) are not sharded yet",
        loader.options().tp.size, spec.prefix);
  if (is_mxfp4_experts(spec, loader)) {
    MoeExperts w = create_mxfp4_moe_experts(spec, loader);
    set_activation(spec, w);
    return w;
  }
  DeviceRuntime& rt = loader.runtime();
  const int64_t E = spec.num_experts, H = spec.hidden, F = spec.intermediate;
  const std::string ex = spec.prefix + "experts.";
  if (loader.gguf() != nullptr)
    fail("{}: mixture-of-experts layers from GGUF files are not supported", spec.prefix);
  const bool fp8 = loader.options().quantization == "fp8";
  const bool round_on_host = fp8 && !rt.supports_fp8();
  // Tensor parallelism (issue 33): every rank keeps all experts, each with its 1/N of the
  // intermediate size (gate/up rows, down columns: vLLM's sharded experts without expert
  // parallelism); the layer all-reduces the experts' output.
  const TensorParallel& tp = loader.options().tp;
  const Shard rows = tp.shard(0), cols = tp.shard(1);
  if (tp.enabled()) {
    if (F % tp.size != 0)
      fail("--tensor-parallel-size {}: {}'s experts have {} intermediate rows: not divisible",
           tp.size, spec.prefix, F);
    if (fp8 && rt.supports_fp8())
      fail("--tensor-parallel-size {}: FP8 experts on {} are not sharded yet", tp.size, rt.name());
  }
  const int64_t Fl = F / tp.size;
  MoeExpertTensors t;
  const SafetensorsIndex* st = loader.checkpoint_if_any();
  if (tp.enabled() && st != nullptr && st->contains(ex + "gate_up_proj")) {
    // Stacked, sharded: per expert its gate rows, its up rows, its down columns.
    const Tensor w13 = loader.weight(ex + "gate_up_proj", {E, 2 * F, H});
    const Tensor w2 = loader.weight(ex + "down_proj", {E, H, F});
    for (int64_t e = 0; e < E; ++e) {
      Tensor gu = expert_view(w13, e), d = expert_view(w2, e);
      if (round_on_host) {
        gu = dequantize_fp8(quantize_fp8_per_channel(gu));
        d = dequantize_fp8(quantize_fp8_per_channel(d));
      }
      t.gate_up.push_back({host_shard(gu.slice_rows(0, F), rows, ex + "gate_up_proj"),
                           host_shard(gu.slice_rows(F, 2 * F), rows, ex + "gate_up_proj")});
      t.down.push_back(host_shard(d, cols, ex + "down_proj"));
    }
  } else if (st == nullptr || st->contains(ex + "gate_up_proj")) {
    // Stacked (transformers 5), or dummy: drawn stacked on the device.
    if (spec.transposed && st != nullptr) {
      t.w13 = transpose_experts(loader.weight(ex + "gate_up_proj", {E, H, 2 * F}));
      t.w2 = transpose_experts(loader.weight(ex + "down_proj", {E, F, H}));
    } else {  // a sharded checkpoint went above: only dummy weights are drawn sliced (by rank)
      const int64_t s13[3] = {E, 2 * F, H}, s2[3] = {E, H, F};
      t.w13 = loader.weight(ex + "gate_up_proj", s13, tp.shard(1));
      t.w2 = loader.weight(ex + "down_proj", s2, tp.shard(2));
    }
    if (round_on_host) {
      if (st == nullptr)
        fail("--quantization fp8 with --load-format dummy is not supported on {}", rt.name());
      for (int64_t e = 0; e < E; ++e) {
        t.gate_up.push_back({dequantize_fp8(quantize_fp8_per_channel(expert_view(t.w13, e)))});
        t.down.push_back(dequantize_fp8(quantize_fp8_per_channel(expert_view(t.w2, e))));
      }
      t.w13 = t.w2 = Tensor();
    }
  } else {
    const std::string first = ex + "0." + spec.gate_name + ".weight";
    if (!st->contains(first))
      fail("checkpoint has neither '{}' nor '{}': expected the experts of {}", first,
           ex + "gate_up_proj", spec.prefix);
    for (int64_t e = 0; e < E; ++e) {
      const std::string p = ex + std::to_string(e) + ".";
      t.gate_up.push_back(
          {read_expert_part(loader, p + spec.gate_name + ".weight", F, H, round_on_host, rows),
           read_expert_part(loader, p + spec.up_name + ".weight", F, H, round_on_host, rows)});
      t.down.push_back(
          read_expert_part(loader, p + spec.down_name + ".weight", H, F, round_on_host, cols));
    }
  }
  if (spec.bias) load_moe_expert_biases(spec, loader, t);
  MoeExperts w = rt.make_moe_experts(std::move(t), H, Fl);
  set_activation(spec, w);
  if (w.num_experts != E) fail("{}: {} experts placed, {} expected", spec.prefix, w.num_experts, E);
  if (fp8 && rt.supports_fp8()) rt.quantize_moe_experts_fp8(w);
  return w;
}

}  // namespace inferd
