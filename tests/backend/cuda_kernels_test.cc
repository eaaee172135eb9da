// Every CUDA backend op against the CPU backend (the reference) or a float64 host reference, on
// fresh random inputs of several shapes; outputs are poisoned (NaN) first so unwritten elements
// fail. Inputs are rounded to bf16 so both backends see the same values; bf16 outputs are held to
// ~1e-2 relative error (norm over the whole output). Skips itself where there is no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "cuda_test_util.h"

namespace inferd {
namespace {

using test::make_batch;
using test::max_abs_diff;
using test::rand_host;
using test::rel_err;
using test::SeqSpec;

constexpr double kBf16Tol = 1e-2;

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_GPU();
    gpu_ = make_cuda_backend(0);
    cpu_ = make_cpu_backend(2);
  }
  Tensor up(const Tensor& h, DType dt = DType::kBF16) { return cuda_upload(*gpu_, h, dt); }
  Tensor down(const Tensor& d) { return cuda_download_f32(*gpu_, d); }
  Tensor poisoned(DType dt, std::initializer_list<int64_t> shape) {
    Tensor t = gpu_->alloc(dt, shape);
    cuda_poison(*gpu_, t);
    return t;
  }
  Tensor host(std::initializer_list<int64_t> shape) {
    return Tensor::empty_host(DType::kF32, shape);
  }

  const uint64_t seed_ = std::random_device{}();
  Rng rng_{seed_};
  std::unique_ptr<Backend> gpu_, cpu_;
};

#define TRACE_SEED() SCOPED_TRACE(::testing::Message() << "seed " << seed_)

TEST_F(CudaKernels, EmbeddingCopiesTableRows) {
  TRACE_SEED();
  for (auto [V, H, T] :
       std::vector<std::array<int32_t, 3>>{{50, 64, 1}, {1000, 200, 7}, {320, 4096, 33}}) {
    Tensor table = rand_host({V, H}, rng_);
    Tensor dtable = gpu_->make_param(table);
    ASSERT_EQ(dtable.dtype(), DType::kBF16);
    const ForwardBatch fb = make_batch({{0, T}}, 16, (T + 15) / 16, rng_, V);
    Tensor dout = poisoned(DType::kBF16, {T, H});
    gpu_->embedding(dtable, gpu_->prepare_batch(fb, 16), 1.0f, dout);
    Tensor ref = host({T, H});
    cpu_->embedding(table, cpu_->prepare_batch(fb, 16), 1.0f, ref);
    EXPECT_EQ(max_abs_diff(down(dout), ref), 0.0) << V << "x" << H << " T=" << T;
  }
}

// Gemma's scaled embedding: the vector kernel (H % 8 == 0) and the scalar one (H = 200 + 3).
TEST_F(CudaKernels, ScaledEmbeddingMatchesCpu) {
  TRACE_SEED();
  for (auto [V, H, T] :
       std::vector<std::array<int32_t, 3>>{{50, 64, 1}, {1000, 203, 7}, {320, 1152, 33}}) {
    const float scale = std::sqrt(float(H));
    Tensor table = rand_host({V, H}, rng_);
    Tensor dtable = gpu_->make_param(table);
    const ForwardBatch fb = make_batch({{0, T}}, 16, (T + 15) / 16, rng_, V);
    Tensor dout = poisoned(DType::kBF16, {T, H});
    gpu_->embedding(dtable, gpu_->prepare_batch(fb, 16), scale, dout);
    Tensor ref = host({T, H});
    cpu_->embedding(table, cpu_->prepare_batch(fb, 16), scale, ref);
    Tensor got = down(dout);
    EXPECT_LT(rel_err(got, ref), 4e-3) << V << "x" << H << " T=" << T;
    Tensor unscaled = host({T, H});
    cpu_->embedding(table, cpu_->prepare_batch(fb, 16), 1.0f, unscaled);
    EXPECT_GT(rel_err(got, unscaled), 0.5) << "the scale was not applied";
  }
}

TEST_F(CudaKernels, EmbeddingRejectsIdsOutsideVocab) {
  Tensor dtable = gpu_->make_param(rand_host({10, 64}, rng_));
  ForwardBatch fb = make_batch({{0, 3}}, 16, 1, rng_, 10);
  fb.token_ids[1] = 10;
  Tensor dout = gpu_->alloc(DType::kBF16, {3, 64});
  EXPECT_THROW(gpu_->embedding(dtable, gpu_->prepare_batch(fb, 16), 1.0f, dout), Error);
}

TEST_F(CudaKernels, RmsNormAndAddRmsNormMatchCpu) {
  TRACE_SEED();
  const float eps = 1e-6f;
  for (int32_t T : {1, 5, 17}) {
    for (int32_t H : {64, 1000, 4096}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " H=" << H);
      Tensor x = rand_host({T, H}, rng_, 2.f), res = rand_host({T, H}, rng_, 2.f);
      Tensor w = rand_host({H}, rng_, 0.5f, 1.f);
      Tensor dw = gpu_->make_param(w);
      ASSERT_EQ(dw.dtype(), DType::kF32);
      Tensor dx = up(x), dres = up(res);

      Tensor dout = poisoned(DType::kBF16, {T, H}), ref = host({T, H});
      gpu_->rms_norm(dx, dw, eps, dout);
      cpu_->rms_norm(x, w, eps, ref);
      EXPECT_LT(rel_err(down(dout), ref), kBf16Tol) << "rms_norm";

      Tensor ref_res = test::copy_host(res);
      cuda_poison(*gpu_, dout);
      gpu_->add_rms_norm(dres, dx, dw, eps, dout);
      cpu_->add_rms_norm(ref_res, x, w, eps, ref);
      EXPECT_LT(rel_err(down(dres), ref_res), kBf16Tol) << "add_rms_norm residual";
      EXPECT_LT(rel_err(down(dout), ref), kBf16Tol) << "add_rms_norm out";
    }
  }
}

