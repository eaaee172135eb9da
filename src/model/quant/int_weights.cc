// The shared part of the integer weight-only methods (int_weights.h): dequantization, the repack
// into the canonical Int4Linear, checkpoint reading helpers, the method's create/apply and the
// model-wide scheme.
#include "model/quant/int_weights.h"

#include <algorithm>
#include <atomic>
#include <numeric>

#include "core/error.h"
#include "core/logging.h"
#include "model/loader/safetensors.h"

namespace inferd {

IntQuantWeight int_weight_part(int64_t rows, int64_t cols, int bits, int64_t group_size) {
  IntQuantWeight w;
  w.bits = bits;
  w.rows = rows;
  w.cols = cols;
  w.group_size = group_size > 0 ? group_size : cols;
  w.q.resize(size_t(rows * cols));
  w.scales.resize(size_t(w.groups() * rows));
  w.zeros.resize(size_t(w.groups() * rows));
  return w;
}

Tensor dequantize_int_weight(const IntQuantWeight& w) {
  Tensor t = Tensor::empty_host(DType::kF32, {w.rows, w.cols});
  float* d = t.data_as<float>();
  for (int64_t c = 0; c < w.cols; ++c) {
    const size_t g = size_t(w.group_of(c)) * size_t(w.rows);
    for (int64_t r = 0; r < w.rows; ++r) {
      const float q = float(w.q[size_t(r * w.cols + c)]);
      d[r * w.cols + c] = (q - w.zeros[g + size_t(r)]) * w.scales[g + size_t(r)];
    }
  }
  return t;
}

namespace {

// The inputs sorted by group (stable), or empty for the trivial order; false when a group is
// not exactly group_size inputs.
bool act_order_perm(const IntQuantWeight& w, std::vector<int32_t>* perm) {
  perm->clear();
  if (w.g_idx.empty()) return true;
  perm->resize(size_t(w.cols));
  std::iota(perm->begin(), perm->end(), 0);
  std::stable_sort(perm->begin(), perm->end(),
                   [&](int32_t a, int32_t b) { return w.g_idx[size_t(a)] < w.g_idx[size_t(b)]; });
  for (int64_t j = 0; j < w.cols; ++j)
    if (w.g_idx[size_t((*perm)[size_t(j)])] != j / w.group_size) return false;
  return true;
}

}  // namespace

bool pack_int4_linear(std::span<const IntQuantWeight> parts, Int4Linear* out) {
  INFERD_CHECK(!parts.empty(), "an int4 linear needs a part");
  const int64_t K = parts[0].cols, gs = parts[0].group_size;
  if (K % 8 != 0 || gs <= 0 || K % gs != 0) return false;
  std::vector<int32_t> perm;
  if (!act_order_perm(parts[0], &perm)) return false;
  int64_t N = 0;
  for (const auto& p : parts) {
    if (p.bits != 4 || p.cols != K || p.group_size != gs || p.g_idx != parts[0].g_idx) return false;
    N += p.rows;
  }
  const int64_t G = K / gs;
  Int4Linear l;
  l.in_features = K;
  l.out_features = N;
  l.group_size = gs;
  l.qweight = Tensor::empty_host(DType::kI32, {N, K / 8});
  l.scales = Tensor::empty_host(DType::kF32, {G, N});
  l.zeros = Tensor::empty_host(DType::kF32, {G, N});
  if (!perm.empty()) {
    l.perm = Tensor::empty_host(DType::kI32, {K});
    std::copy(perm.begin(), perm.end(), l.perm.data_as<int32_t>());
  }
  auto* qw = l.qweight.data_as<uint32_t>();
  int64_t row0 = 0;
  for (const auto& p : parts) {
    for (int64_t r = 0; r < p.rows; ++r) {
      const uint8_t* src = p.q.data() + r * K;
      uint32_t* dst = qw + (row0 + r) * (K / 8);
      for (int64_t j = 0; j < K; ++j) {
        const uint32_t v = src[perm.empty() ? j : perm[size_t(j)]];
        dst[j / 8] |= v << (4 * (j % 8));
      }
    }
    for (int64_t g = 0; g < G; ++g)
      for (int64_t r = 0; r < p.rows; ++r) {
        l.scales.data_as<float>()[g * N + row0 + r] = p.scales[size_t(g * p.rows + r)];
        l.zeros.data_as<float>()[g * N + row0 + r] = p.zeros[size_t(g * p.rows + r)];
      }
    row0 += p.rows;
  }
  *out = std::move(l);
  return true;
}

Tensor checkpoint_tensor(const SafetensorsIndex& st, const std::string& name, DType dtype,
                         std::initializer_list<int64_t> shape) {
  if (!st.contains(name)) fail("tensor '{}' is missing", name);
  const TensorInfo& info = st.info(name);
  if (info.dtype != dtype)
    fail("tensor '{}' is {}, expected {}", name, dtype_name(info.dtype), dtype_name(dtype));
  return st.get(name, std::span<const int64_t>(shape.begin(), shape.size()));
}

std::vector<float> checkpoint_floats(const SafetensorsIndex& st, const std::string& name,
                                     std::initializer_list<int64_t> shape) {
  if (!st.contains(name)) fail("tensor '{}' is missing", name);
  const Tensor t = st.get_float(name, std::span<const int64_t>(shape.begin(), shape.size()));
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (t.dtype()) {
      case DType::kF32:
        v[i] = t.data_as<float>()[i];
        break;
      case DType::kBF16:
        v[i] = bf16_to_f32(t.data_as<uint16_t>()[i]);
        break;
      default:
        v[i] = f16_to_f32(t.data_as<uint16_t>()[i]);
        break;
    }
  }
  return v;
}

