#include "model/decoder.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/logging.h"
#include "model/fp8.h"
#include "model/safetensors.h"

namespace inferd {

namespace {
constexpr int64_t kMinLogitRowsPerPass = 128;

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

LoadFormat parse_load_format(const std::string& s) {
  if (s == "auto") return LoadFormat::kAuto;
  if (s == "safetensors") return LoadFormat::kSafetensors;
  if (s == "dummy") return LoadFormat::kDummy;
  fail("unsupported --load-format '{}': expected auto, safetensors or dummy", s);
}

DecoderModel::DecoderModel(const std::string& model_dir, const ModelOptions& opts,
                           std::unique_ptr<Backend> backend)
    : cfg_(load_model_config(model_dir)), opts_(opts), backend_(std::move(backend)) {
  if (opts_.block_size <= 0 || opts_.block_size > 1024)
    fail("--block-size {} is out of range: expected 1..1024", opts_.block_size);
  if (opts_.max_num_batched_tokens <= 0)
    fail("--max-num-batched-tokens must be positive, got {}", opts_.max_num_batched_tokens);
  max_model_len_ = opts_.max_model_len > 0
                       ? opts_.max_model_len
                       : int32_t(std::min<int64_t>(cfg_.max_position_embeddings, 1 << 30));
  if (opts_.max_num_seqs <= 0) fail("--max-num-seqs must be positive, got {}", opts_.max_num_seqs);
  if (opts_.max_top_logprobs < 0)
    fail("max_top_logprobs must be >= 0, got {}", opts_.max_top_logprobs);
  load_weights(model_dir);
  allocate_runtime();
  if (backend_->supports_graphs() && !opts_.enforce_eager) {
    capture_graphs();
  } else if (backend_->samples_on_device()) {
    // Eager: one padding-only step makes the buffers the first real steps would otherwise
    // allocate (nothing is allocated once serving starts).
    device_step(backend_->prepare_batch(ForwardBatch(), opts_.block_size, nullptr, 1),
                SamplingBatch());
    backend_->reset_step_timing();
  }
}

DecoderModel::~DecoderModel() = default;

void DecoderModel::load_weights(const std::string& dir) {
  const int64_t H = cfg_.hidden_size, F = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int64_t hd = cfg_.head_dim, qs = cfg_.q_size(), kvs = cfg_.kv_size();
  Backend& be = *backend_;
  const bool dummy = opts_.load_format == LoadFormat::kDummy;
  std::unique_ptr<SafetensorsIndex> st;
  if (!dummy) st = std::make_unique<SafetensorsIndex>(SafetensorsIndex::open_dir(dir));

  auto get = [&](const std::string& name, std::initializer_list<int64_t> shape,
                 bool is_norm = false) -> Tensor {
    const std::span<const int64_t> sh(shape.begin(), shape.size());
    if (dummy) {
      return be.random_tensor(is_norm ? DType::kF32 : opts_.dummy_dtype, sh,
                              opts_.dummy_seed ^ hash_name(name), is_norm ? 0.f : 0.02f,
                              is_norm ? 1.f : 0.f);
    }
    return st->get_float(name, sh);
  };
  // A host tensor (f32/bf16/f16) as a new fp32 host tensor.
  auto host_f32 = [](const Tensor& p) {
    Tensor out = Tensor::empty_host(DType::kF32, p.shape());
    for (int64_t i = 0; i < p.numel(); ++i) {
      const uint16_t h = p.dtype() == DType::kF32 ? 0 : p.data_as<uint16_t>()[i];
      out.data_as<float>()[i] = p.dtype() == DType::kF32    ? p.data_as<float>()[i]
                                : p.dtype() == DType::kBF16 ? bf16_to_f32(h)
                                                            : f16_to_f32(h);
    }
    return out;
  };
  // A norm weight, placed. Gemma's norms scale by (1 + w): folded here in fp32, as transformers
  // computes 1.0 + w.float() (dummy weights are already the neutral 1).
  auto norm = [&](const std::string& name, int64_t n) -> Tensor {
    Tensor w = get(name, {n}, true);
    if (!cfg_.norm_weight_plus_one || dummy) return be.make_param(w);
    Tensor f = host_f32(w);
    for (int64_t i = 0; i < n; ++i) f.data_as<float>()[i] += 1.0f;
    return be.make_param(f);
  };
  if (!opts_.quantization.empty() && opts_.quantization != "fp8")
    fail("unsupported --quantization '{}': expected fp8", opts_.quantization);
  // A linear layer from its weight parts (stacked along the output) and bias. FP8 checkpoints
  // and --quantization fp8: on a backend that computes FP8 (CUDA) the weights stay FP8 with one
  // scale per output channel (a checkpoint's per-tensor scale repeated; its 128x128-block
  // layout is dequantized to bf16 there for now); elsewhere (the CPU) they are dequantized, so
  // the backend computes with exactly the values an FP8 weight holds.
  using Part = std::pair<std::string, std::array<int64_t, 2>>;
  bool warned_blocks = false;
  auto make_lin = [&](const std::vector<Part>& parts, const Tensor& bias) -> Linear {
    bool fp8_ckpt = !dummy;
    for (const auto& [name, shape] : parts)
      fp8_ckpt = fp8_ckpt && st->contains(name) && st->info(name).dtype == DType::kF8E4M3;
    std::vector<Tensor> ws;
    if (fp8_ckpt && be.supports_fp8() && cfg_.quant.method == QuantMethod::kCompressedTensorsFp8) {
      std::vector<Tensor> scales;
      float act_scale = 0.0f;
      for (const auto& [name, shape] : parts) {
        Fp8Weight f = read_fp8_weight(*st, name, shape, cfg_.quant);
        Tensor sc = Tensor::empty_host(DType::kF32, {f.out()});
        std::copy(f.channel_scale.begin(), f.channel_scale.end(), sc.data_as<float>());
        ws.push_back(f.q);
        scales.push_back(sc);
        if (cfg_.quant.static_activations) {  // one input scale for the fused parts: the largest
          const std::string in = name.substr(0, name.size() - 6) + "input_scale";
          if (!st->contains(in)) fail("tensor '{}' is missing (static input scale)", in);
          const Tensor t = st->get_float(in);
          if (t.numel() != 1 || t.dtype() != DType::kF32)
            fail("tensor '{}' must hold one fp32 value", in);
          act_scale = std::max(act_scale, t.data_as<float>()[0]);
        }
      }
      return be.make_linear_fp8(std::move(ws), std::move(scales), bias, act_scale);
    }
    for (const auto& [name, shape] : parts) {
      const std::span<const int64_t> sh(shape.data(), 2);
      if (fp8_ckpt) {
        if (be.supports_fp8() && !warned_blocks) {
          LOG_WARN("{}: FP8 weights with 128x128 block scales run dequantized to bf16 on {}",
                   cfg_.architecture, be.name());
          warned_blocks = true;
        }
        ws.push_back(dequantize_fp8(read_fp8_weight(*st, name, sh, cfg_.quant)));
      } else if (opts_.quantization == "fp8" && !be.supports_fp8()) {
        const Tensor w = get(name, {shape[0], shape[1]});
        if (w.device() != Device::kCPU || w.data() == nullptr)
          fail("--quantization fp8 with --load-format dummy is not supported on {}", be.name());
        ws.push_back(dequantize_fp8(quantize_fp8_per_channel(w)));
      } else {
        ws.push_back(get(name, {shape[0], shape[1]}));
      }
    }
    Linear l = be.make_linear(std::move(ws), bias);
    if (opts_.quantization == "fp8" && be.supports_fp8() && !fp8_ckpt)
      l = be.quantize_linear_fp8(l);
    return l;
  };
  // The bias of a linear made of several parts (q/k/v): one fp32 vector, or undefined.
  auto bias_of = [&](const std::vector<std::pair<std::string, int64_t>>& parts,
                     bool present) -> Tensor {
    if (!present) return Tensor();
    int64_t n = 0;
    for (const auto& [name, size] : parts) n += size;
    const int64_t shape[1] = {n};
    if (dummy) {
      return be.random_tensor(DType::kF32, shape, opts_.dummy_seed ^ hash_name(parts[0].first),
                              0.02f, 0.f);
    }
    Tensor out = Tensor::empty_host(DType::kF32, shape);
    int64_t off = 0;
    for (const auto& [name, size] : parts) {
      const Tensor p = host_f32(st->get_float(name, std::initializer_list<int64_t>{size}));
      std::copy(p.data_as<float>(), p.data_as<float>() + size, out.data_as<float>() + off);
      off += size;
    }
    return out;
  };

  const Tensor embed_host = get("model.embed_tokens.weight", {V, H});
  embed_ = be.make_param(embed_host);
  if (cfg_.embedding_scaled) {
    // transformers: embeddings * tensor(sqrt(hidden_size)).to(weight dtype), so the factor is
    // rounded to the checkpoint's dtype (sqrt(3072) = 55.43 is 55.5 in bf16).
    embed_scale_ = float(std::sqrt(double(H)));
    const DType dt = dummy ? opts_.dummy_dtype : embed_host.dtype();
    if (dt == DType::kBF16) embed_scale_ = bf16_to_f32(f32_to_bf16(embed_scale_));
    if (dt == DType::kF16) embed_scale_ = f16_to_f32(f32_to_f16(embed_scale_));
  }
  attn_scale_ = cfg_.attention_scale > 0 ? float(cfg_.attention_scale)
                                         : 1.0f / std::sqrt(float(cfg_.head_dim));
  final_norm_ = norm("model.norm.weight", H);
  if (cfg_.tie_word_embeddings) {
    lm_head_ = be.make_linear(
        {dummy ? embed_
               : st->get_float("model.embed_tokens.weight", std::initializer_list<int64_t>{V, H})},
        Tensor());
  } else {
    lm_head_ = be.make_linear({get("lm_head.weight", {V, H})}, Tensor());
  }
  layers_.resize(size_t(cfg_.num_layers));
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    Layer& L = layers_[size_t(i)];
    L.input_norm = norm(p + "input_layernorm.weight", H);
    L.post_norm = norm(p + "post_attention_layernorm.weight", H);
    if (cfg_.sandwich_norms) {
      L.pre_ff_norm = norm(p + "pre_feedforward_layernorm.weight", H);
      L.post_ff_norm = norm(p + "post_feedforward_layernorm.weight", H);
    }
    if (cfg_.qk_norm) {
      L.q_norm = norm(p + "self_attn.q_norm.weight", hd);
      L.k_norm = norm(p + "self_attn.k_norm.weight", hd);
    }
    if (cfg_.fused_qkv_gate_up) {
      // Phi-3: the checkpoint's qkv_proj rows are q, k, v and gate_up_proj's are gate, up: the
      // layout the other models' parts are concatenated into.
      L.qkv = make_lin({{p + "self_attn.qkv_proj.weight", {qs + 2 * kvs, H}}}, Tensor());
    } else {
      L.qkv = make_lin({{p + "self_attn.q_proj.weight", {qs, H}},
                        {p + "self_attn.k_proj.weight", {kvs, H}},
                        {p + "self_attn.v_proj.weight", {kvs, H}}},
                       bias_of({{p + "self_attn.q_proj.bias", qs},
                                {p + "self_attn.k_proj.bias", kvs},
                                {p + "self_attn.v_proj.bias", kvs}},
                               cfg_.qkv_bias));
    }
    L.o = make_lin({{p + "self_attn.o_proj.weight", {H, qs}}},
                   bias_of({{p + "self_attn.o_proj.bias", H}}, cfg_.o_bias));
    if (cfg_.fused_qkv_gate_up) {
      L.gate_up = make_lin({{p + "mlp.gate_up_proj.weight", {2 * F, H}}}, Tensor());
    } else {
      L.gate_up = make_lin(
          {{p + "mlp.gate_proj.weight", {F, H}}, {p + "mlp.up_proj.weight", {F, H}}}, Tensor());
    }
    L.down = make_lin({{p + "mlp.down_proj.weight", {H, F}}}, Tensor());
  }
  rope_ = make_rope_table(cfg_.rope);
  if (cfg_.has_rope_local) rope_local_ = make_rope_table(cfg_.rope_local);
}

RopeTable DecoderModel::make_rope_table(const RopeConfig& rc) {
  const RopeFrequencies f =
      rope_frequencies(rc, cfg_.head_dim, cfg_.max_position_embeddings, max_model_len_);
  RopeTable t;
  Tensor own = Tensor::empty_host(DType::kF32, {int64_t(f.inv_freq.size())});
  std::copy(f.inv_freq.begin(), f.inv_freq.end(), own.data_as<float>());
  t.inv_freq = backend_->make_param(own);
  t.head_dim = cfg_.head_dim;
  t.attention_scaling = f.attention_scaling;
  if (rc.type != RopeType::kDefault) {
    LOG_INFO("rope: {} (theta {}, factor {}, attention scaling {})", rope_type_name(rc.type),
             rc.theta, rc.factor, f.attention_scaling);
  }
  return t;
}

void DecoderModel::allocate_runtime() {
  Backend& be = *backend_;
  const int64_t T = opts_.max_num_batched_tokens;
  const int64_t H = cfg_.hidden_size, F = cfg_.intermediate_size;
  const int64_t nkv = cfg_.num_kv_heads, hd = cfg_.head_dim;
  const DType act = be.activation_dtype();
  x_ = be.alloc(act, {T, H});
  residual_ = be.alloc(act, {T, H});
  h_ = be.alloc(act, {T, H});
  qkv_ = be.alloc(act, {T, cfg_.q_size() + 2 * cfg_.kv_size()});
  attn_ = be.alloc(act, {T, cfg_.q_size()});
  gate_up_ = be.alloc(act, {T, 2 * F});
  act_ = be.alloc(act, {T, F});
  rows_per_pass_ =
      std::max<int64_t>(kMinLogitRowsPerPass, std::min<int64_t>(opts_.max_num_seqs, T));
  logits_in_ = be.alloc(act, {rows_per_pass_, H});
  // fp32 logits: the lm_head GEMM writes them directly, no bf16 rounding before sampling.
  if (be.device() != Device::kCPU) {
    logits_ = be.alloc(DType::kF32, {rows_per_pass_, cfg_.vocab_size});
    StepCapacity cap;
    cap.max_tokens = int32_t(std::max<int64_t>(T, rows_per_pass_));
    cap.max_blocks_per_seq = (max_model_len_ + opts_.block_size - 1) / opts_.block_size;
    cap.max_top_logprobs = opts_.max_top_logprobs;
    // Edits: logit_bias, banned ids and penalty tokens; 2048 a sequence covers all but requests
    // with long histories and penalties (more grows the buffer once).
    cap.max_edits = int64_t(opts_.max_num_seqs) * 2048;
    // Structured outputs: one bitmask row (vocab / 32 words) per sequence.
    cap.max_mask_words =
        int64_t(opts_.max_num_seqs) * sampling::bitmask_words(int32_t(cfg_.vocab_size));
    be.reserve(cap);
  }

  const int64_t bytes_per_block =
      2 * cfg_.num_layers * int64_t(opts_.block_size) * nkv * hd * int64_t(dtype_size(act));
  int64_t kv_bytes = opts_.kv_cache_bytes;
  int64_t free_bytes = 0, total_bytes = 0;
  if (be.memory_info(&free_bytes, &total_bytes)) {
    if (opts_.gpu_memory_utilization <= 0 || opts_.gpu_memory_utilization > 1)
      fail("--gpu-memory-utilization must be in (0, 1], got {}", opts_.gpu_memory_utilization);
    const int64_t used = total_bytes - free_bytes;  // weights, workspace, context
    kv_bytes = int64_t(double(total_bytes) * opts_.gpu_memory_utilization) - used;
    if (opts_.num_kv_blocks <= 0 && kv_bytes < bytes_per_block) {
      fail(
          "no device memory left for the KV cache: {} MiB of {} MiB are in use after loading "
          "the weights, over --gpu-memory-utilization {}",
          used >> 20, total_bytes >> 20, opts_.gpu_memory_utilization);
    }
  }
  num_blocks_ = opts_.num_kv_blocks > 0
                    ? opts_.num_kv_blocks
                    : int32_t(std::min<int64_t>(std::max<int64_t>(1, kv_bytes / bytes_per_block),
                                                INT32_MAX / 2));
  for (auto& L : layers_) {
    L.kv.k = be.alloc(act, {num_blocks_, opts_.block_size, nkv, hd});
    L.kv.v = be.alloc(act, {num_blocks_, opts_.block_size, nkv, hd});
  }
  LOG_DEBUG("KV pool: {} blocks of {} tokens ({} MiB)", num_blocks_, opts_.block_size,
            bytes_per_block * num_blocks_ >> 20);
}

int32_t DecoderModel::max_top_logprobs() const {
  return backend_->samples_on_device() ? opts_.max_top_logprobs : INT32_MAX;
}

void DecoderModel::run_layers(const DeviceBatch& b) {
  Backend& be = *backend_;
  const int32_t T = b.num_tokens;
  const float eps = float(cfg_.rms_norm_eps);
  const int64_t nh = cfg_.num_heads, nkv = cfg_.num_kv_heads, hd = cfg_.head_dim;

  Tensor x = x_.slice_rows(0, T), residual = residual_.slice_rows(0, T), h = h_.slice_rows(0, T);
  Tensor qkv = qkv_.slice_rows(0, T), attn = attn_.slice_rows(0, T);
  Tensor gate_up = gate_up_.slice_rows(0, T), act = act_.slice_rows(0, T);

  be.embedding(embed_, b, embed_scale_, residual);
  // Each layer adds its attention and MLP outputs to `residual`; the MLP's output waits in x
  // for the next layer's (or the final) residual add + norm.
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& L = layers_[i];
    if (i == 0) {
      be.rms_norm(residual, L.input_norm, eps, h);
    } else {
      be.add_rms_norm(residual, x, L.input_norm, eps, h);
    }
    be.linear(h, L.qkv, qkv);
    if (cfg_.qk_norm) {
      be.head_rms_norm(qkv.slice_cols(0, nh * hd), hd, L.q_norm, eps);
      be.head_rms_norm(qkv.slice_cols(nh * hd, (nh + nkv) * hd), hd, L.k_norm, eps);
    }
    const int64_t window = cfg_.window_of(int64_t(i));
    be.rope_write_kv(qkv, nh, nkv, window > 0 && cfg_.has_rope_local ? rope_local_ : rope_, L.kv,
                     b);
    be.attention(qkv, nh, nkv, L.kv, attn_scale_, window, b, attn);
    be.linear(attn, L.o, x);
    if (!cfg_.sandwich_norms) {
      be.add_rms_norm(residual, x, L.post_norm, eps, h);
      be.linear(h, L.gate_up, gate_up);
      be.silu_mul(gate_up, act);
      be.linear(act, L.down, x);
      continue;
    }
    // Gemma 3: the attention output is normed before the residual add, the MLP input by
    // pre_feedforward_layernorm, and the MLP output by post_feedforward_layernorm.
    be.rms_norm(x, L.post_norm, eps, h);
    be.add_rms_norm(residual, h, L.pre_ff_norm, eps, x);
    be.linear(x, L.gate_up, gate_up);
    if (cfg_.gelu_tanh) {
      be.gelu_tanh_mul(gate_up, act);
    } else {
      be.silu_mul(gate_up, act);
    }
    be.linear(act, L.down, h);
    be.rms_norm(h, L.post_ff_norm, eps, x);
  }
  be.add_rms_norm(residual, x, final_norm_, eps, h);
}

