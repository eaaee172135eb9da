// Mixture-of-experts on the CUDA backend (cuda_moe.h).
#include "backend/cuda/cuda_moe.h"

#include "backend/cuda/fp8.h"
#include "backend/cuda/moe.h"

namespace inferd::cuda_impl {

namespace {

cuda::MoeWeightsView view_of(const MoeExperts& w) {
  cuda::MoeWeightsView v;
  v.w13 = w.w13.data();
  v.w2 = w.w2.data();
  switch (w.format) {
    case MoeExperts::Format::kDense:
      v.format = cuda::MoeWeightFormat::kBf16;
      break;
    case MoeExperts::Format::kFp8:
      v.format = cuda::MoeWeightFormat::kFp8;
      v.w13_scale = w.w13_scale.data_as<float>();
      v.w2_scale = w.w2_scale.data_as<float>();
      break;
    case MoeExperts::Format::kMxfp4:
      v.format = cuda::MoeWeightFormat::kMxfp4;
      v.w13 = w.w13_blocks.data();
      v.w2 = w.w2_blocks.data();
      v.w13_mx = w.w13_scales.data_as<uint8_t>();
      v.w2_mx = w.w2_scales.data_as<uint8_t>();
      break;
  }
  v.w13_bias = w.w13_bias.defined() ? w.w13_bias.data_as<float>() : nullptr;
  v.w2_bias = w.w2_bias.defined() ? w.w2_bias.data_as<float>() : nullptr;
  v.num_experts = int32_t(w.num_experts);
  v.hidden = w.hidden;
  v.inter = w.intermediate;
  v.interleaved = w.gate_up_interleaved;
  v.swiglu_clamp = w.act == MoeExperts::Act::kSwigluClamp;
  v.alpha = w.act_alpha;
  v.limit = w.act_limit;
  return v;
}

}  // namespace

MoeExperts CudaMoe::make_experts(MoeExpertTensors t, int64_t H, int64_t F) {
  MoeExperts w;
  w.hidden = H;
  w.intermediate = F;
  if (t.w13_blocks.defined()) {
    place_mxfp4(t, w);
  } else if (t.w13.defined()) {
    INFERD_CHECK(t.w13.ndim() == 3 && t.w2.ndim() == 3 && t.w13.size(1) == 2 * F &&
                     t.w13.size(2) == H && t.w2.size(0) == t.w13.size(0) && t.w2.size(1) == H &&
                     t.w2.size(2) == F && t.w13.is_contiguous() && t.w2.is_contiguous(),
                 "experts w13 {} w2 {} for hidden {} intermediate {}", t.w13.shape_str(),
                 t.w2.shape_str(), H, F);
    w.num_experts = t.w13.size(0);
    auto place = [&](const Tensor& a) {
      if (a.device() == Device::kCUDA && a.dtype() == DType::kBF16) return a;  // dummy weights
      INFERD_CHECK(a.device() == Device::kCPU, "device experts in {}", dtype_name(a.dtype()));
      return weights_.upload(a, DType::kBF16);
    };
    w.w13 = place(t.w13);
    w.w2 = place(t.w2);
  } else {
    w.num_experts = int64_t(t.gate_up.size());
    INFERD_CHECK(w.num_experts > 0 && t.down.size() == t.gate_up.size(),
                 "{} gate/up experts, {} down", t.gate_up.size(), t.down.size());
    w.w13 = ctx_.alloc(DType::kBF16, {w.num_experts, 2 * F, H});
    w.w2 = ctx_.alloc(DType::kBF16, {w.num_experts, H, F});
    for (int64_t e = 0; e < w.num_experts; ++e) {
      char* dst = static_cast<char*>(w.w13.data()) + size_t(e * 2 * F * H) * 2;
      int64_t rows = 0;
      for (const Tensor& p : t.gate_up[size_t(e)]) {
        INFERD_CHECK(p.ndim() == 2 && p.size(1) == H && p.is_contiguous() &&
                         p.device() == Device::kCPU && rows + p.size(0) <= 2 * F,
                     "expert {} gate/up part {}", e, p.shape_str());
        weights_.upload_into(p, dst + size_t(rows * H) * 2, DType::kBF16);
        rows += p.size(0);
      }
      const Tensor& d = t.down[size_t(e)];
      INFERD_CHECK(rows == 2 * F && d.ndim() == 2 && d.size(0) == H && d.size(1) == F &&
                       d.is_contiguous() && d.device() == Device::kCPU,
                   "expert {}: gate/up rows {}, down {}", e, rows, d.shape_str());
      weights_.upload_into(d, static_cast<char*>(w.w2.data()) + size_t(e * H * F) * 2,
                           DType::kBF16);
    }
  }
  auto bias = [&](const Tensor& b) {
    if (b.device() == Device::kCUDA) {  // dummy: drawn on the device in fp32
      check_dtype(b, DType::kF32, "device expert bias");
      return b;
    }
    return weights_.upload(b, DType::kF32);
  };
  if (t.w13_bias.defined()) w.w13_bias = bias(t.w13_bias);
  if (t.w2_bias.defined()) w.w2_bias = bias(t.w2_bias);
  ctx_.synchronize();  // host parts may be temporaries
  return w;
}

void CudaMoe::place_mxfp4(const MoeExpertTensors& t, MoeExperts& w) {
  const int64_t H = w.hidden, F = w.intermediate;
  INFERD_CHECK(t.w13_blocks.ndim() == 3 && t.w2_blocks.defined() && t.w13_scales.defined() &&
                   t.w2_scales.defined() && H % 32 == 0 && F % 32 == 0,
               "MXFP4 experts: blocks {} for hidden {} intermediate {} (multiples of 32)",
               t.w13_blocks.shape_str(), H, F);
  const int64_t E = t.w13_blocks.size(0);
  // Each of the four: u8, contiguous, `numel` bytes, copied as it is. The copy goes on the
  // backend's stream, behind the zero fill that ctx_.alloc queues there: a blocking cudaMemcpy
  // runs on the legacy default stream, which does not wait for our non-blocking stream, so the
  // fill could land after it and zero the experts (it did in whole-model loads, where the stream
  // still has uploads queued). make_experts synchronizes before the host bytes can go.
  auto place = [&](const Tensor& a, int64_t rows, int64_t cols, const char* what) {
    INFERD_CHECK(a.dtype() == DType::kU8 && a.is_contiguous() && a.numel() == E * rows * cols &&
                     a.device() == Device::kCPU,
                 "MXFP4 experts: {} {} ({}) for [{}, {}, {}] u8", what, a.shape_str(),
                 dtype_name(a.dtype()), E, rows, cols);
    Tensor d = ctx_.alloc(DType::kU8, {E, rows, cols});
    CU_CHECK(
        cudaMemcpyAsync(d.data(), a.data(), a.nbytes(), cudaMemcpyHostToDevice, ctx_.stream()));
    return d;
  };
  w.num_experts = E;
  w.format = MoeExperts::Format::kMxfp4;
  w.w13_blocks = place(t.w13_blocks, 2 * F, H / 2, "w13 blocks");
  w.w13_scales = place(t.w13_scales, 2 * F, H / 32, "w13 scales");
  w.w2_blocks = place(t.w2_blocks, H, F / 2, "w2 blocks");
  w.w2_scales = place(t.w2_scales, H, F / 32, "w2 scales");
}

void CudaMoe::quantize_fp8(MoeExperts& w) {
  INFERD_CHECK(w.format == MoeExperts::Format::kDense && w.w13.dtype() == DType::kBF16,
               "quantize_moe_experts_fp8: bf16 experts placed by this backend expected");
  const int64_t E = w.num_experts, H = w.hidden, F = w.intermediate;
  if (H % 16 != 0 || F % 16 != 0) return;  // the FP8 kernels need multiples of 16: stays bf16
  // Stacked, the experts are one [E * rows, cols] matrix: a scale per expert and output row.
  auto quantize = [&](const Tensor& src, int64_t rows, int64_t cols, Tensor& q, Tensor& scale) {
    q = ctx_.alloc(DType::kF8E4M3, {E, rows, cols});
    scale = ctx_.alloc(DType::kF32, {E, rows});
    CU_CHECK(cuda::launch_quantize_rows_fp8(src.data(), cols, E * rows, cols, q.data_as<uint8_t>(),
                                            cols, scale.data_as<float>(), 0.0f, ctx_.stream()));
  };
  Tensor q13, s13, q2, s2;
  quantize(w.w13, 2 * F, H, q13, s13);
  quantize(w.w2, H, F, q2, s2);
  ctx_.synchronize();  // before the bf16 copies are freed
  w.w13 = q13;
  w.w2 = q2;
  w.w13_scale = s13;
  w.w2_scale = s2;
  w.format = MoeExperts::Format::kFp8;
}

void CudaMoe::topk(const Tensor& logits, const MoeRouting& r, Tensor ids, Tensor weights) {
  check_dtype(logits, DType::kBF16, "moe_topk logits");
  check_dtype(ids, DType::kI32, "moe_topk ids");
  check_dtype(weights, DType::kF32, "moe_topk weights");
  const Mat l = as_matrix(logits, "moe_topk logits");
  INFERD_CHECK(l.cols == r.num_experts && ids.size(0) == l.rows && ids.size(1) == r.top_k &&
                   weights.size(0) == l.rows && weights.size(1) == r.top_k && ids.is_contiguous() &&
                   weights.is_contiguous(),
               "moe_topk: logits {} ids {} weights {} for {} experts, top {}", logits.shape_str(),
               ids.shape_str(), weights.shape_str(), r.num_experts, r.top_k);
  CU_CHECK(cuda::launch_moe_topk(logits.data(), l.ld, int32_t(l.rows), r.num_experts, r.top_k,
                                 r.softmax_before_topk, r.renormalize, ids.data_as<int32_t>(),
                                 weights.data_as<float>(), ctx_.stream()));
}

void CudaMoe::experts(const Tensor& x, const MoeExperts& w, const Tensor& ids,
                      const Tensor& weights, Tensor scratch, Tensor counts, Tensor out) {
  const Tensor& w13 = w.format == MoeExperts::Format::kMxfp4 ? w.w13_blocks : w.w13;
  INFERD_CHECK(w13.defined() && w13.device() == Device::kCUDA,
               "moe_experts: experts placed by this backend expected");
  check_dtype(x, DType::kBF16, "moe_experts x");
  check_dtype(out, DType::kBF16, "moe_experts out");
  const Mat xm = as_matrix(x, "moe_experts x"), om = as_matrix(out, "moe_experts out");
  const int32_t T = int32_t(xm.rows), K = int32_t(ids.size(1));
  INFERD_CHECK(xm.cols == w.hidden && om.cols == w.hidden && om.rows == xm.rows &&
                   ids.size(0) == xm.rows && weights.size(0) == xm.rows && weights.size(1) == K &&
                   scratch.device() == Device::kCUDA,
               "moe_experts: x {} out {} ids {} weights {} for hidden {}", x.shape_str(),
               out.shape_str(), ids.shape_str(), weights.shape_str(), w.hidden);
  const cuda::MoeWeightsView v = view_of(w);
  int32_t* cnt = nullptr;
  if (counts.defined()) {
    check_dtype(counts, DType::kI32, "moe_experts counts");
    INFERD_CHECK(counts.numel() == w.num_experts, "expert counts [{}] for {} experts",
                 counts.numel(), w.num_experts);
    cnt = counts.data_as<int32_t>();
  }
  if (T <= cuda::kMoeGemvMaxTokens) {
    INFERD_CHECK(scratch.nbytes() >= size_t(T) * size_t(K) * size_t(w.intermediate) * 2,
                 "moe_experts: scratch of {} bytes", scratch.nbytes());
    CU_CHECK(cuda::launch_moe_gemv(x.data(), xm.ld, T, K, ids.data_as<int32_t>(),
                                   weights.data_as<float>(), v, scratch.data(), cnt, out.data(),
                                   om.ld, ctx_.stream()));
    return;
  }
  const size_t need = cuda::moe_grouped_scratch_bytes(T, K, v);
  INFERD_CHECK(scratch.nbytes() >= need, "moe_experts: scratch of {} bytes, {} needed",
               scratch.nbytes(), need);
  CU_CHECK(cuda::launch_moe_grouped(x.data(), xm.ld, T, K, ids.data_as<int32_t>(),
                                    weights.data_as<float>(), v, scratch.data(), scratch.nbytes(),
                                    cnt, out.data(), om.ld, ctx_.stream()));
}

}  // namespace inferd::cuda_impl