// Granite's residual_multiplier: residual += x * m before the norm (the vector kernel for H % 8 ==
// 0, the scalar one otherwise); m = 1 leaves exactly the unscaled result.
TEST_F(CudaKernels, ScaledAddRmsNormMatchesCpu) {
  TRACE_SEED();
  const float eps = 1e-5f;
  for (int32_t T : {1, 9}) {
    for (int32_t H : {64, 203, 2048}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " H=" << H);
      Tensor x = rand_host({T, H}, rng_, 2.f), res = rand_host({T, H}, rng_, 2.f);
      Tensor w = rand_host({H}, rng_, 0.5f, 1.f);
      Tensor dw = gpu_->make_param(w);
      for (float m : {0.22f, 1.0f}) {
        Tensor dx = up(x), dres = up(res), dout = poisoned(DType::kBF16, {T, H});
        Tensor ref_res = test::copy_host(res), ref = host({T, H});
        gpu_->add_rms_norm(dres, dx, m, dw, eps, dout);
        cpu_->add_rms_norm(ref_res, x, m, w, eps, ref);
        EXPECT_LT(rel_err(down(dres), ref_res), kBf16Tol) << "residual, m=" << m;
        EXPECT_LT(rel_err(down(dout), ref), kBf16Tol) << "out, m=" << m;
        if (m == 1.0f) {  // exactly the unscaled op
          Tensor dres2 = up(res), dout2 = poisoned(DType::kBF16, {T, H});
          gpu_->add_rms_norm(dres2, dx, dw, eps, dout2);
          EXPECT_EQ(max_abs_diff(down(dres2), down(dres)), 0.0);
          EXPECT_EQ(max_abs_diff(down(dout2), down(dout)), 0.0);
        } else {
          Tensor ref_res1 = test::copy_host(res), ref1 = host({T, H});
          cpu_->add_rms_norm(ref_res1, x, w, eps, ref1);
          EXPECT_GT(rel_err(down(dres), ref_res1), 0.05) << "the scale was not applied";
        }
      }
    }
  }
}

// OLMo 2's post-sublayer norm: residual += rms_norm(x) * w.
TEST_F(CudaKernels, RmsNormAddMatchesCpu) {
  TRACE_SEED();
  const float eps = 1e-5f;
  for (int32_t T : {1, 6, 33}) {
    for (int32_t H : {64, 203, 4096}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " H=" << H);
      Tensor x = rand_host({T, H}, rng_, 2.f), res = rand_host({T, H}, rng_, 1.f);
      Tensor w = rand_host({H}, rng_, 0.5f, 1.f);
      Tensor dres = up(res);
      gpu_->rms_norm_add(up(x), gpu_->make_param(w), eps, dres);
      Tensor ref_res = test::copy_host(res);
      cpu_->rms_norm_add(x, w, eps, ref_res);
      EXPECT_LT(rel_err(down(dres), ref_res), kBf16Tol);
      EXPECT_GT(rel_err(down(dres), res), 0.1) << "nothing was added";
    }
  }
}

// OLMo 2's q/k norms: rms_norm in place over the q (or k) columns of qkv, all heads at once.
TEST_F(CudaKernels, RmsNormInPlaceOnColumnViewsMatchesCpu) {
  TRACE_SEED();
  const float eps = 1e-6f;
  for (auto [T, q, kv] : std::vector<std::array<int32_t, 3>>{{1, 64, 32}, {7, 4096, 1024}}) {
    const int64_t W = q + 2 * kv;
    Tensor qkv = rand_host({T, W}, rng_, 3.f);
    Tensor wq = rand_host({q}, rng_, 0.5f, 1.f), wk = rand_host({kv}, rng_, 0.5f, 1.f);
    Tensor dqkv = up(qkv);
    Tensor dq = dqkv.slice_cols(0, q), dk = dqkv.slice_cols(q, q + kv);
    gpu_->rms_norm(dq, gpu_->make_param(wq), eps, dq);
    gpu_->rms_norm(dk, gpu_->make_param(wk), eps, dk);
    Tensor ref = test::copy_host(qkv);
    Tensor rq = ref.slice_cols(0, q), rk = ref.slice_cols(q, q + kv);
    cpu_->rms_norm(rq, wq, eps, rq);
    cpu_->rms_norm(rk, wk, eps, rk);
    Tensor got = down(dqkv);
    EXPECT_LT(rel_err(got, ref), kBf16Tol) << "T=" << T << " q=" << q;
    for (int32_t t = 0; t < T; ++t)  // v untouched
      for (int64_t c = q + kv; c < W; ++c)
        ASSERT_EQ(got.data_as<float>()[t * W + c], qkv.data_as<float>()[t * W + c]);
  }
}

TEST_F(CudaKernels, HeadRmsNormOnColumnViewsMatchesCpu) {
  TRACE_SEED();
  const float eps = 1e-6f;
  for (auto [T, nh, nkv, hd] : std::vector<std::array<int32_t, 4>>{
           {1, 4, 4, 64}, {7, 8, 2, 128}, {19, 16, 2, 64}, {3, 4, 2, 32}}) {
    SCOPED_TRACE(::testing::Message()
                 << "T=" << T << " heads " << nh << "/" << nkv << " hd " << hd);
    const int64_t W = int64_t(nh + 2 * nkv) * hd;
    Tensor qkv = rand_host({T, W}, rng_, 3.f);
    Tensor wq = rand_host({hd}, rng_, 0.5f, 1.f), wk = rand_host({hd}, rng_, 0.5f, 1.f);
    Tensor dqkv = up(qkv);
    Tensor dwq = gpu_->make_param(wq), dwk = gpu_->make_param(wk);
    gpu_->head_rms_norm(dqkv.slice_cols(0, int64_t(nh) * hd), hd, dwq, eps);
    gpu_->head_rms_norm(dqkv.slice_cols(int64_t(nh) * hd, int64_t(nh + nkv) * hd), hd, dwk, eps);
    Tensor ref = test::copy_host(qkv);
    cpu_->head_rms_norm(ref.slice_cols(0, int64_t(nh) * hd), hd, wq, eps);
    cpu_->head_rms_norm(ref.slice_cols(int64_t(nh) * hd, int64_t(nh + nkv) * hd), hd, wk, eps);
    Tensor got = down(dqkv);
    EXPECT_LT(rel_err(got, ref), kBf16Tol);
    // The v columns are not touched.
    const int64_t v0 = int64_t(nh + nkv) * hd;
    for (int32_t t = 0; t < T; ++t)
      for (int64_t c = v0; c < W; ++c)
        ASSERT_EQ(got.data_as<float>()[t * W + c], qkv.data_as<float>()[t * W + c]);
  }
}

