// The CPU backend: the reference. fp32 activations and KV cache; weights stay in their stored
// dtype (bf16/f16/f32) and are read in place from the mmap'd files.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/lora.h"
#include "backend/cpu/moe.h"
#include "backend/cpu/qlinear.h"
#include "backend/random_fill.h"
#include "core/thread_pool.h"

namespace inferd {

namespace {

float* fp(const Tensor& t) {
  return t.data_as<float>();
}

bool is_block_type(ggml::Type t) {
  return t != ggml::Type::kF32 && t != ggml::Type::kF16 && t != ggml::Type::kBF16;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads), k_(cpu::kernels()) {}

  Device device() const override { return Device::kCPU; }
  std::string name() const override {
    return fmt::format("cpu ({}, {} threads)", k_.isa, pool_.num_threads());
  }
  DType activation_dtype() const override { return DType::kF32; }

  Tensor alloc(DType dtype, std::span<const int64_t> shape) override {
    return Tensor::empty_host(dtype, shape);
  }

  Linear make_linear(std::vector<Tensor> parts, const Tensor& bias) override {
    Linear l;
    INFERD_CHECK(!parts.empty(), "linear without weights");
    l.in_features = parts[0].size(1);
    for (auto& p : parts) {
      INFERD_CHECK(p.ndim() == 2 && p.size(1) == l.in_features && p.is_contiguous(),
                   "bad linear part {}", p.shape_str());
      l.out_features += p.size(0);
    }
    l.parts = std::move(parts);
    if (bias.defined()) l.bias = to_f32(bias);
    return l;
  }

  bool supports_ggml(ggml::Type t) const override {
    return t == ggml::Type::kF32 || t == ggml::Type::kF16 || t == ggml::Type::kBF16 ||
           k_.act_type(t) != ggml::Type::kF32;
  }

  bool supports_ggml_embedding(ggml::Type t) const override {
    return is_block_type(t) && ggml::traits(t).supported;
  }

  GgmlLinear make_linear_ggml(std::vector<GgmlLinear::Part> parts, const Tensor& bias) override {
    GgmlLinear l;
    INFERD_CHECK(!parts.empty(), "linear without weights");
    for (const GgmlLinear::Part& p : parts) {
      INFERD_CHECK(supports_ggml(p.type) && p.data.is_contiguous() && p.data.ndim() == 2 &&
                       p.data.size(0) == p.rows,
                   "bad GGUF linear part {} of type {}", p.data.shape_str(),
                   ggml::type_name(uint32_t(p.type)));
      l.out_features += p.rows;
    }
    l.in_features = is_block_type(parts[0].type)
                        ? parts[0].data.size(1) / ggml::traits(parts[0].type).block_bytes *
                              ggml::traits(parts[0].type).block_elems
                        : parts[0].data.size(1);
    l.parts = std::move(parts);
    if (bias.defined()) l.bias = to_f32(bias);
    return l;
  }

  Tensor make_param(const Tensor& host) override {
    // Embedding tables stay in their dtype (rows are converted on gather); small params -> f32.
    if (host.ndim() == 2) return host;
    return to_f32(host);
  }

  Tensor random_tensor(DType dtype, std::span<const int64_t> shape, uint64_t seed, float stddev,
                       float fill) override {
    Tensor t = Tensor::empty_host(dtype, shape);
    const int64_t n = t.numel();
    pool_.parallel_for(
        n,
        [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) {
            const float v = random_fill_value(seed, i, stddev, fill);
            switch (dtype) {
              case DType::kF32:
                t.data_as<float>()[i] = v;
                break;
              case DType::kBF16:
                t.data_as<uint16_t>()[i] = f32_to_bf16(v);
                break;
              case DType::kF16:
                t.data_as<uint16_t>()[i] = f32_to_f16(v);
                break;
              default:
                INFERD_CHECK(false, "random_tensor: dtype {}", dtype_name(dtype));
            }
          }
        },
        4096);
    return t;
  }

