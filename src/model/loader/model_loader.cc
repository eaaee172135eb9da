// The model loader (model_loader.h).
#include "model/loader/model_loader.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/logging.h"
#include "model/loader/gguf_model.h"
#include "model/loader/safetensors.h"
#include "model/quant/quantization.h"

namespace inferd {

namespace {

// A host tensor (f32/bf16/f16) as a new fp32 host tensor.
Tensor host_f32(const Tensor& p) {
  Tensor out = Tensor::empty_host(DType::kF32, p.shape());
  for (int64_t i = 0; i < p.numel(); ++i) {
    const uint16_t h = p.dtype() == DType::kF32 ? 0 : p.data_as<uint16_t>()[i];
    out.data_as<float>()[i] = p.dtype() == DType::kF32    ? p.data_as<float>()[i]
                              : p.dtype() == DType::kBF16 ? bf16_to_f32(h)
                                                          : f16_to_f32(h);
  }
  return out;
}

}  // namespace

LoadFormat parse_load_format(const std::string& s) {
  if (s == "auto") return LoadFormat::kAuto;
  if (s == "safetensors") return LoadFormat::kSafetensors;
  if (s == "gguf") return LoadFormat::kGguf;
  if (s == "dummy") return LoadFormat::kDummy;
  fail("unsupported --load-format '{}': expected auto, safetensors, gguf or dummy", s);
}

uint64_t dummy_seed_of(uint64_t load_seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return load_seed ^ h;
}

ModelLoader::ModelLoader(const std::string& model_dir, const ModelConfig& config,
                         const LoadOptions& opts, DeviceRuntime& runtime, int64_t max_model_len)
    : cfg_(config),
      opts_(opts),
      rt_(runtime),
      max_model_len_(max_model_len),
      model_dir_(model_dir) {
  const bool gguf = is_gguf_model_path(model_dir);
  if (opts_.format == LoadFormat::kGguf && !gguf)
    fail("--load-format gguf: '{}' is not a GGUF file", model_dir);
  if (opts_.format == LoadFormat::kSafetensors && gguf)
    fail("--load-format safetensors: '{}' is a GGUF file", model_dir);
  if (!dummy() && gguf) {
    gguf_ = std::make_unique<GgufWeights>(
        std::make_shared<const GgufFile>(GgufFile::open(model_dir)), cfg_);
    LOG_INFO("{}", gguf_summary(gguf_->file()));
  } else if (!dummy()) {
    st_ = std::make_unique<SafetensorsIndex>(SafetensorsIndex::open_dir(model_dir));
  }
  if (opts_.tp.enabled() && gguf)
    fail("--tensor-parallel-size {}: GGUF files are not sharded yet (their block types)",
         opts_.tp.size);
  // A vision-language checkpoint (Gemma3ForConditionalGeneration): the text model's tensors under
  // "language_model.model." (older saves) or "model.language_model." (transformers >= 4.52).
  if (st_ && !st_->contains("model.embed_tokens.weight")) {
    if (st_->contains("language_model.model.embed_tokens.weight")) {
      st_->replace_prefix("language_model.model.", "model.");
      st_->replace_prefix("language_model.lm_head.", "lm_head.");
    } else if (st_->contains("model.language_model.embed_tokens.weight")) {
      st_->replace_prefix("model.language_model.", "model.");
    }
  }
  // Saved from the bare decoder (AutoModel; embedding models): names without "model.".
  if (st_ && !st_->contains("model.embed_tokens.weight") && st_->contains("embed_tokens.weight"))
    st_->add_prefix("model.");
  quant_ = make_quantization_config(cfg_, opts_);
}

ModelLoader::~ModelLoader() = default;

const SafetensorsIndex& ModelLoader::checkpoint() const {
  INFERD_CHECK(st_ != nullptr, "--load-format dummy has no checkpoint tensors");
  return *st_;
}

Tensor host_shard(const Tensor& t, const Shard& s, const std::string& name) {
  if (s.whole()) return t;
  INFERD_CHECK((t.ndim() == 2 || (t.ndim() == 1 && s.dim == 0)) && (s.dim == 0 || s.dim == 1) &&
                   s.rank >= 0 && s.rank < s.size,
               "shard {} of {} along dim {} of '{}' {}", s.rank, s.size, s.dim, name,
               t.shape_str());
  const int64_t n = t.size(s.dim);
  if (n % s.size != 0)
    fail("tensor '{}' has {} entries along dimension {}: not divisible into {} shards", name, n,
         s.dim, s.size);
  const int64_t part = n / s.size, begin = s.rank * part;
  if (t.ndim() == 1) {
    const size_t es = dtype_size(t.dtype());
    Tensor out = Tensor::empty_host(t.dtype(), {part});
    std::memcpy(out.data(), static_cast<const char*>(t.data()) + size_t(begin) * es,
                size_t(part) * es);
    return out;
  }
  if (s.dim == 0) return t.slice_rows(begin, begin + part);
  const int64_t rows = t.size(0), es = int64_t(dtype_size(t.dtype()));
  Tensor out = Tensor::empty_host(t.dtype(), {rows, part});
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(static_cast<char*>(out.data()) + r * part * es,
                static_cast<const char*>(t.data()) + (r * t.stride(0) + begin) * es,
                size_t(part * es));
  }
  return out;
}