TEST_F(CudaKernels, LinearMatchesFloat64Reference) {
  TRACE_SEED();
  struct Case {
    int32_t T, K;
    std::vector<int64_t> rows;
    bool bias;
    DType out;
  };
  const std::vector<Case> cases = {
      {1, 64, {96}, false, DType::kBF16},      {7, 128, {64, 32, 32}, true, DType::kBF16},
      {33, 172, {344}, false, DType::kBF16},  // unaligned K and N (the goldens' FFN)
      {5, 64, {320}, false, DType::kF32},     // logits in fp32
      {3, 96, {40, 24}, true, DType::kF32},    {64, 4096, {1024, 256, 256}, true, DType::kBF16},
      {300, 896, {1792}, false, DType::kBF16},
  };
  for (const Case& c : cases) {
    int64_t N = 0;
    for (int64_t r : c.rows) N += r;
    SCOPED_TRACE(::testing::Message() << "T=" << c.T << " K=" << c.K << " N=" << N << " out "
                                      << dtype_name(c.out) << (c.bias ? " bias" : ""));
    // Parts in f32, bf16 and f16 on the host: the upload converts each to bf16.
    std::vector<Tensor> parts;
    Tensor w_ref = host({N, c.K});
    int64_t row = 0;
    for (size_t i = 0; i < c.rows.size(); ++i) {
      Tensor p32 = rand_host({c.rows[i], c.K}, rng_, 0.05f);
      Tensor p = p32;
      if (i % 3 != 0) {
        const DType dt = i % 3 == 1 ? DType::kBF16 : DType::kF16;
        p = Tensor::empty_host(dt, {c.rows[i], c.K});
        for (int64_t j = 0; j < p.numel(); ++j) {
          const float v = p32.data_as<float>()[j];
          p.data_as<uint16_t>()[j] = dt == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
        }
      }
      for (int64_t j = 0; j < p.numel(); ++j) {
        const uint16_t h = p.dtype() == DType::kF32 ? 0 : p.data_as<uint16_t>()[j];
        const float v = p.dtype() == DType::kF32    ? p.data_as<float>()[j]
                        : p.dtype() == DType::kBF16 ? bf16_to_f32(h)
                                                    : bf16_to_f32(f32_to_bf16(f16_to_f32(h)));
        w_ref.data_as<float>()[row * c.K + j] = v;
      }
      row += c.rows[i];
      parts.push_back(p);
    }
    Tensor bias = c.bias ? rand_host({N}, rng_, 0.5f) : Tensor();
    const Linear lin = gpu_->make_linear(parts, bias);
    ASSERT_EQ(lin.parts.size(), 1u);
    ASSERT_EQ(lin.out_features, N);
    Tensor x = rand_host({c.T, c.K}, rng_);
    Tensor dout = poisoned(c.out, {c.T, N});
    gpu_->linear(up(x), lin, dout);
    Tensor ref = host({c.T, N});
    for (int32_t t = 0; t < c.T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double s = c.bias ? bias.data_as<float>()[n] : 0.0;
        for (int32_t k = 0; k < c.K; ++k)
          s += double(x.data_as<float>()[int64_t(t) * c.K + k]) *
               double(w_ref.data_as<float>()[n * c.K + k]);
        ref.data_as<float>()[int64_t(t) * N + n] = float(s);
      }
    EXPECT_LT(rel_err(down(dout), ref), c.out == DType::kF32 ? 1e-3 : kBf16Tol);
  }
}

TEST_F(CudaKernels, MakeLinearReusesATiedEmbeddingTable) {
  Tensor table = rand_host({100, 64}, rng_);
  Tensor dtable = gpu_->make_param(table);
  const Linear tied = gpu_->make_linear({table}, Tensor());
  EXPECT_EQ(tied.parts[0].data(), dtable.data());
  const Linear own = gpu_->make_linear({test::copy_host(table)}, Tensor());
  EXPECT_NE(own.parts[0].data(), dtable.data());
  const Linear dev = gpu_->make_linear({dtable}, Tensor());  // dummy path: already on the GPU
  EXPECT_EQ(dev.parts[0].data(), dtable.data());
}

TEST_F(CudaKernels, MakeLinearConcatenatesDeviceParts) {
  // The dummy-weights path: parts made on the device, concatenated on the device.
  const std::vector<std::vector<int64_t>> shapes = {{48, 64}, {16, 64}, {16, 64}};
  std::vector<Tensor> parts;
  for (size_t i = 0; i < shapes.size(); ++i)
    parts.push_back(cuda_random_tensor(*gpu_, DType::kBF16, shapes[i], 100 + i, 0.02f));
  const Linear lin = gpu_->make_linear(parts, Tensor());
  ASSERT_EQ(lin.out_features, 80);
  ASSERT_EQ(lin.in_features, 64);
  Tensor w = down(lin.parts[0]);
  int64_t row = 0;
  for (const Tensor& p : parts) {
    Tensor hp = down(p);
    for (int64_t j = 0; j < hp.numel(); ++j)
      ASSERT_EQ(w.data_as<float>()[row * 64 + j], hp.data_as<float>()[j]);
    row += p.size(0);
  }
  EXPECT_GT(max_abs_diff(down(parts[1]), down(parts[2])), 0.0) << "seeds differ";
}