  const DeviceBatch& prepare_batch(const ForwardBatch& fb, int32_t block_size,
                                   const SamplingBatch* sampling, int32_t pad_to,
                                   int32_t rows_per_seq) override {
    (void)sampling;  // the CPU samples on the host (ModelExecutor::execute)
    INFERD_CHECK(pad_to <= fb.num_tokens() && rows_per_seq <= 0,
                 "the CPU backend does not pad batches");
    const int32_t T = fb.num_tokens();
    const int32_t S = int32_t(fb.seqs.size());
    slots_.resize(size_t(T));
    q_start_.resize(size_t(S) + 1);
    kv_len_.resize(size_t(S));
    int32_t max_blocks = 1, max_q = 0, max_kv = 0;
    for (const auto& s : fb.seqs) max_blocks = std::max(max_blocks, s.num_blocks);
    tables_.assign(size_t(S) * size_t(max_blocks), 0);
    for (int32_t i = 0; i < S; ++i) {
      const SeqBatchInfo& s = fb.seqs[size_t(i)];
      INFERD_CHECK(s.kv_len >= s.q_len && s.num_blocks * block_size >= s.kv_len,
                   "seq {}: kv_len {} q_len {} blocks {}", i, s.kv_len, s.q_len, s.num_blocks);
      q_start_[size_t(i)] = s.q_start;
      kv_len_[size_t(i)] = s.kv_len;
      max_q = std::max(max_q, s.q_len);
      max_kv = std::max(max_kv, s.kv_len);
      const int32_t* bt = fb.block_tables.data() + s.block_table_offset;
      std::copy(bt, bt + s.num_blocks, tables_.begin() + std::ptrdiff_t(i) * max_blocks);
      for (int32_t j = 0; j < s.q_len; ++j) {
        const int32_t row = s.q_start + j;
        const int32_t pos = fb.positions[size_t(row)];
        INFERD_CHECK(pos >= 0 && pos < s.kv_len, "position {} outside kv_len {}", pos, s.kv_len);
        slots_[size_t(row)] = bt[pos / block_size] * block_size + pos % block_size;
      }
    }
    q_start_[size_t(S)] = S ? fb.seqs.back().q_start + fb.seqs.back().q_len : 0;
    b_ = DeviceBatch{};
    b_.num_tokens = T;
    b_.num_seqs = S;
    b_.num_logit_rows = int32_t(fb.logit_rows.size());
    b_.max_q_len = max_q;
    b_.max_kv_len = max_kv;
    b_.token_ids = fb.token_ids.data();
    b_.positions = fb.positions.data();
    b_.slot_mapping = slots_.data();
    b_.seq_q_start = q_start_.data();
    b_.seq_kv_len = kv_len_.data();
    b_.block_tables = tables_.data();
    b_.max_blocks_per_seq = max_blocks;
    b_.logit_rows = fb.logit_rows.data();
    if (!fb.mrope_positions.empty()) {
      INFERD_CHECK(fb.mrope_positions.size() == size_t(3) * size_t(T), "{} M-RoPE positions for {}",
                   fb.mrope_positions.size(), T);
      b_.mrope_positions = fb.mrope_positions.data();
    }
    if (lora_on_) {
      INFERD_CHECK(lora_rows_.size() == size_t(T), "{} LoRA rows for a batch of {}",
                   lora_rows_.size(), T);
      b_.lora_slots = lora_rows_.data();
    }
    block_size_ = block_size;
    return b_;
  }

  void embedding(const Tensor& table, const DeviceBatch& b, float scale, Tensor out) override {
    const int64_t H = table.size(1);
    const size_t es = dtype_size(table.dtype());
    for (int32_t t = 0; t < b.num_tokens; ++t) {
      const int32_t id = b.token_ids[t];
      INFERD_CHECK(id >= 0 && id < table.size(0), "token id {} outside vocab {}", id,
                   table.size(0));
      float* o = fp(out) + int64_t(t) * H;
      k_.to_f32(static_cast<const char*>(table.data()) + size_t(id) * size_t(H) * es, table.dtype(),
                o, H);
      if (scale != 1.0f)
        for (int64_t i = 0; i < H; ++i) o[i] *= scale;
    }
  }

