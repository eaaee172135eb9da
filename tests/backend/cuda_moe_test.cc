// Mixture-of-experts kernels on the CUDA backend (issue 27) against the CPU reference: routing
// (every MoeRouting mode), the experts through the decode path (T <= 8) and the batched path
// (device permutation, grouped GEMMs) at awkward sizes, FP8 experts (per expert and row scales),
// gpt-oss's variant (interleaved gate/up, clamped SwiGLU, biases), the expert-load counts, and
// both paths replayed from a CUDA graph with nothing allocated. Skips itself without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda_test_util.h"
#include "model/quant/fp8_weights.h"

namespace inferd {
namespace {

using test::rand_host;
using test::rel_err;

struct Shape {
  int64_t E, H, F, K;
};

class CudaMoe : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_GPU();
    gpu_ = make_cuda_backend(0);
    cpu_ = make_cpu_backend(2);
  }

  // The backend's stream does not synchronise with the legacy stream of cudaMemcpy: wait first.
  Tensor upload_ints(const Tensor& host) {
    cuda_synchronize(*gpu_);
    Tensor d = gpu_->alloc(DType::kI32, host.shape());
    EXPECT_EQ(cudaMemcpy(d.data(), host.data(), host.nbytes(), cudaMemcpyHostToDevice),
              cudaSuccess);
    return d;
  }
  Tensor upload_f32(const Tensor& host) { return cuda_upload(*gpu_, host, DType::kF32); }
  Tensor download_ints(const Tensor& d) {
    cuda_synchronize(*gpu_);
    Tensor h = Tensor::empty_host(DType::kI32, d.shape());
    EXPECT_EQ(cudaMemcpy(h.data(), d.data(), h.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
  // Distinct logits (k / 16, exact in bf16) in a random order, so that no tie decides.
  Tensor distinct_logits(int64_t T, int64_t E) {
    Tensor t = Tensor::empty_host(DType::kF32, {T, E});
    std::vector<int> perm(static_cast<size_t>(E));
    for (int64_t r = 0; r < T; ++r) {
      std::iota(perm.begin(), perm.end(), 0);
      for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[rng_.next_u64() % i]);
      for (int64_t e = 0; e < E; ++e)
        t.data_as<float>()[r * E + e] = float(perm[size_t(e)] - E / 2) / 16.0f;
    }
    return t;
  }
  // Routing of T tokens on the CPU: ids [T, K], weights [T, K].
  void route(int64_t T, const Shape& s, Tensor& ids, Tensor& weights) {
    ids = Tensor::empty_host(DType::kI32, {T, s.K});
    weights = Tensor::empty_host(DType::kF32, {T, s.K});
    MoeRouting r{int32_t(s.E), int32_t(s.K), true, true};
    cpu_->moe_topk(distinct_logits(T, s.E), r, ids, weights);
  }
  // out [T, H] of both backends for the same experts; `counts` compared too.
  void check_experts(const Shape& s, const MoeExpertTensors& host, const MoeExpertTensors& host_cpu,
                     bool fp8, const MoeExperts& flags, double tol) {
    MoeExperts cw = cpu_->make_moe_experts(host_cpu, s.H, s.F);
    MoeExperts gw = gpu_->make_moe_experts(host, s.H, s.F);
    for (MoeExperts* w : {&cw, &gw}) {
      w->act = flags.act;
      w->gate_up_interleaved = flags.gate_up_interleaved;
    }
    if (fp8) {
      gpu_->quantize_moe_experts_fp8(gw);
      ASSERT_EQ(gw.format, MoeExperts::Format::kFp8);
    }
    for (int64_t T : {1, 3, 8, 9, 70, 301}) {
      Tensor ids, weights;
      route(T, s, ids, weights);
      const Tensor x = rand_host({T, s.H}, rng_);
      Tensor out = Tensor::empty_host(DType::kF32, {T, s.H});
      Tensor ccount = Tensor::empty_host(DType::kI32, {s.E});
      cpu_->moe_experts(x, cw, ids, weights, Tensor(), ccount, out);
      Tensor dx = cuda_upload(*gpu_, x, DType::kBF16);
      Tensor dout = gpu_->alloc(DType::kBF16, {T, s.H});
      cuda_poison(*gpu_, dout);
      Tensor dcount = upload_ints(Tensor::empty_host(DType::kI32, {s.E}));
      Tensor scratch = gpu_->alloc(DType::kU8, {T * moe_scratch_bytes_per_row(s.E, s.K, s.H, s.F)});
      gpu_->moe_experts(dx, gw, upload_ints(ids), upload_f32(weights), scratch, dcount, dout);
      const Tensor got = cuda_download_f32(*gpu_, dout);
      EXPECT_LT(rel_err(got, out), tol) << "T=" << T << " E=" << s.E << " H=" << s.H << " F=" << s.F
                                        << " K=" << s.K << " fp8=" << fp8;
      const Tensor gc = download_ints(dcount);
      for (int64_t e = 0; e < s.E; ++e)
        EXPECT_EQ(gc.data_as<int32_t>()[e], ccount.data_as<int32_t>()[e]) << "expert " << e;
    }
  }
  MoeExpertTensors stacked(const Shape& s) {
    MoeExpertTensors t;
    t.w13 = rand_host({s.E, 2 * s.F, s.H}, rng_, 0.1f);
    t.w2 = rand_host({s.E, s.H, s.F}, rng_, 0.1f);
    return t;
  }

  const uint64_t seed_ = std::random_device{}();
  Rng rng_{seed_};
  std::unique_ptr<Backend> gpu_, cpu_;
};

TEST_F(CudaMoe, TopkMatchesCpuInEveryRoutingMode) {
  for (const auto& [E, K] : std::vector<std::pair<int, int>>{{8, 2}, {60, 4}, {128, 8}, {256, 1}}) {
    for (int mode = 0; mode < 3; ++mode) {
      const MoeRouting r{E, K, mode != 2, mode == 0};
      for (int64_t T : {1, 5, 37}) {
        const Tensor logits = distinct_logits(T, E);
        Tensor ids = Tensor::empty_host(DType::kI32, {T, K});
        Tensor w = Tensor::empty_host(DType::kF32, {T, K});
        cpu_->moe_topk(logits, r, ids, w);
        Tensor dids = gpu_->alloc(DType::kI32, {T, K});
        Tensor dw = gpu_->alloc(DType::kF32, {T, K});
        gpu_->moe_topk(cuda_upload(*gpu_, logits, DType::kBF16), r, dids, dw);
        const Tensor gi = download_ints(dids), gw = cuda_download_f32(*gpu_, dw);
        for (int64_t i = 0; i < T * K; ++i) {
          ASSERT_EQ(gi.data_as<int32_t>()[i], ids.data_as<int32_t>()[i])
              << "E=" << E << " K=" << K << " mode " << mode << " T=" << T << " i=" << i;
          EXPECT_NEAR(gw.data_as<float>()[i], w.data_as<float>()[i], 1e-5f) << i;
        }
      }
    }
  }
}

TEST_F(CudaMoe, Bf16ExpertsMatchCpuOnBothPaths) {
  for (const Shape& s : {Shape{8, 64, 32, 2}, Shape{16, 200, 72, 3}, Shape{64, 256, 96, 8}}) {
    const MoeExpertTensors t = stacked(s);
    check_experts(s, t, t, false, MoeExperts{}, 1e-2);
  }
}

TEST_F(CudaMoe, PerExpertTensorsArePlacedAsTheStackedOnes) {
  const Shape s{8, 128, 48, 2};
  const MoeExpertTensors st = stacked(s);
  MoeExpertTensors per;
  for (int64_t e = 0; e < s.E; ++e) {
    auto rows = [&](const Tensor& a, int64_t r0, int64_t r1) {
      Tensor o = Tensor::empty_host(DType::kF32, {r1 - r0, a.size(2)});
      std::copy_n(a.data_as<float>() + (e * a.size(1) + r0) * a.size(2), o.numel(),
                  o.data_as<float>());
      return o;
    };
    per.gate_up.push_back({rows(st.w13, 0, s.F), rows(st.w13, s.F, 2 * s.F)});
    per.down.push_back(rows(st.w2, 0, s.H));
  }
  check_experts(s, per, st, false, MoeExperts{}, 1e-2);
}

TEST_F(CudaMoe, Fp8ExpertsMatchCpuWithTheSameRounding) {
  const Shape s{16, 256, 128, 4};
  const MoeExpertTensors t = stacked(s);
  // The CPU gets each expert's rows rounded to FP8 per row as the device rounds them.
  MoeExpertTensors r;
  for (int64_t e = 0; e < s.E; ++e) {
    auto view = [&](const Tensor& a) {
      return Tensor(a.data_as<float>() + e * a.size(1) * a.size(2), DType::kF32,
                    {a.size(1), a.size(2)});
    };
    r.gate_up.push_back({dequantize_fp8(quantize_fp8_per_channel(view(t.w13)))});
    r.down.push_back(dequantize_fp8(quantize_fp8_per_channel(view(t.w2))));
  }
  check_experts(s, t, r, true, MoeExperts{}, 2e-2);
}

TEST_F(CudaMoe, InterleavedClampedSwigluWithBiases) {
  const Shape s{8, 128, 64, 4};
  MoeExpertTensors t = stacked(s);
  t.w13_bias = rand_host({s.E, 2 * s.F}, rng_, 0.5f);
  t.w2_bias = rand_host({s.E, s.H}, rng_, 0.5f);
  MoeExperts flags;
  flags.act = MoeExperts::Act::kSwigluClamp;
  flags.gate_up_interleaved = true;
  check_experts(s, t, t, false, flags, 1e-2);
}

TEST_F(CudaMoe, BothPathsReplayFromAGraphWithoutAllocating) {
  const Shape s{32, 256, 64, 4};
  const MoeExpertTensors t = stacked(s);
  MoeExperts cw = cpu_->make_moe_experts(t, s.H, s.F);
  MoeExperts gw = gpu_->make_moe_experts(t, s.H, s.F);
  StepCapacity cap;
  cap.max_tokens = 64;
  cap.max_blocks_per_seq = 4;
  cap.max_top_logprobs = 0;
  cap.max_edits = 16;
  gpu_->reserve(cap);
  for (int32_t T : {4, 40}) {
    Tensor dx = gpu_->alloc(DType::kBF16, {T, s.H});
    Tensor dlog = gpu_->alloc(DType::kBF16, {T, s.E});
    Tensor dids = gpu_->alloc(DType::kI32, {T, s.K});
    Tensor dw = gpu_->alloc(DType::kF32, {T, s.K});
    Tensor dout = gpu_->alloc(DType::kBF16, {T, s.H});
    Tensor scratch = gpu_->alloc(DType::kU8, {T * moe_scratch_bytes_per_row(s.E, s.K, s.H, s.F)});
    const MoeRouting r{int32_t(s.E), int32_t(s.K), true, true};
    auto step = [&] {
      gpu_->moe_topk(dlog, r, dids, dw);
      gpu_->moe_experts(dx, gw, dids, dw, scratch, Tensor(), dout);
    };
    // The inputs the replay must read, copied in after the capture.
    const Tensor x = rand_host({T, s.H}, rng_);
    const Tensor logits = distinct_logits(T, s.E);
    Tensor hx = cuda_upload(*gpu_, x, DType::kBF16), hl = cuda_upload(*gpu_, logits, DType::kBF16);
    step();
    cuda_synchronize(*gpu_);
    const int64_t allocated = gpu_->device_bytes_allocated();
    gpu_->begin_graph_capture();
    step();
    gpu_->end_graph_capture(T);
    cuda_synchronize(*gpu_);
    ASSERT_EQ(cudaMemcpy(dx.data(), hx.data(), dx.nbytes(), cudaMemcpyDeviceToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dlog.data(), hl.data(), dlog.nbytes(), cudaMemcpyDeviceToDevice),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // device-to-device copies are async
    cuda_poison(*gpu_, dout);
    ASSERT_TRUE(gpu_->replay_graph(T));
    Tensor ids = Tensor::empty_host(DType::kI32, {T, s.K});
    Tensor w = Tensor::empty_host(DType::kF32, {T, s.K});
    cpu_->moe_topk(logits, r, ids, w);
    Tensor out = Tensor::empty_host(DType::kF32, {T, s.H});
    cpu_->moe_experts(x, cw, ids, w, Tensor(), Tensor(), out);
    EXPECT_LT(rel_err(cuda_download_f32(*gpu_, dout), out), 1e-2) << "T=" << T;
    EXPECT_EQ(gpu_->device_bytes_allocated(), allocated) << "T=" << T;
  }
}

}  // namespace
}  // namespace inferd