TEST_F(CudaKernels, RopeMatchesCpu) {
  TRACE_SEED();
  for (auto [T, nh, nkv, hd] : std::vector<std::array<int32_t, 4>>{
           {1, 4, 4, 64}, {7, 8, 2, 128}, {19, 8, 1, 64}, {5, 4, 2, 16}}) {
    SCOPED_TRACE(::testing::Message()
                 << "T=" << T << " heads " << nh << "/" << nkv << " hd " << hd);
    // One sequence per token at positions up to 100k (large angles); blocks of 1024 tokens.
    std::vector<SeqSpec> specs;
    for (int32_t t = 0; t < T; ++t) specs.push_back({int32_t(rng_.next_u64() % 100000), 1});
    const ForwardBatch fb = make_batch(specs, 1024, 100 * T, rng_);
    const int64_t W = int64_t(nh + 2 * nkv) * hd;
    Tensor qkv = rand_host({T, W}, rng_, 2.f);
    Tensor inv = Tensor::empty_host(DType::kF32, {hd / 2});
    for (int32_t i = 0; i < hd / 2; ++i)
      inv.data_as<float>()[i] = 1.0f / std::pow(500000.0f, float(2 * i) / float(hd));
    RopeTable gr{gpu_->make_param(inv), hd}, cr{inv, hd};
    Tensor dqkv = up(qkv);
    gpu_->rope(dqkv, nh, nkv, gr, gpu_->prepare_batch(fb, 1024));
    Tensor ref = test::copy_host(qkv);
    cpu_->rope(ref, nh, nkv, cr, cpu_->prepare_batch(fb, 1024));
    Tensor got = down(dqkv);
    EXPECT_LT(rel_err(got, ref), kBf16Tol);
    const int64_t v0 = int64_t(nh + nkv) * hd;
    for (int32_t t = 0; t < T; ++t)
      for (int64_t c = v0; c < W; ++c)
        ASSERT_EQ(got.data_as<float>()[t * W + c], qkv.data_as<float>()[t * W + c]) << "v part";
  }
}

TEST_F(CudaKernels, SiluMulMatchesCpu) {
  TRACE_SEED();
  for (int32_t T : {1, 9, 64}) {
    for (int32_t F : {172, 1000, 14336}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " F=" << F);
      Tensor gu = rand_host({T, 2 * F}, rng_, 4.f);
      Tensor dout = poisoned(DType::kBF16, {T, F});
      gpu_->silu_mul(up(gu), dout);
      Tensor ref = host({T, F});
      cpu_->silu_mul(gu, ref);
      EXPECT_LT(rel_err(down(dout), ref), kBf16Tol);
    }
  }
}

TEST_F(CudaKernels, GeluTanhMulMatchesCpuAndTheFormula) {
  TRACE_SEED();
  for (int32_t T : {1, 9, 64}) {
    for (int32_t F : {172, 1000, 6912, 203}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " F=" << F);
      Tensor gu = rand_host({T, 2 * F}, rng_, 4.f);
      Tensor dout = poisoned(DType::kBF16, {T, F});
      gpu_->gelu_tanh_mul(up(gu), dout);
      Tensor ref = host({T, F});
      cpu_->gelu_tanh_mul(gu, ref);
      EXPECT_LT(rel_err(down(dout), ref), kBf16Tol);
      // The CPU reference against the formula in float64 (and not SiLU's values).
      Tensor silu = host({T, F});
      cpu_->silu_mul(gu, silu);
      double worst = 0;
      for (int32_t t = 0; t < T; ++t)
        for (int32_t f = 0; f < F; ++f) {
          const double g = gu.data_as<float>()[t * 2 * F + f];
          const double u = gu.data_as<float>()[t * 2 * F + F + f];
          const double want =
              0.5 * g *
              (1 + std::tanh(std::sqrt(2 / 3.14159265358979323846) * (g + 0.044715 * g * g * g))) *
              u;
          worst = std::max(worst, std::abs(ref.data_as<float>()[t * F + f] - want) /
                                      std::max(1.0, std::abs(want)));
        }
      EXPECT_LT(worst, 1e-5);
      EXPECT_GT(rel_err(ref, silu), 1e-2);
    }
  }
}

TEST_F(CudaKernels, SoftcapMatchesCpu) {
  TRACE_SEED();
  for (auto [R, V] : std::vector<std::array<int32_t, 2>>{{1, 320}, {7, 1001}, {128, 32064}}) {
    Tensor x = rand_host({R, V}, rng_, 60.f);
    Tensor dx = up(x, DType::kF32);
    gpu_->softcap(dx, 30.f);
    Tensor ref = test::copy_host(x);
    cpu_->softcap(ref, 30.f);
    Tensor got = down(dx);
    EXPECT_LT(rel_err(got, ref), 1e-5) << R << "x" << V;
    for (int64_t i = 0; i < ref.numel(); ++i) {
      ASSERT_LE(std::abs(got.data_as<float>()[i]), 30.f);
      ASSERT_NEAR(ref.data_as<float>()[i], std::tanh(x.data_as<float>()[i] / 30.0) * 30.0, 1e-4);
    }
  }
}

// The KV-cache write and paged attention together: sequences with cached prefixes, prefill
// chunks that cross and start on block boundaries, decode tokens, a sequence with no new tokens,
// on shuffled block tables; both caches start with the same random contents.
// Granite's logits_scaling on fp32 logits.
TEST_F(CudaKernels, DivScalarMatchesCpu) {
  TRACE_SEED();
  for (auto [R, V] : std::vector<std::array<int32_t, 2>>{{1, 320}, {9, 50000}}) {
    Tensor x = rand_host({R, V}, rng_, 20.f);
    Tensor dx = up(x, DType::kF32);
    gpu_->div_scalar(dx, 8.0f);
    Tensor ref = test::copy_host(x);
    cpu_->div_scalar(ref, 8.0f);
    EXPECT_EQ(max_abs_diff(down(dx), ref), 0.0) << R << "x" << V;  // IEEE division both sides
  }
}