void DecoderModel::forward(const ForwardBatch& fb, float* logits) {
  const int32_t T = fb.num_tokens();
  INFERD_CHECK(T > 0 && T <= opts_.max_num_batched_tokens, "batch of {} tokens (max {})", T,
               opts_.max_num_batched_tokens);
  Backend& be = *backend_;
  const DeviceBatch& b = be.prepare_batch(fb, opts_.block_size);
  run_layers(b);
  // The lm_head only for the rows whose logits are wanted.
  const int64_t R = int64_t(fb.logit_rows.size());
  for (int64_t r0 = 0; r0 < R; r0 += rows_per_pass_) {
    const int64_t n = std::min(rows_per_pass_, R - r0);
    float* dst = logits + r0 * cfg_.vocab_size;
    if (be.device() == Device::kCPU) {
      lm_head_pass(b, r0, n, Tensor(dst, DType::kF32, {n, cfg_.vocab_size}));
    } else {
      Tensor out = logits_.slice_rows(0, n);
      lm_head_pass(b, r0, n, out);
      be.copy_to_host_f32(out, dst);
    }
  }
}

void DecoderModel::lm_head_pass(const DeviceBatch& b, int64_t r0, int64_t n, Tensor out) {
  DeviceBatch sub = b;
  sub.logit_rows = b.logit_rows + r0;
  sub.num_logit_rows = int32_t(n);
  Tensor rows = logits_in_.slice_rows(0, n);
  backend_->gather_rows(h_.slice_rows(0, b.num_tokens), sub, rows);
  backend_->linear(rows, lm_head_, out);
  if (cfg_.final_logit_softcap > 0) backend_->softcap(out, float(cfg_.final_logit_softcap));
}