  void embedding_shard(const Tensor& table, int64_t vocab_begin, const DeviceBatch& b, float scale,
                       Tensor out) override {
    const int64_t H = table.size(1), rows = table.size(0);
    const size_t es = dtype_size(table.dtype());
    for (int32_t t = 0; t < b.num_tokens; ++t) {
      const int64_t id = int64_t(b.token_ids[t]) - vocab_begin;
      float* o = fp(out) + int64_t(t) * H;
      if (id < 0 || id >= rows) {
        std::fill(o, o + H, 0.0f);
        continue;
      }
      k_.to_f32(static_cast<const char*>(table.data()) + size_t(id) * size_t(H) * es, table.dtype(),
                o, H);
      if (scale != 1.0f)
        for (int64_t i = 0; i < H; ++i) o[i] *= scale;
    }
  }

  void embedding_ggml(const GgmlLinear::Part& table, const DeviceBatch& b, float scale,
                      Tensor out) override {
    const int64_t H = out.size(1), rb = table.data.size(1);
    for (int32_t t = 0; t < b.num_tokens; ++t) {
      const int32_t id = b.token_ids[t];
      INFERD_CHECK(id >= 0 && id < table.rows, "token id {} outside vocab {}", id, table.rows);
      float* o = fp(out) + int64_t(t) * H;
      ggml::dequantize_row(table.type, table.data.data_as<uint8_t>() + int64_t(id) * rb, o, H);
      if (scale != 1.0f)
        for (int64_t i = 0; i < H; ++i) o[i] *= scale;
    }
  }