TEST_F(CudaKernels, WriteKvAndPagedAttentionMatchCpu) {
  TRACE_SEED();
  struct Case {
    int32_t nh, nkv, hd, window, bs;
  };
  const std::vector<Case> cases = {
      {4, 4, 64, 0, 16},  {8, 2, 128, 0, 16}, {16, 2, 64, 0, 16},  {8, 1, 128, 5, 16},
      {4, 2, 16, 12, 16}, {4, 1, 256, 0, 8},  {32, 8, 128, 0, 16}, {14, 2, 64, 40, 32},
  };
  const std::vector<SeqSpec> specs = {{0, 1}, {37, 1},  {0, 23}, {16, 16},
                                      {5, 0}, {110, 5}, {3, 1},  {64, 64}};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "heads " << c.nh << "/" << c.nkv << " hd " << c.hd
                                      << " window " << c.window << " bs " << c.bs);
    int32_t blocks_needed = 0;
    for (const SeqSpec& s : specs) blocks_needed += (s.cached + s.q_len + c.bs - 1) / c.bs;
    const int32_t num_blocks = blocks_needed + 7;
    const ForwardBatch fb = make_batch(specs, c.bs, num_blocks, rng_);
    const int32_t T = fb.num_tokens();
    const int64_t W = int64_t(c.nh + 2 * c.nkv) * c.hd;
    Tensor qkv = rand_host({T, W}, rng_, 2.f);
    Tensor kc = rand_host({num_blocks, c.bs, c.nkv, c.hd}, rng_, 2.f);
    Tensor vc = rand_host({num_blocks, c.bs, c.nkv, c.hd}, rng_, 2.f);
    KvLayer ckv{test::copy_host(kc), test::copy_host(vc)};
    KvLayer gkv{up(kc), up(vc)};
    const float scale = 1.0f / std::sqrt(float(c.hd));

    const DeviceBatch& gb = gpu_->prepare_batch(fb, c.bs);
    Tensor dqkv = up(qkv);
    gpu_->write_kv(dqkv, c.nh, c.nkv, gkv, gb);
    Tensor dout = poisoned(DType::kBF16, {T, int64_t(c.nh) * c.hd});
    gpu_->attention(dqkv, c.nh, c.nkv, gkv, scale, c.window, gb, dout);

    const DeviceBatch& cb = cpu_->prepare_batch(fb, c.bs);
    cpu_->write_kv(qkv, c.nh, c.nkv, ckv, cb);
    Tensor ref = host({T, int64_t(c.nh) * c.hd});
    cpu_->attention(qkv, c.nh, c.nkv, ckv, scale, c.window, cb, ref);

    EXPECT_EQ(max_abs_diff(down(gkv.k), ckv.k), 0.0) << "k cache";
    EXPECT_EQ(max_abs_diff(down(gkv.v), ckv.v), 0.0) << "v cache";
    EXPECT_LT(rel_err(down(dout), ref), kBf16Tol) << "attention";
  }
}

// The fused RoPE + KV write against the CPU's rope then write_kv: the q part of qkv and both
// caches (rotated k, v).
TEST_F(CudaKernels, RopeWriteKvMatchesCpuRopeThenWriteKv) {
  TRACE_SEED();
  struct Case {
    int32_t nh, nkv, hd, bs;
  };
  for (const Case c : {Case{4, 4, 64, 16}, Case{8, 2, 128, 16}, Case{8, 1, 256, 8},
                       Case{14, 2, 64, 32}, Case{6, 3, 32, 16}}) {
    SCOPED_TRACE(::testing::Message() << "heads " << c.nh << "/" << c.nkv << " hd " << c.hd);
    const std::vector<SeqSpec> specs = {{0, 7}, {37, 1}, {5000, 1}, {16, 16}, {90000, 3}};
    int32_t blocks = 0;
    for (const SeqSpec& sp : specs) blocks += (sp.cached + sp.q_len + c.bs - 1) / c.bs;
    const ForwardBatch fb = make_batch(specs, c.bs, blocks + 3, rng_);
    const int32_t T = fb.num_tokens();
    const int64_t W = int64_t(c.nh + 2 * c.nkv) * c.hd;
    Tensor qkv = rand_host({T, W}, rng_, 2.f);
    Tensor kc = rand_host({blocks + 3, c.bs, c.nkv, c.hd}, rng_);
    Tensor vc = rand_host({blocks + 3, c.bs, c.nkv, c.hd}, rng_);
    Tensor inv = Tensor::empty_host(DType::kF32, {c.hd / 2});
    for (int32_t i = 0; i < c.hd / 2; ++i)
      inv.data_as<float>()[i] = 1.0f / std::pow(500000.0f, float(2 * i) / float(c.hd));
    RopeTable gr{gpu_->make_param(inv), c.hd}, cr{inv, c.hd};
    KvLayer ckv{test::copy_host(kc), test::copy_host(vc)};
    KvLayer gkv{up(kc), up(vc)};
    Tensor dqkv = up(qkv);
    gpu_->rope_write_kv(dqkv, c.nh, c.nkv, gr, gkv, gpu_->prepare_batch(fb, c.bs));
    Tensor ref = test::copy_host(qkv);
    const DeviceBatch& cb = cpu_->prepare_batch(fb, c.bs);
    cpu_->rope(ref, c.nh, c.nkv, cr, cb);
    cpu_->write_kv(ref, c.nh, c.nkv, ckv, cb);
    Tensor got = down(dqkv);
    const int64_t qw = int64_t(c.nh) * c.hd;
    Tensor gq = Tensor::empty_host(DType::kF32, {T, qw}),
           rq = Tensor::empty_host(DType::kF32, {T, qw});
    for (int32_t t = 0; t < T; ++t) {
      std::copy(got.data_as<float>() + t * W, got.data_as<float>() + t * W + qw,
                gq.data_as<float>() + t * qw);
      std::copy(ref.data_as<float>() + t * W, ref.data_as<float>() + t * W + qw,
                rq.data_as<float>() + t * qw);
    }
    EXPECT_LT(rel_err(gq, rq), kBf16Tol) << "q";
    EXPECT_LT(rel_err(down(gkv.k), ckv.k), kBf16Tol) << "k cache";
    EXPECT_EQ(max_abs_diff(down(gkv.v), ckv.v), 0.0) << "v cache";
  }
}