void set_group_index(IntQuantWeight& w, const Tensor& g_idx, const std::string& name) {
  const int32_t* g = g_idx.data_as<int32_t>();
  bool trivial = true;
  for (int64_t c = 0; c < w.cols; ++c) {
    if (g[c] < 0 || g[c] >= w.groups())
      fail("tensor '{}': g_idx[{}] = {} is outside [0, {})", name, c, g[c], w.groups());
    trivial = trivial && g[c] == c / w.group_size;
  }
  if (trivial) {
    w.g_idx.clear();
  } else {
    w.g_idx.assign(g, g + w.cols);
  }
}

std::unique_ptr<LinearWeights> IntLinearMethod::create_weights(const LinearSpec& spec,
                                                               ModelLoader& loader) const {
  DeviceRuntime& rt = loader.runtime();
  const QuantConfig& qc = loader.config().quant;
  const int64_t K = spec.in_features, N = spec.out_features();
  const int64_t gs = qc.group_size > 0 ? qc.group_size : K;
  const Tensor bias = spec.bias ? loader.bias(spec.parts) : Tensor();
  auto w = std::make_unique<IntLinearWeights>();
  if (spec.sharded()) {
    // Tensor parallelism (issue 33), where the weights are computed dense (the CPU): each part
    // read and dequantized whole, then this rank's rows or inputs sliced, so every rank holds one
    // rank's values exactly whatever the groups and the packing. Int4 kernels would take shards of
    // the codes (group-aligned inputs, act-order kept whole): not yet.
    if (rt.supports_int4(N, spec.local_in_features(), gs))
      fail("--tensor-parallel-size {}: {} weights are not sharded yet on '{}'",
           loader.options().tp.size, name(), rt.name());
    std::vector<Tensor> dense;
    for (const auto& p : spec.parts) {
      const std::string part = p.name + ".weight";
      if (loader.dummy()) {
        const int64_t shape[2] = {p.rows, K};
        dense.push_back(loader.weight(part, shape, spec.weight_shard(p)));
      } else {
        dense.push_back(
            host_shard(dequantize_int_weight(read_part(loader.checkpoint(), p.name, p.rows, K, qc)),
                       spec.weight_shard(p), part));
      }
    }
    w->dense = rt.make_linear(std::move(dense), bias);
    return w;
  }
  if (loader.dummy()) {
    if (qc.bits == 4 && rt.supports_int4(N, K, gs)) {
      w->int4 = rt.random_linear_int4(
          N, K, gs, dummy_seed_of(loader.options().dummy_seed, spec.parts[0].name + ".qweight"),
          0.02f, bias);
      w->packed = true;
      return w;
    }
    std::vector<Tensor> parts;
    for (const auto& p : spec.parts)
      parts.push_back(loader.weight(p.name + ".weight", {p.rows, K}));
    w->dense = rt.make_linear(std::move(parts), bias);
    return w;
  }
  std::vector<IntQuantWeight> parts;
  for (const auto& p : spec.parts)
    parts.push_back(read_part(loader.checkpoint(), p.name, p.rows, K, qc));
  if (rt.supports_int4(N, K, gs) && pack_int4_linear(parts, &w->int4)) {
    w->int4.bias = bias;
    w->int4 = rt.make_linear_int4(w->int4);
    w->packed = true;
    return w;
  }
  if (rt.device() != Device::kCPU) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      LOG_WARN(
          "{}: linear '{}' ({} bits, {} x {}, group {}) has no int4 kernel on '{}': its weights "
          "are dequantized at load and take the memory of dense weights",
          name(), spec.parts[0].name, qc.bits, N, K, gs, rt.name());
  }
  std::vector<Tensor> dense;
  for (const auto& p : parts) dense.push_back(dequantize_int_weight(p));
  w->dense = rt.make_linear(std::move(dense), bias);
  return w;
}

void IntLinearMethod::apply(KernelOps& ops, const LinearWeights& lw, const Tensor& x,
                            Tensor out) const {
  const auto& w = static_cast<const IntLinearWeights&>(lw);
  if (w.packed) {
    ops.linear_int4(x, w.int4, out);
  } else {
    ops.linear(x, w.dense, out);
  }
}

namespace {

class IntCheckpointConfig final : public QuantizationConfig {
 public:
  IntCheckpointConfig(std::string name, std::unique_ptr<IntLinearMethod> method)
      : name_(std::move(name)), method_(std::move(method)) {}
  std::string name() const override { return name_; }
  const LinearMethod& linear_method(const LinearSpec& spec, ModelLoader& loader) const override {
    const SafetensorsIndex* st = loader.checkpoint_if_any();
    if (st == nullptr) {
      const bool head = spec.parts[0].name.find("lm_head") != std::string::npos;
      return head ? unquantized_linear_method() : *method_;
    }
    const std::string marker = spec.parts[0].name + "." + method_->marker_suffix();
    return st->contains(marker) ? *method_ : unquantized_linear_method();
  }

 private:
  std::string name_;
  std::unique_ptr<IntLinearMethod> method_;
};

}  // namespace

std::unique_ptr<QuantizationConfig> make_int_quantization_config(
    std::string name, std::unique_ptr<IntLinearMethod> method) {
  return std::make_unique<IntCheckpointConfig>(std::move(name), std::move(method));
}

}  // namespace inferd
