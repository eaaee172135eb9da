// Int4 weights on the CUDA backend (issue 28): linear_int4 (the tensor-core GEMM of int4_gemm.cu
// for up to kInt4DequantMinTokens rows, dequantization + cuBLASLt above) against the CPU
// reference (the canonical weight dequantized, times the bf16 inputs, in float64) for batches of
// 1, 7, 16, 17, 32, 33, 64, 300 and 600 rows, group sizes 32 / 64 / 128 / per channel, act-order
// permutations, bias, bf16 and fp32 outputs; a merged linear of parts; dummy weights; and every
// int4 fixture of tests/data/int4 (AWQ, GPTQ, compressed-tensors) loaded on the GPU against its
// expected logits. Skips itself without a GPU (timings: bench/cuda_int4_bench).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/int4_gemm.h"
#include "cuda_test_util.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "model/quant/int_weights.h"
#include "runner/model_runner.h"

namespace inferd {
namespace {

using test::rand_host;
using test::rel_err;

// A random weight [rows, cols] of codes 0..15, scales ~0.01, zero points 0..15, optionally with
// act-order groups (a random permutation's groups).
IntQuantWeight random_weight(int64_t rows, int64_t cols, int64_t group, bool act_order, Rng& rng) {
  IntQuantWeight w;
  w.rows = rows;
  w.cols = cols;
  w.group_size = group;
  w.q.resize(size_t(rows * cols));
  for (auto& v : w.q) v = uint8_t(rng.next_u64() % 16);
  const int64_t G = w.groups();
  w.scales.resize(size_t(G * rows));
  w.zeros.resize(size_t(G * rows));
  for (auto& s : w.scales) s = bf16_to_f32(f32_to_bf16(float(0.005 + 0.01 * rng.uniform())));
  for (auto& z : w.zeros) z = float(rng.next_u64() % 16);
  if (act_order) {
    std::vector<int32_t> perm(static_cast<size_t>(cols));
    std::iota(perm.begin(), perm.end(), 0);
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[rng.next_u64() % i]);
    w.g_idx.resize(size_t(cols));
    for (int64_t j = 0; j < cols; ++j) w.g_idx[size_t(perm[size_t(j)])] = int32_t(j / group);
  }
  return w;
}

// ref [T, N] = x W^T + bias in float64, W the parts' dequantized weights stacked.
Tensor reference(const std::vector<IntQuantWeight>& parts, const Tensor& x, const Tensor& bias) {
  const int64_t T = x.size(0), K = x.size(1);
  int64_t N = 0;
  for (const auto& p : parts) N += p.rows;
  Tensor ref = Tensor::empty_host(DType::kF32, {T, N});
  int64_t base = 0;
  for (const auto& p : parts) {
    const Tensor d = dequantize_int_weight(p);
    for (int64_t n = 0; n < p.rows; ++n)
      for (int64_t t = 0; t < T; ++t) {
        double s = bias.defined() ? double(bias.data_as<float>()[base + n]) : 0.0;
        for (int64_t k = 0; k < K; ++k)
          s += double(d.data_as<float>()[n * K + k]) * double(x.data_as<float>()[t * K + k]);
        ref.data_as<float>()[t * N + base + n] = float(s);
      }
    base += p.rows;
  }
  return ref;
}

// ref [rows.size(), N] = x[rows] W^T in float64 for one part, dequantizing on the fly (for
// weights too large to hold dequantized).
Tensor reference_rows(const IntQuantWeight& w, const Tensor& x, const std::vector<int64_t>& rows) {
  const int64_t N = w.rows, K = w.cols, R = int64_t(rows.size());
  Tensor ref = Tensor::empty_host(DType::kF32, {R, N});
  std::vector<double> wrow(size_t(K), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      const size_t gi = size_t(w.group_of(k) * N + n);
      wrow[size_t(k)] = (double(w.q[size_t(n * K + k)]) - double(w.zeros[gi])) * w.scales[gi];
    }
    for (int64_t r = 0; r < R; ++r) {
      const float* xr = x.data_as<float>() + rows[size_t(r)] * K;
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) s += wrow[size_t(k)] * double(xr[k]);
      ref.data_as<float>()[r * N + n] = float(s);
    }
  }
  return ref;
}