// Decode rows over long contexts: few (token, KV head) pairs, so the key range is split (up to 32
// splits) and combined; padded rows (a CUDA-graph batch) give zeros and leave the real ones alone.
TEST_F(CudaKernels, SplitKvDecodeAttentionMatchesCpu) {
  TRACE_SEED();
  struct Case {
    int32_t nh, nkv, hd, window;
  };
  for (const Case c : {Case{32, 8, 128, 0}, Case{8, 1, 128, 0}, Case{14, 2, 64, 300},
                       Case{16, 16, 64, 0}, Case{8, 2, 256, 0}}) {
    for (int32_t nseq : {1, 3, 17}) {
      SCOPED_TRACE(::testing::Message() << "heads " << c.nh << "/" << c.nkv << " hd " << c.hd
                                        << " window " << c.window << " seqs " << nseq);
      const int32_t bs = 16;
      std::vector<SeqSpec> specs;
      int32_t blocks = 0;
      for (int32_t i = 0; i < nseq; ++i) {
        specs.push_back({int32_t(rng_.next_u64() % 3000), 1});
        blocks += (specs.back().cached + 1 + bs - 1) / bs;
      }
      const ForwardBatch fb = make_batch(specs, bs, blocks + 5, rng_);
      const int32_t T = fb.num_tokens();
      const int64_t W = int64_t(c.nh + 2 * c.nkv) * c.hd;
      Tensor qkv = rand_host({T, W}, rng_, 2.f);
      Tensor kc = rand_host({blocks + 5, bs, c.nkv, c.hd}, rng_, 2.f);
      Tensor vc = rand_host({blocks + 5, bs, c.nkv, c.hd}, rng_, 2.f);
      KvLayer gkv{up(kc), up(vc)};
      const float scale = 1.0f / std::sqrt(float(c.hd));
      const DeviceBatch& cb = cpu_->prepare_batch(fb, bs);
      Tensor ref = host({T, int64_t(c.nh) * c.hd});
      cpu_->attention(qkv, c.nh, c.nkv, KvLayer{kc, vc}, scale, c.window, cb, ref);
      for (int32_t pad : {0, T + 5}) {
        const int32_t rows = std::max(T, pad);
        Tensor qpad = Tensor::empty_host(DType::kF32, {rows, W});
        std::fill(qpad.data_as<float>(), qpad.data_as<float>() + qpad.numel(), 0.5f);
        std::copy(qkv.data_as<float>(), qkv.data_as<float>() + qkv.numel(), qpad.data_as<float>());
        Tensor dout = poisoned(DType::kBF16, {rows, int64_t(c.nh) * c.hd});
        const DeviceBatch& gb = gpu_->prepare_batch(fb, bs, nullptr, pad);
        gpu_->attention(up(qpad), c.nh, c.nkv, gkv, scale, c.window, gb, dout);
        Tensor got = down(dout);
        Tensor real = Tensor::empty_host(DType::kF32, {T, int64_t(c.nh) * c.hd});
        std::copy(got.data_as<float>(), got.data_as<float>() + real.numel(), real.data_as<float>());
        EXPECT_LT(rel_err(real, ref), kBf16Tol) << "pad " << pad;
        for (int64_t i = real.numel(); i < got.numel(); ++i)
          ASSERT_EQ(got.data_as<float>()[i], 0.0f) << "padding rows must be zero";
      }
    }
  }
}