  // x and out may be row-strided views (OLMo 2 normalises the q and k columns of qkv in place).
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor out) override {
    const int64_t T = x.size(0), H = x.size(1), ldx = x.stride(0), ldo = out.stride(0);
    pool_.parallel_for(T, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) norm_row(fp(x) + t * ldx, fp(w), eps, H, fp(out) + t * ldo);
    });
  }

  using KernelOps::add_rms_norm;
  void add_rms_norm(Tensor residual, const Tensor& x, float x_scale, const Tensor& w, float eps,
                    Tensor out) override {
    const int64_t T = x.size(0), H = x.size(1);
    pool_.parallel_for(T, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        float* r = fp(residual) + t * H;
        const float* xi = fp(x) + t * H;
        for (int64_t i = 0; i < H; ++i) r[i] += xi[i] * x_scale;  // exactly r + x when 1
        norm_row(r, fp(w), eps, H, fp(out) + t * H);
      }
    });
  }

  void rms_norm_add(const Tensor& x, const Tensor& w, float eps, Tensor residual) override {
    const int64_t T = x.size(0), H = x.size(1);
    pool_.parallel_for(T, [&](int64_t b, int64_t e, int) {
      thread_local std::vector<float> row;  // grown once per thread
      row.resize(size_t(H));
      for (int64_t t = b; t < e; ++t) {
        norm_row(fp(x) + t * H, fp(w), eps, H, row.data());
        float* r = fp(residual) + t * H;
        for (int64_t i = 0; i < H; ++i) r[i] += row[size_t(i)];
      }
    });
  }

  void head_rms_norm(Tensor x, int64_t head_dim, const Tensor& w, float eps) override {
    // x may be a strided view into qkv rows: [T, heads*hd] with row stride x.stride(0).
    const int64_t T = x.size(0), heads = x.size(1) / head_dim, ld = x.stride(0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        float* v = fp(x) + t * ld + h * head_dim;
        norm_row(v, fp(w), eps, head_dim, v);
      }
  }

  void upload_f32(Tensor dst, std::span<const float> src) override {
    INFERD_CHECK(dst.is_contiguous() && size_t(dst.numel()) == src.size(),
                 "upload of {} values into {}", src.size(), dst.shape_str());
    if (dst.dtype() == DType::kF32) {
      std::memcpy(dst.data(), src.data(), src.size() * 4);
    } else {
      INFERD_CHECK(dst.dtype() == DType::kBF16, "upload into {}", dtype_name(dst.dtype()));
      for (size_t i = 0; i < src.size(); ++i) dst.data_as<uint16_t>()[i] = f32_to_bf16(src[i]);
    }
  }

  bool supports_lora() const override { return true; }
  bool supports_fp8_kv_cache() const override { return true; }

  void set_lora_rows(std::span<const int32_t> slots) override {
    lora_on_ = true;
    lora_rows_.assign(slots.begin(), slots.end());
  }

  void lora_add(const Tensor& x, const LoraLinear& w, const DeviceBatch& b, Tensor out) override {
    if (b.lora_slots == nullptr) return;
    cpu::lora_add(pool_, x, w, b.lora_slots, out, lora_scratch_);
  }

  void linear(const Tensor& x, const Linear& w, Tensor out) override {
    const int64_t T = x.size(0), K = w.in_features;
    INFERD_CHECK(x.size(1) == K && out.size(1) == w.out_features && out.size(0) == T,
                 "linear shapes x {} W [{}, {}] out {}", x.shape_str(), w.out_features, K,
                 out.shape_str());
    const float* bias = w.bias.defined() ? fp(w.bias) : nullptr;
    const int64_t N = w.out_features;
    // Parallel over output rows; a task never straddles two parts.
    pool_.parallel_for(
        N,
        [&](int64_t n0, int64_t n1, int) {
          int64_t base = 0;
          for (const Tensor& p : w.parts) {
            const int64_t rows = p.size(0);
            const int64_t a = std::max(n0, base), e = std::min(n1, base + rows);
            if (a < e) {
              k_.gemm(fp(x), T, K, p.data(), p.dtype(), bias ? bias + base : nullptr, a - base,
                      e - base, fp(out) + base, out.stride(0));
            }
            base += rows;
          }
        },
        16);
  }

  void linear_ggml(const Tensor& x, const GgmlLinear& w, Tensor out) override {
    const int64_t T = x.size(0), K = w.in_features, N = w.out_features;
    INFERD_CHECK(x.size(1) == K && out.size(1) == N && out.size(0) == T,
                 "linear shapes x {} W [{}, {}] out {}", x.shape_str(), N, K, out.shape_str());
    const float* bias = w.bias.defined() ? fp(w.bias) : nullptr;
    // The input rows quantized once per 8-bit partner type the parts need (Q8_0, Q8_1, Q8_K:
    // one scratch buffer each, reused across steps).
    constexpr size_t kMaxParts = 8;
    INFERD_CHECK(w.parts.size() <= kMaxParts, "a GGUF linear of {} parts", w.parts.size());
    std::array<const uint8_t*, kMaxParts> xq{};
    std::array<ggml::Type, 3> done{};
    std::array<const uint8_t*, 3> done_xq{};
    size_t n_done = 0;
    for (size_t i = 0; i < w.parts.size(); ++i) {
      const ggml::Type wt = w.parts[i].type;
      if (!is_block_type(wt)) continue;
      const ggml::Type at = k_.act_type(wt);
      size_t j = 0;
      while (j < n_done && done[j] != at) ++j;
      if (j == n_done) {
        INFERD_CHECK(n_done < done.size(), "more than three activation formats");
        done[j] = at;
        done_xq[j] = cpu::quantize_rows(pool_, k_, wt, fp(x), T, K, act_scratch_[j]);
        ++n_done;
      }
      xq[i] = done_xq[j];
    }
    pool_.parallel_for(
        N,
        [&](int64_t n0, int64_t n1, int) {
          int64_t base = 0;
          for (size_t i = 0; i < w.parts.size(); ++i) {
            const GgmlLinear::Part& p = w.parts[i];
            const int64_t a = std::max(n0, base), e = std::min(n1, base + p.rows);
            if (a < e) {
              const float* b = bias ? bias + base : nullptr;
              if (xq[i]) {
                k_.qgemm(xq[i], T, K, p.data.data(), p.type, b, a - base, e - base, fp(out) + base,
                         out.stride(0));
              } else {
                k_.gemm(fp(x), T, K, p.data.data(), p.data.dtype(), b, a - base, e - base,
                        fp(out) + base, out.stride(0));
              }
            }
            base += p.rows;
          }
        },
        16);
  }

  void rope(Tensor qkv, int64_t nh, int64_t nkv, const RopeTable& rope,
            const DeviceBatch& b) override {
    const int64_t hd = rope.head_dim, half = hd / 2, ld = qkv.stride(0);
    const float* inv = fp(rope.inv_freq);
    std::vector<float>& cs = rope_scratch_;
    cs.resize(static_cast<size_t>(hd));
    const bool mrope = b.mrope_positions != nullptr && rope.mrope_section[0] > 0;
    const int64_t s0 = rope.mrope_section[0], s01 = s0 + rope.mrope_section[1];
    for (int32_t t = 0; t < b.num_tokens; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        // M-RoPE: the section of frequency i says which of the row's three positions turns it.
        const int64_t sec = !mrope ? -1 : i < s0 ? 0 : i < s01 ? 1 : 2;
        const float pos =
            float(sec < 0 ? b.positions[t] : b.mrope_positions[sec * b.num_tokens + t]);
        const float ang = pos * inv[i];  // fp32 product, as transformers computes it
        cs[size_t(i)] = float(std::cos(double(ang))) * rope.attention_scaling;
        cs[size_t(half + i)] = float(std::sin(double(ang))) * rope.attention_scaling;
      }
      float* row = fp(qkv) + int64_t(t) * ld;
      for (int64_t h = 0; h < nh + nkv; ++h) {
        float* v = row + h * hd;
        for (int64_t i = 0; i < half; ++i) {
          const float c = cs[size_t(i)], s = cs[size_t(half + i)];
          const float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * c - x2 * s;
          v[i + half] = x2 * c + x1 * s;
        }
      }
    }
  }

  void silu_mul(const Tensor& gu, Tensor out) override {
    const int64_t T = out.size(0), F = out.size(1);
    pool_.parallel_for(
        T * F,
        [&](int64_t b, int64_t e, int) {
          // Row pieces of [b, e): the gate and up halves of row t are F apart.
          for (int64_t i = b; i < e;) {
            const int64_t t = i / F, f = i % F, len = std::min(e - i, F - f);
            const float* g = fp(gu) + t * 2 * F + f;
            k_.silu_mul(g, g + F, fp(out) + t * F + f, len);
            i += len;
          }
        },
        256);
  }

  void gelu_tanh_mul(const Tensor& gu, Tensor out) override {
    const int64_t T = out.size(0), F = out.size(1);
    pool_.parallel_for(
        T * F,
        [&](int64_t b, int64_t e, int) {
          // PyTorch's gelu(approximate="tanh"): 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
          constexpr float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
          for (int64_t i = b; i < e; ++i) {
            const int64_t t = i / F, f = i % F;
            const float g = fp(gu)[t * 2 * F + f], u = fp(gu)[t * 2 * F + F + f];
            const float inner = kBeta * (g + kKappa * g * g * g);
            fp(out)[t * F + f] = 0.5f * g * (1.0f + std::tanh(inner)) * u;
          }
        },
        256);
  }

  void softcap(Tensor logits, float cap) override {
    INFERD_CHECK(logits.dtype() == DType::kF32 && logits.is_contiguous() && cap > 0,
                 "softcap: logits {} cap {}", logits.shape_str(), cap);
    float* x = fp(logits);
    pool_.parallel_for(
        logits.numel(),
        [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) x[i] = std::tanh(x[i] / cap) * cap;
        },
        4096);
  }

  void div_scalar(Tensor logits, float divisor) override {
    INFERD_CHECK(logits.dtype() == DType::kF32 && logits.is_contiguous() && divisor != 0,
                 "div_scalar: logits {} divisor {}", logits.shape_str(), divisor);
    float* x = fp(logits);
    pool_.parallel_for(
        logits.numel(),
        [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) x[i] = x[i] / divisor;
        },
        4096);
  }

  void write_kv(const Tensor& qkv, int64_t nh, int64_t nkv, KvLayer& kv,
                const DeviceBatch& b) override {
    const int64_t hd = kv.k.size(3), ld = qkv.stride(0), kvs = nkv * hd;
    const bool f8 = check_kv(kv);
    for (int32_t t = 0; t < b.num_tokens; ++t) {
      const float* row = fp(qkv) + int64_t(t) * ld;
      const int64_t slot = b.slot_mapping[t];
      if (!f8) {
        std::memcpy(fp(kv.k) + slot * kvs, row + nh * hd, size_t(kvs) * 4);
        std::memcpy(fp(kv.v) + slot * kvs, row + (nh + nkv) * hd, size_t(kvs) * 4);
        continue;
      }
      // FP8: each value divided by its tensor's scale, rounded to e4m3 (saturating at +-448).
      uint8_t* k8 = kv.k.data_as<uint8_t>() + slot * kvs;
      uint8_t* v8 = kv.v.data_as<uint8_t>() + slot * kvs;
      for (int64_t e = 0; e < kvs; ++e) {
        k8[e] = f32_to_f8e4m3(row[nh * hd + e] / kv.k_scale);
        v8[e] = f32_to_f8e4m3(row[(nh + nkv) * hd + e] / kv.v_scale);
      }
    }
  }

  // Whether the cache is FP8 (else fp32, the CPU's activations); checks the pair.
  static bool check_kv(const KvLayer& kv) {
    const bool f8 = kv.k.dtype() == DType::kF8E4M3;
    INFERD_CHECK((f8 || kv.k.dtype() == DType::kF32) && kv.v.dtype() == kv.k.dtype() &&
                     (!f8 || (kv.k_scale > 0 && kv.v_scale > 0)),
                 "KV cache of {} / {} (scales {} / {})", dtype_name(kv.k.dtype()),
                 dtype_name(kv.v.dtype()), kv.k_scale, kv.v_scale);
    return f8;
  }

  void attention(const Tensor& qkv, int64_t nh, int64_t nkv, const KvLayer& kv, float scale,
                 int64_t window, const DeviceBatch& b, Tensor out, const Tensor& sinks) override {
    INFERD_CHECK(!sinks.defined() || (sinks.dtype() == DType::kF32 && sinks.numel() == nh),
                 "attention sinks {} for {} heads", sinks.shape_str(), nh);
    const float* sink = sinks.defined() ? fp(sinks) : nullptr;
    const int64_t hd = kv.k.size(3), ld = qkv.stride(0), kvs = nkv * hd, G = nh / nkv;
    const int64_t bs = block_size_;
    const bool f8 = check_kv(kv);
    // One task per (sequence token, kv head).
    std::vector<int32_t>& token_seq = token_seq_;
    token_seq.resize(static_cast<size_t>(b.num_tokens));
    for (int32_t s = 0; s < b.num_seqs; ++s)
      for (int32_t r = b.seq_q_start[s]; r < b.seq_q_start[s + 1]; ++r) token_seq[size_t(r)] = s;
    pool_.parallel_for(int64_t(b.num_tokens) * nkv, [&](int64_t t0, int64_t t1, int) {
      thread_local std::vector<float> scores;
      thread_local std::vector<float> acc;
      thread_local std::vector<float> k_rows, v_rows;  // an FP8 cache's rows, scaled back
      for (int64_t task = t0; task < t1; ++task) {
        const int32_t t = int32_t(task / nkv);
        const int64_t h = task % nkv;
        const int32_t s = token_seq[size_t(t)];
        const int32_t pos = b.positions[t];
        const int32_t* table = b.block_tables + int64_t(s) * b.max_blocks_per_seq;
        int64_t first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
        int64_t last = pos;
        if (b.attend_ranges != nullptr) {  // the row's image: its tokens see each other
          first = std::min<int64_t>(first, b.attend_ranges[2 * t]);
          last = std::max<int64_t>(last, b.attend_ranges[2 * t + 1] - 1);
        }
        const int64_t n = last - first + 1;
        scores.resize(size_t(n * G));
        acc.resize(size_t(hd));
        // Row j's key and value (the window's position first + j): in the cache, or (FP8) decoded
        // once here for all G query heads of the group.
        auto slot_of = [&](int64_t j) {
          const int64_t p = first + j;
          return int64_t(table[p / bs]) * bs + p % bs;
        };
        if (f8) {
          k_rows.resize(size_t(n * hd));
          v_rows.resize(size_t(n * hd));
          for (int64_t j = 0; j < n; ++j) {
            const int64_t off = slot_of(j) * kvs + h * hd;
            const uint8_t* k8 = kv.k.data_as<uint8_t>() + off;
            const uint8_t* v8 = kv.v.data_as<uint8_t>() + off;
            for (int64_t d = 0; d < hd; ++d) {
              k_rows[size_t(j * hd + d)] = f8e4m3_to_f32(k8[d]) * kv.k_scale;
              v_rows[size_t(j * hd + d)] = f8e4m3_to_f32(v8[d]) * kv.v_scale;
            }
          }
        }
        auto key = [&](int64_t j) -> const float* {
          return f8 ? k_rows.data() + j * hd : fp(kv.k) + slot_of(j) * kvs + h * hd;
        };
        auto value = [&](int64_t j) -> const float* {
          return f8 ? v_rows.data() + j * hd : fp(kv.v) + slot_of(j) * kvs + h * hd;
        };
        for (int64_t g = 0; g < G; ++g) {
          const float* q = fp(qkv) + int64_t(t) * ld + (h * G + g) * hd;
          float* sc = scores.data() + g * n;
          // A sink joins the softmax as one more logit (no value row).
          float mx = sink != nullptr ? sink[h * G + g] : -INFINITY;
          for (int64_t j = 0; j < n; ++j) {
            sc[j] = k_.dot(q, key(j), hd) * scale;
            mx = std::max(mx, sc[j]);
          }
          double sum = sink != nullptr ? std::exp(double(sink[h * G + g] - mx)) : 0.0;
          for (int64_t j = 0; j < n; ++j) {
            sc[j] = std::exp(sc[j] - mx);
            sum += sc[j];
          }
          const float inv = float(1.0 / sum);
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int64_t j = 0; j < n; ++j) k_.axpy(sc[j] * inv, value(j), acc.data(), hd);
          std::memcpy(fp(out) + int64_t(t) * out.stride(0) + (h * G + g) * hd, acc.data(),
                      size_t(hd) * 4);
        }
      }
    });
  }

  void gather_rows(const Tensor& x, const DeviceBatch& b, Tensor out) override {
    const int64_t H = x.size(1);
    for (int32_t r = 0; r < b.num_logit_rows; ++r)
      std::memcpy(fp(out) + int64_t(r) * H, fp(x) + int64_t(b.logit_rows[r]) * H, size_t(H) * 4);
  }

  void copy_rows(const Tensor& src, Tensor dst) override {
    INFERD_CHECK(
        src.dtype() == dst.dtype() && src.size(0) == dst.size(0) && src.size(1) == dst.size(1),
        "copy_rows: src {} {}, dst {} {}", dtype_name(src.dtype()), src.shape_str(),
        dtype_name(dst.dtype()), dst.shape_str());
    const size_t es = dtype_size(src.dtype()), row = size_t(src.size(1)) * es;
    for (int64_t t = 0; t < src.size(0); ++t)
      std::memcpy(static_cast<char*>(dst.data()) + size_t(t * dst.stride(0)) * es,
                  static_cast<const char*>(src.data()) + size_t(t * src.stride(0)) * es, row);
  }

  MoeExperts make_moe_experts(MoeExpertTensors t, int64_t H, int64_t F) override {
    INFERD_CHECK(!t.w13_blocks.defined() && !t.w2_blocks.defined(),
                 "the CPU computes dense experts: MXFP4 experts are dequantized at load");
    MoeExperts w;
    w.hidden = H;
    w.intermediate = F;
    if (t.w13.defined()) {  // stacked: per-expert views (no copy)
      INFERD_CHECK(t.w13.ndim() == 3 && t.w2.ndim() == 3 && t.w13.is_contiguous() &&
                       t.w2.is_contiguous() && t.w13.size(1) == 2 * F && t.w13.size(2) == H &&
                       t.w2.size(0) == t.w13.size(0) && t.w2.size(1) == H && t.w2.size(2) == F,
                   "experts w13 {} w2 {} for hidden {} intermediate {}", t.w13.shape_str(),
                   t.w2.shape_str(), H, F);
      w.num_experts = t.w13.size(0);
      auto slice = [](const Tensor& a, int64_t e) {
        const size_t bytes = size_t(a.size(1) * a.size(2)) * dtype_size(a.dtype());
        return Tensor(static_cast<char*>(a.data()) + size_t(e) * bytes, a.dtype(),
                      {a.size(1), a.size(2)}, Device::kCPU, a.holder());
      };
      for (int64_t e = 0; e < w.num_experts; ++e) {
        w.gate_up.push_back({slice(t.w13, e)});
        w.down.push_back(slice(t.w2, e));
      }
    } else {
      w.num_experts = int64_t(t.gate_up.size());
      INFERD_CHECK(t.down.size() == t.gate_up.size(), "{} gate/up experts, {} down",
                   t.gate_up.size(), t.down.size());
      for (int64_t e = 0; e < w.num_experts; ++e) {
        int64_t rows = 0;
        for (const Tensor& p : t.gate_up[size_t(e)]) {
          INFERD_CHECK(p.ndim() == 2 && p.size(1) == H && p.is_contiguous(),
                       "expert {} gate/up part {}", e, p.shape_str());
          rows += p.size(0);
        }
        const Tensor& d = t.down[size_t(e)];
        INFERD_CHECK(
            rows == 2 * F && d.ndim() == 2 && d.size(0) == H && d.size(1) == F && d.is_contiguous(),
            "expert {}: gate/up rows {} down {} for hidden {} intermediate {}", e, rows,
            d.shape_str(), H, F);
      }
      w.gate_up = std::move(t.gate_up);
      w.down = std::move(t.down);
    }
    for (const auto& parts : w.gate_up)
      for (const Tensor& p : parts)
        INFERD_CHECK(
            p.dtype() == DType::kF32 || p.dtype() == DType::kBF16 || p.dtype() == DType::kF16,
            "expert weights in {}: f32, bf16 or f16 expected", dtype_name(p.dtype()));
    if (t.w13_bias.defined()) w.w13_bias = to_f32(t.w13_bias);
    if (t.w2_bias.defined()) w.w2_bias = to_f32(t.w2_bias);
    return w;
  }

  void moe_topk(const Tensor& logits, const MoeRouting& r, Tensor ids, Tensor weights) override {
    cpu::moe_topk(logits, r, std::move(ids), std::move(weights));
  }

  void moe_experts(const Tensor& x, const MoeExperts& w, const Tensor& ids, const Tensor& weights,
                   Tensor scratch, Tensor counts, Tensor out) override {
    (void)scratch;  // the CPU keeps its own (moe_scratch_)
    cpu::moe_experts(pool_, k_, x, w, ids, weights, std::move(counts), std::move(out),
                     moe_scratch_);
  }

  void copy_to_host_f32(const Tensor& x, float* dst) override {
    std::memcpy(dst, x.data(), x.nbytes());
  }

 private:
  Tensor to_f32(const Tensor& t) {
    Tensor o = Tensor::empty_host(DType::kF32, t.shape());
    k_.to_f32(t.data(), t.dtype(), fp(o), t.numel());
    return o;
  }
  // HF RMSNorm: x * rsqrt(mean(x^2) + eps) in fp32, then * weight.
  static void norm_row(const float* x, const float* w, float eps, int64_t H, float* out) {
    float ss = 0.f;
    for (int64_t i = 0; i < H; ++i) ss += x[i] * x[i];
    const float r = 1.0f / std::sqrt(ss / float(H) + eps);
    for (int64_t i = 0; i < H; ++i) out[i] = w[i] * (x[i] * r);
  }

  ThreadPool pool_;
  const cpu::Kernels& k_;
  std::vector<int32_t> slots_, q_start_, kv_len_, tables_;
  // Per-step scratch, grown to the largest batch seen and reused (no allocation per step).
  std::vector<float> rope_scratch_;
  std::vector<uint8_t>
      act_scratch_[3];  // input rows quantized for GGUF linears (one per partner type)
  std::vector<int32_t> token_seq_;
  cpu::MoeScratch moe_scratch_;
  std::vector<int32_t> lora_rows_;  // set_lora_rows: each row's LoRA slot
  bool lora_on_ = false;
  std::vector<std::vector<float>> lora_scratch_;  // one shrink vector per thread
  DeviceBatch b_;
  int32_t block_size_ = 16;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int num_threads) {
  return std::make_unique<CpuBackend>(num_threads);
}

}  // namespace inferd