Tensor first_rows(const Tensor& a, int64_t t) {
  Tensor o = Tensor::empty_host(DType::kF32, {t, a.size(1)});
  std::copy(a.data_as<float>(), a.data_as<float>() + t * a.size(1), o.data_as<float>());
  return o;
}

class CudaInt4 : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_GPU();
    gpu_ = make_cuda_backend(0);
  }

  void check(const std::vector<IntQuantWeight>& parts, bool with_bias,
             const std::vector<int32_t>& ts) {
    const int64_t K = parts[0].cols;
    int64_t N = 0;
    for (const auto& p : parts) N += p.rows;
    Int4Linear host;
    ASSERT_TRUE(pack_int4_linear(parts, &host));
    ASSERT_TRUE(gpu_->supports_int4(N, K, parts[0].group_size));
    host.bias = with_bias ? rand_host({N}, rng_, 0.5f) : Tensor();
    StepCapacity cap;
    cap.max_tokens = *std::max_element(ts.begin(), ts.end());
    const Int4Linear lin = gpu_->make_linear_int4(host);
    const Tensor x_all = rand_host({cap.max_tokens, K}, rng_);
    const Tensor ref_all = reference(parts, x_all, host.bias);
    for (int32_t T : ts) {
      const Tensor ref = first_rows(ref_all, T);
      const Tensor dx = cuda_upload(*gpu_, first_rows(x_all, T), DType::kBF16);
      for (DType odt : {DType::kBF16, DType::kF32}) {
        Tensor dout = gpu_->alloc(odt, {T, N});
        cuda_poison(*gpu_, dout);
        gpu_->linear_int4(dx, lin, dout);
        // The weights are rounded to bf16 on their way into the tensor cores (and the output,
        // when bf16): about 2^-9 relative each.
        EXPECT_LT(rel_err(cuda_download_f32(*gpu_, dout), ref), 1e-2)
            << "T=" << T << " N=" << N << " K=" << K << " group " << parts[0].group_size
            << (parts[0].g_idx.empty() ? "" : " act-order")
            << (odt == DType::kF32 ? " f32" : " bf16");
      }
    }
  }

  const uint64_t seed_ = std::random_device{}();
  Rng rng_{seed_};
  std::unique_ptr<Backend> gpu_;
};

#define TRACE_SEED() SCOPED_TRACE(::testing::Message() << "seed " << seed_)

// Each kernel and both sides of kInt4DequantMinTokens (33): GEMM 16 rows a block (1, 7, 16), 32
// (17, 32), dequantization + cuBLASLt (33 on).
const std::vector<int32_t> kTokens = {1, 7, 16, 17, 32, 33, 64, 300, 600};

TEST_F(CudaInt4, GemmMatchesCpuReferenceForEveryGroupSize) {
  TRACE_SEED();
  for (int64_t group : {32, 64, 128})
    check({random_weight(272, 512, group, false, rng_)}, true, kTokens);
  check({random_weight(64, 1024, 1024, false, rng_)}, false, kTokens);  // per channel
  // Groups of 48: a group starts inside a 64-wide chunk (the kernel's unaligned path).
  check({random_weight(96, 768, 48, false, rng_)}, true, kTokens);
}