// Speculative verification rows: every sequence computes 1 + k rows (k = 1..7, causal among
// them) in one block per (sequence, KV head, split) of the split-KV kernel (a batch of at most
// kMaxSeqBlockRows new tokens a sequence). Against the CPU reference: GQA groups of 1..8, head dims
// 64/128/256, sliding windows, gpt-oss sinks, split and unsplit key ranges (few / many sequences),
// batches mixing decode rows, verification rows of several lengths and a sequence with no new
// tokens; and the same rows packed as a verification graph packs them (1 + k rows a sequence,
// padding rows and padding sequences), whose padding sequences give zeros.
TEST_F(CudaKernels, SeqBlockVerificationAttentionMatchesCpu) {
  TRACE_SEED();
  struct Case {
    int32_t nh, nkv, hd, window;
    bool sinks;
  };
  const std::vector<Case> cases = {
      {32, 8, 128, 0, false}, {8, 1, 128, 0, false}, {14, 2, 64, 300, false},
      {16, 16, 64, 0, false}, {8, 2, 256, 0, false}, {64, 8, 64, 0, true},
      {8, 2, 64, 5, true},
  };
  const int32_t bs = 16;
  for (const Case& c : cases) {
    for (int32_t k = 1; k <= 7; ++k) {
      for (int32_t nseq : {1, 3, 40}) {
        for (int32_t variant : {0, 1, 2}) {
          SCOPED_TRACE(::testing::Message()
                       << "heads " << c.nh << "/" << c.nkv << " hd " << c.hd << " window "
                       << c.window << " sinks " << c.sinks << " k " << k << " seqs " << nseq
                       << " variant " << variant);
          // Variant 0: 1 + k rows a sequence. 1: sequence i computes 1 + (i % (k + 1)) rows
          // (decode rows among them; the last 1 + k). 2: as 1, and one more sequence computes
          // none (eager only: a verification graph packs sequences of 1..1 + k rows).
          std::vector<SeqSpec> specs;
          int32_t blocks = 0;
          for (int32_t i = 0; i < nseq; ++i) {
            const int32_t q = variant == 0 || i == nseq - 1 ? 1 + k : 1 + i % (k + 1);
            specs.push_back({int32_t(rng_.next_u64() % (nseq > 8 ? 600 : 3000)), q});
            blocks += (specs.back().cached + q + bs - 1) / bs;
          }
          if (variant == 2) {
            specs.insert(specs.begin() + nseq / 2, SeqSpec{37, 0});
            blocks += (37 + bs - 1) / bs;
          }
          const int32_t num_blocks = blocks + 5;
          const ForwardBatch fb = make_batch(specs, bs, num_blocks, rng_);
          const int32_t T = fb.num_tokens(), S = int32_t(fb.seqs.size());
          const int64_t W = int64_t(c.nh + 2 * c.nkv) * c.hd, O = int64_t(c.nh) * c.hd;
          Tensor qkv = rand_host({T, W}, rng_, 2.f);
          Tensor kc = rand_host({num_blocks, bs, c.nkv, c.hd}, rng_, 2.f);
          Tensor vc = rand_host({num_blocks, bs, c.nkv, c.hd}, rng_, 2.f);
          Tensor sinks;
          if (c.sinks) {
            sinks = rand_host({c.nh}, rng_, 3.f);
            sinks.data_as<float>()[0] = 40.f;
            sinks.data_as<float>()[1] = -40.f;
          }
          const Tensor gsinks = c.sinks ? up(sinks, DType::kF32) : Tensor();
          KvLayer gkv{up(kc), up(vc)};
          const float scale = 1.0f / std::sqrt(float(c.hd));
          const DeviceBatch& cb = cpu_->prepare_batch(fb, bs);
          Tensor ref = host({T, O});
          cpu_->attention(qkv, c.nh, c.nkv, KvLayer{kc, vc}, scale, c.window, cb, ref, sinks);

          {  // eager: the rows as they are
            Tensor dout = poisoned(DType::kBF16, {T, O});
            const DeviceBatch& gb = gpu_->prepare_batch(fb, bs);
            ASSERT_EQ(gb.max_q_len, 1 + k);
            gpu_->attention(up(qkv), c.nh, c.nkv, gkv, scale, c.window, gb, dout, gsinks);
            EXPECT_LT(rel_err(down(dout), ref), kBf16Tol) << "eager";
          }
          if (variant == 2) continue;
          // A verification graph's packing: sequence i's rows at i (1 + k) (padding rows after a
          // shorter sequence's), two padding sequences.
          const int32_t rps = 1 + k, padded = S + 2, TP = padded * rps;
          Tensor qpad = Tensor::empty_host(DType::kF32, {TP, W});
          std::fill(qpad.data_as<float>(), qpad.data_as<float>() + qpad.numel(), 0.5f);
          for (int32_t i = 0; i < S; ++i) {
            const SeqBatchInfo& sq = fb.seqs[size_t(i)];
            std::copy(qkv.data_as<float>() + int64_t(sq.q_start) * W,
                      qkv.data_as<float>() + int64_t(sq.q_start + sq.q_len) * W,
                      qpad.data_as<float>() + int64_t(i) * rps * W);
          }
          Tensor dout = poisoned(DType::kBF16, {TP, O});
          const DeviceBatch& gb = gpu_->prepare_batch(fb, bs, nullptr, padded, rps);
          ASSERT_EQ(gb.num_tokens, TP);
          gpu_->attention(up(qpad), c.nh, c.nkv, gkv, scale, c.window, gb, dout, gsinks);
          Tensor got = down(dout);
          Tensor real = host({T, O});
          for (int32_t i = 0; i < S; ++i) {
            const SeqBatchInfo& sq = fb.seqs[size_t(i)];
            std::copy(got.data_as<float>() + int64_t(i) * rps * O,
                      got.data_as<float>() + (int64_t(i) * rps + sq.q_len) * O,
                      real.data_as<float>() + int64_t(sq.q_start) * O);
          }
          EXPECT_LT(rel_err(real, ref), kBf16Tol) << "graph packing";
          for (int64_t i = int64_t(S) * rps * O; i < got.numel(); ++i)
            ASSERT_EQ(got.data_as<float>()[i], 0.0f) << "padding sequences must be zero";
        }
      }
    }
  }
}

TEST_F(CudaKernels, AttentionRejectsHeadDimOver256) {
  const ForwardBatch fb = make_batch({{0, 2}}, 16, 1, rng_);
  KvLayer kv{gpu_->alloc(DType::kBF16, {1, 16, 1, 512}),
             gpu_->alloc(DType::kBF16, {1, 16, 1, 512})};
  Tensor qkv = gpu_->alloc(DType::kBF16, {2, 3 * 512}), out = gpu_->alloc(DType::kBF16, {2, 512});
  EXPECT_THROW(gpu_->attention(qkv, 1, 1, kv, 1.f, 0, gpu_->prepare_batch(fb, 16), out), Error);
}