void DecoderModel::device_step(const DeviceBatch& b, const SamplingBatch& sampling) {
  Backend& be = *backend_;
  run_layers(b);
  be.upload_masks(b, sampling);
  const int64_t R = b.num_logit_rows;
  for (int64_t r0 = 0; r0 < R; r0 += rows_per_pass_) {
    const int64_t n = std::min(rows_per_pass_, R - r0);
    Tensor out = logits_.slice_rows(0, n);
    lm_head_pass(b, r0, n, out);
    be.sample(out, b, int32_t(r0));
  }
}

void DecoderModel::graph_forward(const DeviceBatch& b) {
  const int64_t R = b.num_logit_rows;
  INFERD_CHECK(R <= rows_per_pass_, "a graph step of {} logit rows (at most {} a pass)", R,
               rows_per_pass_);
  run_layers(b);
  lm_head_pass(b, 0, R, logits_.slice_rows(0, R));
}

bool DecoderModel::fills_masks_late() const {
  return backend_->samples_on_device();
}

void DecoderModel::execute(const ForwardBatch& fb, const SamplingBatch& sampling,
                           std::span<SampledToken> out) {
  Backend& be = *backend_;
  if (!be.samples_on_device()) {
    ModelExecutor::execute(fb, sampling, out);
    return;
  }
  const int32_t T = fb.num_tokens();
  const size_t R = fb.logit_rows.size();
  INFERD_CHECK(T > 0 && T <= opts_.max_num_batched_tokens, "batch of {} tokens (max {})", T,
               opts_.max_num_batched_tokens);
  INFERD_CHECK(sampling.rows.size() == R && out.size() == R,
               "{} logit rows, {} sampling rows, {} outputs", R, sampling.rows.size(), out.size());
  // A decode batch (one new token per sequence, each sampled) replays the graph of its size.
  bool decode = size_t(T) == fb.seqs.size() && R == size_t(T);
  for (size_t i = 0; decode && i < fb.seqs.size(); ++i) decode = fb.seqs[i].q_len == 1;
  const int32_t g = decode && graphs_enabled_ ? graph_size_for(T) : 0;
  const auto t0 = std::chrono::steady_clock::now();
  const DeviceBatch& b = be.prepare_batch(fb, opts_.block_size, &sampling, g);
  if (g > 0 && be.replay_graph(g)) {
    be.upload_masks(b, sampling);  // built on the host while the graph runs
    be.sample(logits_.slice_rows(0, b.num_logit_rows), b, 0);
  } else {
    device_step(b, sampling);
  }
  be.finish_samples(b, sampling, out);
  int32_t bound = 1;
  while (bound < T) bound *= 4;
  StepBucket& sb = step_buckets_[{decode ? 0 : 1, bound}];
  ++sb.steps;
  sb.tokens += T;
  sb.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string DecoderModel::step_profile() const {
  std::string s;
  for (const auto& [key, v] : step_buckets_) {
    s += fmt::format("{} steps of <= {} tokens: {} steps, {} tokens, {:.1f} s, {:.2f} ms a step\n",
                     key.first == 0 ? "decode" : "mixed/prefill", key.second, v.steps, v.tokens,
                     v.ms / 1e3, v.ms / double(v.steps));
  }
  return s;
}

int32_t DecoderModel::graph_size_for(int32_t n) const {
  auto it = std::lower_bound(graph_sizes_.begin(), graph_sizes_.end(), n);
  return it == graph_sizes_.end() ? 0 : *it;
}

void DecoderModel::capture_graphs() {
  Backend& be = *backend_;
  const int32_t max_b = std::min(opts_.max_num_seqs, opts_.max_num_batched_tokens);
  std::vector<int32_t> sizes;
  for (int32_t s : {1, 2, 4}) {
    if (s <= max_b) sizes.push_back(s);
  }
  for (int32_t s = 8; s < max_b + 8; s += 8) sizes.push_back(std::min(s, max_b));
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  const auto t0 = std::chrono::steady_clock::now();
  const ForwardBatch empty;
  const SamplingBatch none;
  // Largest first: the GEMM plans and the attention buffers of every size exist before any
  // capture starts (the warm-up run of each size makes them).
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) {
    const int32_t n = *it;
    const DeviceBatch& b = be.prepare_batch(empty, opts_.block_size, &none, n);
    be.set_gemm_tuning(true);
    device_step(b, none);  // warm-up: GEMM algorithm choice, buffers
    be.set_gemm_tuning(false);
    be.begin_graph_capture();
    try {
      graph_forward(b);
    } catch (...) {
      try {
        be.end_graph_capture(n);
      } catch (...) {
      }
      throw;
    }
    be.end_graph_capture(n);
  }
  be.reset_step_timing();
  graph_sizes_ = sizes;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  LOG_INFO("captured {} CUDA graphs for decode batches of 1..{} sequences in {:.2f} s",
           sizes.size(), max_b, s);
}

}  // namespace inferd