// linear_int4 dequantizes from kInt4DequantMinTokens rows on; the GEMM kernel itself still takes
// any T (its 64- and 128-row blocks): called directly, for every group-size path.
TEST_F(CudaInt4, GemmKernelMatchesCpuReferenceAtEveryBlockHeight) {
  TRACE_SEED();
  const std::vector<int32_t> ts = {33, 48, 64, 65, 130, 300};
  for (int64_t group : {32, 48, 128}) {
    const IntQuantWeight w = random_weight(112, 768, group, false, rng_);
    Int4Linear host;
    ASSERT_TRUE(pack_int4_linear(std::span(&w, 1), &host));
    host.bias = rand_host({112}, rng_, 0.5f);
    const Int4Linear lin = gpu_->make_linear_int4(host);
    const Tensor x_all = rand_host({300, 768}, rng_);
    const Tensor ref_all = reference({w}, x_all, host.bias);
    for (int32_t T : ts) {
      const Tensor dx = cuda_upload(*gpu_, first_rows(x_all, T), DType::kBF16);
      Tensor dout = gpu_->alloc(DType::kF32, {T, 112});
      cuda_poison(*gpu_, dout);
      cuda_synchronize(*gpu_);
      ASSERT_EQ(cuda::launch_int4_gemm(lin.qweight.data_as<uint32_t>(), lin.scales.data(), 112, 768,
                                       group, dx.data(), 768, T, lin.bias.data_as<float>(),
                                       dout.data(), 112, true, nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      EXPECT_LT(rel_err(cuda_download_f32(*gpu_, dout), first_rows(ref_all, T)), 1e-2)
          << "T=" << T << " group " << group;
    }
  }
}

TEST_F(CudaInt4, ActOrderPermutationMatchesCpuReference) {
  TRACE_SEED();
  check({random_weight(128, 768, 128, true, rng_)}, true, kTokens);
  check({random_weight(48, 256, 32, true, rng_)}, false, {1, 7, 16, 64, 300});
}

TEST_F(CudaInt4, MergedPartsMatchCpuReference) {
  TRACE_SEED();
  check({random_weight(256, 512, 128, false, rng_), random_weight(64, 512, 128, false, rng_),
         random_weight(64, 512, 128, false, rng_)},
        true, {1, 7, 16, 64, 300});
}

// Llama-3.1-8B's down projection [4096, 14336] at T = 1024 (the dequantization + cuBLASLt path),
// plain and act-order, placed after a narrower act-order weight whose buffers were already
// reserved for 1024 rows: the act-order gather buffer must grow with the widest input (it did
// not, and this shape died with cudaErrorIllegalAddress). Sampled rows against the CPU
// reference, every output finite.
TEST_F(CudaInt4, DownProjectionShapeAtManyTokensMatchesCpuReference) {
  TRACE_SEED();
  constexpr int64_t N = 4096, K = 14336;
  constexpr int32_t T = 1024;
  StepCapacity cap;
  cap.max_tokens = T;
  cap.max_blocks_per_seq = 1;
  {
    const IntQuantWeight narrow = random_weight(64, 4096, 128, true, rng_);
    Int4Linear host;
    ASSERT_TRUE(pack_int4_linear(std::span(&narrow, 1), &host));
    const Int4Linear lin = gpu_->make_linear_int4(host);
    gpu_->reserve(cap);
    const Tensor x = rand_host({T, 4096}, rng_);
    Tensor dout = gpu_->alloc(DType::kBF16, {T, 64});
    gpu_->linear_int4(cuda_upload(*gpu_, x, DType::kBF16), lin, dout);
  }
  const Tensor x = rand_host({T, K}, rng_);
  const Tensor dx = cuda_upload(*gpu_, x, DType::kBF16);
  const std::vector<int64_t> rows = {0, 1, 255, 511, 512, 777, 1022, 1023};
  for (bool act_order : {false, true}) {
    const IntQuantWeight w = random_weight(N, K, 128, act_order, rng_);
    Int4Linear host;
    ASSERT_TRUE(pack_int4_linear(std::span(&w, 1), &host));
    const Int4Linear lin = gpu_->make_linear_int4(host);
    gpu_->reserve(cap);
    const Tensor ref = reference_rows(w, x, rows);
    Tensor dout = gpu_->alloc(DType::kF32, {T, N});
    cuda_poison(*gpu_, dout);
    gpu_->linear_int4(dx, lin, dout);
    const Tensor out = cuda_download_f32(*gpu_, dout);
    for (int64_t i = 0; i < out.numel(); ++i)
      ASSERT_TRUE(std::isfinite(out.data_as<float>()[i])) << i << (act_order ? " act-order" : "");
    Tensor got = Tensor::empty_host(DType::kF32, {int64_t(rows.size()), N});
    for (size_t r = 0; r < rows.size(); ++r)
      std::copy(out.data_as<float>() + rows[r] * N, out.data_as<float>() + (rows[r] + 1) * N,
                got.data_as<float>() + int64_t(r) * N);
    EXPECT_LT(rel_err(got, ref), 1e-2) << (act_order ? "act-order" : "plain");
  }
}

// The tile layout's position function against the kernel's own reading of it: a weight with a
// single nonzero code computes exactly its column of x.
TEST_F(CudaInt4, TileLayoutPlacesEachCode) {
  for (int64_t n : {0, 5, 8, 15, 16, 31}) {
    for (int64_t k : {0, 1, 7, 8, 9, 15, 16, 63, 64, 127}) {
      IntQuantWeight w;
      w.rows = 32;
      w.cols = 128;
      w.group_size = 128;
      w.q.assign(size_t(32 * 128), 0);
      w.q[size_t(n * 128 + k)] = 1;
      w.scales.assign(32, 1.0f);
      w.zeros.assign(32, 0.0f);
      Int4Linear host;
      ASSERT_TRUE(pack_int4_linear(std::span(&w, 1), &host));
      const Int4Linear lin = gpu_->make_linear_int4(host);
      Tensor x = Tensor::empty_host(DType::kF32, {1, 128});
      for (int64_t i = 0; i < 128; ++i) x.data_as<float>()[i] = float(i + 1);
      Tensor dout = gpu_->alloc(DType::kF32, {1, 32});
      gpu_->linear_int4(cuda_upload(*gpu_, x, DType::kBF16), lin, dout);
      const Tensor out = cuda_download_f32(*gpu_, dout);
      for (int64_t j = 0; j < 32; ++j)
        EXPECT_EQ(out.data_as<float>()[j], j == n ? float(k + 1) : 0.0f) << n << " " << k;
    }
  }
}

// Dummy weights: finite outputs of about the expected size.
TEST_F(CudaInt4, RandomWeightsGiveFiniteOutputs) {
  const Int4Linear lin = gpu_->random_linear_int4(4096, 4096, 128, 7, 0.02f, Tensor());
  const Tensor x = rand_host({16, 4096}, rng_);
  Tensor dout = gpu_->alloc(DType::kF32, {16, 4096});
  gpu_->linear_int4(cuda_upload(*gpu_, x, DType::kBF16), lin, dout);
  const Tensor out = cuda_download_f32(*gpu_, dout);
  double ss = 0;
  for (int64_t i = 0; i < out.numel(); ++i) {
    ASSERT_TRUE(std::isfinite(out.data_as<float>()[i])) << i;
    ss += double(out.data_as<float>()[i]) * out.data_as<float>()[i];
  }
  const double rms = std::sqrt(ss / double(out.numel()));
  // x uniform in [-1, 1] (rms 0.58), 4096 inputs, weights of rms ~0.02 around a zero of 8.
  EXPECT_GT(rms, 0.1);
  EXPECT_LT(rms, 10.0);
}

class CudaInt4Fixtures : public ::testing::TestWithParam<std::string> {};

// Each fixture on the GPU (int4 kernels; the 8-bit GPTQ one dequantized to bf16) against the
// expected logits, within the bf16 tolerance of the goldens.
TEST_P(CudaInt4Fixtures, LogitsMatchTheReference) {
  INFERD_REQUIRE_GPU();
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/int4/" + GetParam();
  RunnerOptions o;
  o.num_kv_blocks = 32;
  o.block_size = 16;
  o.max_num_batched_tokens = 16;
  ModelRunner m(dir, o, make_cuda_backend(0));
  const SafetensorsIndex g = SafetensorsIndex::open_file(dir + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; g.contains("prompt" + std::to_string(i) + ".ids"); ++i)
    prompts.push_back(testing_util::ints(g.get("prompt" + std::to_string(i) + ".ids")));
  const auto logits = testing_util::forward_all(m, prompts, 5);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Tensor want = g.get("prompt" + std::to_string(i) + ".logits");
    EXPECT_LT(testing_util::rel_err(logits[i].data(), want.data_as<float>(), logits[i].size()),
              2e-2)
        << GetParam() << " prompt " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, CudaInt4Fixtures,
                         ::testing::Values("awq_g32", "awq_g64", "gptq_g32_actorder",
                                           "gptq_g64_sym", "gptq_channel_v2", "gptq_8bit_g32",
                                           "ct_group_actorder", "ct_channel_asym"));

}  // namespace
}  // namespace inferd