TEST_F(CudaKernels, GatherRowsCopiesTheRequestedRows) {
  TRACE_SEED();
  for (auto [T, H, R] :
       std::vector<std::array<int32_t, 3>>{{1, 64, 1}, {9, 896, 4}, {40, 4096, 40}}) {
    ForwardBatch fb = make_batch({{0, T}}, 16, (T + 15) / 16, rng_);
    fb.logit_rows.clear();
    for (int32_t r = 0; r < R; ++r) fb.logit_rows.push_back(int32_t(rng_.next_u64() % uint64_t(T)));
    Tensor x = rand_host({T, H}, rng_);
    Tensor dout = poisoned(DType::kBF16, {R, H});
    gpu_->gather_rows(up(x), gpu_->prepare_batch(fb, 16), dout);
    Tensor ref = host({R, H});
    cpu_->gather_rows(x, cpu_->prepare_batch(fb, 16), ref);
    EXPECT_EQ(max_abs_diff(down(dout), ref), 0.0)
        << T << " rows of " << H << ", " << R << " gathered";
  }
}

// EAGLE-3's auxiliary states: rows copied into a column slice of a wider buffer (and out of
// one), as the CPU does.
TEST_F(CudaKernels, CopyRowsIntoAndOutOfColumnSlices) {
  TRACE_SEED();
  for (auto [T, H, J] :
       std::vector<std::array<int32_t, 3>>{{1, 64, 0}, {7, 384, 1}, {33, 4096, 2}}) {
    Tensor x = rand_host({T, H}, rng_);
    Tensor wide = rand_host({T, 3 * H}, rng_);
    Tensor dwide = up(wide);
    gpu_->copy_rows(up(x), dwide.slice_cols(int64_t(J) * H, int64_t(J + 1) * H));
    Tensor ref = test::copy_host(wide);
    cpu_->copy_rows(x, ref.slice_cols(int64_t(J) * H, int64_t(J + 1) * H));
    EXPECT_EQ(max_abs_diff(down(dwide), ref), 0.0) << T << " x " << H << " into slice " << J;
    Tensor dout = poisoned(DType::kBF16, {T, H});
    gpu_->copy_rows(dwide.slice_cols(int64_t(J) * H, int64_t(J + 1) * H), dout);
    EXPECT_EQ(max_abs_diff(down(dout), x), 0.0) << T << " x " << H << " out of slice " << J;
  }
}

TEST_F(CudaKernels, CopyToHostHandlesStridedViewsAndF32) {
  Tensor x = rand_host({5, 40}, rng_);
  Tensor view = down(up(x).slice_cols(8, 24));
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 16; ++c)
      ASSERT_EQ(view.data_as<float>()[r * 16 + c], x.data_as<float>()[r * 40 + 8 + c]);
  Tensor f = down(up(x, DType::kF32));
  EXPECT_EQ(max_abs_diff(f, x), 0.0);
}

TEST_F(CudaKernels, FillRandomIsSeededWithTheRequestedSpread) {
  const int64_t n = 1 << 20;
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor a = gpu_->alloc(dt, {n}), b = gpu_->alloc(dt, {n}), c = gpu_->alloc(dt, {n});
    cuda_fill_random(*gpu_, a, 7, 0.02f);
    cuda_fill_random(*gpu_, b, 7, 0.02f);
    cuda_fill_random(*gpu_, c, 8, 0.02f);
    Tensor ha = down(a), hb = down(b), hc = down(c);
    EXPECT_EQ(max_abs_diff(ha, hb), 0.0) << "same seed, same values";
    EXPECT_GT(max_abs_diff(ha, hc), 0.0) << "another seed, other values";
    double sum = 0, sq = 0, mx = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double v = ha.data_as<float>()[i];
      sum += v;
      sq += v * v;
      mx = std::max(mx, std::fabs(v));
    }
    EXPECT_LT(std::fabs(sum / double(n)), 2e-4);
    EXPECT_NEAR(std::sqrt(sq / double(n)), 0.02, 0.0005);
    EXPECT_LE(mx, 0.02 * std::sqrt(3.0) * 1.01);
    cuda_fill_random(*gpu_, a, 7, 0.f, 1.f);
    Tensor ones = down(a);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(ones.data_as<float>()[i], 1.0f);
  }
}

TEST_F(CudaKernels, PrepareBatchRejectsInconsistentBatches) {
  ForwardBatch fb = make_batch({{4, 2}, {0, 3}}, 16, 4, rng_);
  EXPECT_NO_THROW(gpu_->prepare_batch(fb, 16));
  ForwardBatch bad_pos = fb;
  bad_pos.positions[1] = 6;  // == kv_len
  EXPECT_ANY_THROW(gpu_->prepare_batch(bad_pos, 16));
  ForwardBatch gap = fb;
  gap.seqs[1].q_start = 3;  // rows must follow each other
  EXPECT_ANY_THROW(gpu_->prepare_batch(gap, 16));
  ForwardBatch bad_row = fb;
  bad_row.logit_rows.push_back(5);
  EXPECT_ANY_THROW(gpu_->prepare_batch(bad_row, 16));
}

TEST_F(CudaKernels, MetadataBufferGrowsForLargeBatches) {
  TRACE_SEED();
  CudaBackendOptions o;
  o.metadata_bytes = 4096;  // 1024 ints: the batch below needs ~60k
  auto small = make_cuda_backend(0, o);
  std::vector<SeqSpec> many(3000, SeqSpec{300, 1});
  const ForwardBatch big = make_batch(many, 16, 3000 * 19, rng_, 50);
  Tensor table = rand_host({50, 64}, rng_);
  for (int round = 0; round < 2; ++round) {
    const DeviceBatch& b = small->prepare_batch(big, 16);
    EXPECT_EQ(b.num_seqs, 3000);
    EXPECT_EQ(b.max_blocks_per_seq, 19);
    Tensor dout = small->alloc(DType::kBF16, {3000, 64});
    cuda_poison(*small, dout);
    small->embedding(small->make_param(table), b, 1.0f, dout);
    Tensor ref = host({3000, 64});
    cpu_->embedding(table, cpu_->prepare_batch(big, 16), 1.0f, ref);
    EXPECT_EQ(max_abs_diff(cuda_download_f32(*small, dout), ref), 0.0) << "round " << round;
  }
}

}  // namespace
}  // namespace inferd