Tensor ModelLoader::count(Tensor t, const Shard& shard) {
  (shard.whole() ? whole_bytes_ : sharded_bytes_) += int64_t(t.nbytes());
  return t;
}

Tensor ModelLoader::weight(const std::string& name, std::span<const int64_t> shape,
                           const Shard& shard) {
  if (dummy()) {
    std::vector<int64_t> sh(shape.begin(), shape.end());
    if (!shard.whole()) {
      if (sh[size_t(shard.dim)] % shard.size != 0)
        fail("tensor '{}' has {} entries along dimension {}: not divisible into {} shards", name,
             sh[size_t(shard.dim)], shard.dim, shard.size);
      sh[size_t(shard.dim)] /= shard.size;
    }
    return count(
        rt_.random_tensor(opts_.dummy_dtype, sh,
                          dummy_seed_of(opts_.dummy_seed, name) ^ uint64_t(shard.rank), 0.02f, 0.f),
        shard);
  }
  if (gguf_) return count(host_shard(gguf_->get_float(name, shape), shard, name), shard);
  return count(host_shard(st_->get_float(name, shape), shard, name), shard);
}

Tensor ModelLoader::norm(const std::string& name, int64_t n, bool plus_one) {
  const int64_t shape[1] = {n};
  if (dummy()) {
    return rt_.make_param(
        rt_.random_tensor(DType::kF32, shape, dummy_seed_of(opts_.dummy_seed, name), 0.f, 1.f));
  }
  const Tensor w = count(gguf_ ? gguf_->get_float(name, shape) : st_->get_float(name, shape), {});
  // GGUF files of Gemma store the (1 + w) already.
  if (!plus_one || (gguf_ && gguf_->norms_plus_one_folded())) return rt_.make_param(w);
  // transformers computes 1.0 + w.float(): folded in fp32.
  Tensor f = host_f32(w);
  for (int64_t i = 0; i < n; ++i) f.data_as<float>()[i] += 1.0f;
  return rt_.make_param(f);
}

Tensor ModelLoader::bias(const std::vector<LinearSpec::Part>& parts) {
  int64_t n = 0;
  bool sharded = false;
  for (const auto& p : parts) {
    n += p.local_rows();
    sharded = sharded || !p.shard.whole();
  }
  const int64_t shape[1] = {n};
  if (dummy()) {
    return rt_.random_tensor(
        DType::kF32, shape,
        dummy_seed_of(opts_.dummy_seed, parts[0].name + ".bias") ^ uint64_t(parts[0].shard.rank),
        0.02f, 0.f);
  }
  Tensor out = Tensor::empty_host(DType::kF32, shape);
  int64_t off = 0;
  for (const auto& p : parts) {
    const int64_t shape1[1] = {p.rows};
    const std::string name = p.name + ".bias";
    const Tensor b = host_f32(host_shard(
        gguf_ ? gguf_->get_float(name, shape1) : st_->get_float(name, shape1), p.shard, name));
    std::copy(b.data_as<float>(), b.data_as<float>() + p.local_rows(), out.data_as<float>() + off);
    off += p.local_rows();
  }
  (sharded ? sharded_bytes_ : whole_bytes_) += int64_t(out.nbytes());
  return out;
}
}  // namespace inferd
