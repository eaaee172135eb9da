// GGUF block weights on the CUDA backend (issue 35): linear_ggml of every supported type against
// a float64 reference (the blocks dequantized by ggml::dequantize_row, times the bf16 inputs), for
// decode rows (the GEMV) and prefill rows (dequantized to bf16, then cuBLASLt), bf16 and fp32
// outputs, with bias, parts of mixed types (Q4_K_M style) and a float part; under CUDA graph
// capture with nothing allocated (timings: bench/cuda_ggml_bench). Skips itself without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/ggml_gemv.h"
#include "core/ggml_types.h"
#include "cuda_test_util.h"

namespace inferd {
namespace {

using test::rand_host;
using test::rel_err;

// A weight [rows, k] in one ggml type: its blocks and their exact values.
struct HostWeight {
  ggml::Type type = ggml::Type::kF32;
  int64_t rows = 0, k = 0;
  std::vector<uint8_t> bytes;  // blocks (or f16 values for kF16)
  std::vector<float> values;   // [rows, k] as dequantize_row gives them
  Tensor view() {
    const int64_t rb = int64_t(bytes.size()) / rows;
    if (type == ggml::Type::kF16) return Tensor(bytes.data(), DType::kF16, {rows, k});
    return Tensor(bytes.data(), DType::kU8, {rows, rb});
  }
};

// `distinct` random rows (N(0, 1) * 0.05) quantized, repeated to `rows` rows (timing only needs
// the bytes).
HostWeight make_weight(ggml::Type type, int64_t rows, int64_t k, Rng& rng, int64_t distinct = -1) {
  HostWeight w;
  w.type = type;
  w.rows = rows;
  w.k = k;
  const int64_t rb = type == ggml::Type::kF16 ? 2 * k : ggml::row_bytes(type, k);
  const int64_t d = distinct < 0 ? rows : std::min(rows, distinct);
  w.bytes.resize(size_t(rows * rb));
  w.values.resize(size_t(d * k));
  std::vector<float> x(static_cast<size_t>(k));
  for (int64_t r = 0; r < d; ++r) {
    for (float& v : x) v = float(rng.normal() * 0.05);
    uint8_t* dst = w.bytes.data() + r * rb;
    if (type == ggml::Type::kF16) {
      for (int64_t i = 0; i < k; ++i) {
        const uint16_t h = f32_to_f16(x[size_t(i)]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
    } else {
      ggml::quantize_row(type, x.data(), dst, k);
    }
    ggml::dequantize_row(type, dst, w.values.data() + r * k, k);
  }
  for (int64_t r = d; r < rows; ++r)
    std::memcpy(w.bytes.data() + r * rb, w.bytes.data() + (r % d) * rb, size_t(rb));
  return w;
}

// ref[t, n] = sum_k x[t, k] W[n, k] + bias[n] in float64 over all parts (rows stacked).
Tensor reference(const std::vector<HostWeight*>& parts, const Tensor& x, const Tensor& bias) {
  const int64_t T = x.size(0), K = x.size(1);
  int64_t N = 0;
  for (const HostWeight* p : parts) N += p->rows;
  Tensor ref = Tensor::empty_host(DType::kF32, {T, N});
  int64_t base = 0;
  for (const HostWeight* p : parts) {
    for (int64_t n = 0; n < p->rows; ++n) {
      const float* w = p->values.data() + n * K;
      for (int64_t t = 0; t < T; ++t) {
        const float* xr = x.data_as<float>() + t * K;
        double s = bias.defined() ? double(bias.data_as<float>()[base + n]) : 0.0;
        for (int64_t i = 0; i < K; ++i) s += double(w[i]) * double(xr[i]);
        ref.data_as<float>()[t * N + base + n] = float(s);
      }
    }
    base += p->rows;
  }
  return ref;
}

// The first `t` rows of a host [T, N] tensor.
Tensor first_rows(const Tensor& a, int64_t t) {
  Tensor o = Tensor::empty_host(DType::kF32, {t, a.size(1)});
  std::memcpy(o.data(), a.data(), size_t(t * a.size(1)) * 4);
  return o;
}

class CudaGgml : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_GPU();
    gpu_ = make_cuda_backend(0);
  }

  GgmlLinear place(const std::vector<HostWeight*>& parts, const Tensor& bias) {
    std::vector<GgmlLinear::Part> ps;
    for (HostWeight* p : parts) {
      EXPECT_TRUE(gpu_->supports_ggml(p->type)) << ggml::traits(p->type).name;
      ps.push_back({p->view(), p->type, p->rows});
    }
    return gpu_->make_linear_ggml(std::move(ps), bias);
  }

  // linear_ggml for T in `ts` (bf16 and fp32 outputs) against the float64 reference.
  void check(const std::vector<HostWeight*>& parts, bool with_bias, std::vector<int32_t> ts) {
    const int64_t K = parts[0]->k;
    int64_t N = 0;
    bool all_blocks = true;
    for (const HostWeight* p : parts) {
      N += p->rows;
      all_blocks = all_blocks && p->type != ggml::Type::kF16;
    }
    // The token counts the GEMV takes for every part (the rest: dequantized weights, a GEMM).
    auto all_gemv = [&](int32_t T) {
      for (const HostWeight* p : parts)
        if (!cuda::ggml_gemv_preferred(p->type, K, T)) return false;
      return true;
    };
    const Tensor bias = with_bias ? rand_host({N}, rng_, 0.5f) : Tensor();
    const GgmlLinear lin = place(parts, bias);
    ASSERT_EQ(lin.in_features, K);
    ASSERT_EQ(lin.out_features, N);
    const int32_t tmax = *std::max_element(ts.begin(), ts.end());
    const Tensor x_all = rand_host({tmax, K}, rng_);
    const Tensor ref_all = reference(parts, x_all, bias);
    for (int32_t T : ts) {
      const Tensor x = first_rows(x_all, T), ref = first_rows(ref_all, T);
      const Tensor dx = cuda_upload(*gpu_, x, DType::kBF16);
      for (DType odt : {DType::kBF16, DType::kF32}) {
        Tensor dout = gpu_->alloc(odt, {T, N});
        cuda_poison(*gpu_, dout);
        gpu_->linear_ggml(dx, lin, dout);
        const double err = rel_err(cuda_download_f32(*gpu_, dout), ref);
        // fp32 outputs of the GEMV see the exact block values (fp32 accumulation); the rest is
        // rounded to bf16 once (the output, or the weights before the GEMM; float parts always).
        const bool exact = odt == DType::kF32 && all_gemv(T) && all_blocks;
        EXPECT_LT(err, exact ? 1e-4 : 1e-2)
            << "T=" << T << " N=" << N << " K=" << K << (odt == DType::kF32 ? " f32" : " bf16")
            << " out, first part " << ggml::traits(parts[0]->type).name;
      }
    }
  }

  const uint64_t seed_ = std::random_device{}();
  Rng rng_{seed_};
  std::unique_ptr<Backend> gpu_;
};

#define TRACE_SEED() SCOPED_TRACE(::testing::Message() << "seed " << seed_)

const std::vector<int32_t> kTokens = {1, 2, 5, 8, 9, 16, 17, 64};

class CudaGgmlType : public CudaGgml, public ::testing::WithParamInterface<ggml::Type> {};

TEST_P(CudaGgmlType, LinearMatchesFloat64Reference) {
  TRACE_SEED();
  const ggml::Type t = GetParam();
  const bool legacy = ggml::traits(t).block_elems == 32;
  // N = 1001: not a multiple of the GEMV's rows per block; K = 896 (Qwen2.5-0.5B's width) where
  // the blocks allow it.
  HostWeight a = make_weight(t, 1001, legacy ? 896 : 1024, rng_);
  check({&a}, true, kTokens);
  HostWeight b = make_weight(t, 256, 4096, rng_);
  check({&b}, false, kTokens);
  if (legacy) {  // k not a multiple of 128: the legacy blocks' GEMV without the tensor cores
    HostWeight e = make_weight(t, 33, 160, rng_);
    check({&e}, true, {1, 5, 16});
  }
  if (t == ggml::Type::kQ4_K || t == ggml::Type::kQ6_K || t == ggml::Type::kQ8_0 ||
      t == ggml::Type::kQ4_0) {
    HostWeight c = make_weight(t, 4096, 4096, rng_);
    check({&c}, false, {1, 16, 17});
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CudaGgmlType,
                         ::testing::Values(ggml::Type::kQ4_0, ggml::Type::kQ4_1, ggml::Type::kQ5_0,
                                           ggml::Type::kQ5_1, ggml::Type::kQ8_0,
                                           ggml::Type::kIQ4_NL, ggml::Type::kQ2_K,
                                           ggml::Type::kQ3_K, ggml::Type::kQ4_K, ggml::Type::kQ5_K,
                                           ggml::Type::kQ6_K),
                         [](const ::testing::TestParamInfo<ggml::Type>& i) {
                           return std::string(ggml::traits(i.param).name);
                         });

// Q4_K_M style merged linears: parts of different types (and a float part) with one bias.
TEST_F(CudaGgml, MixedPartsMatchFloat64Reference) {
  TRACE_SEED();
  HostWeight q4k = make_weight(ggml::Type::kQ4_K, 300, 1024, rng_);
  HostWeight q6k = make_weight(ggml::Type::kQ6_K, 257, 1024, rng_);
  HostWeight f16 = make_weight(ggml::Type::kF16, 100, 1024, rng_);
  check({&q4k, &q6k, &f16}, true, kTokens);
}

TEST_F(CudaGgml, SupportsTheGgufTypesWithKernels) {
  for (ggml::Type t : {ggml::Type::kF32, ggml::Type::kF16, ggml::Type::kBF16, ggml::Type::kQ4_K,
                       ggml::Type::kQ6_K, ggml::Type::kQ8_0, ggml::Type::kIQ4_NL})
    EXPECT_TRUE(gpu_->supports_ggml(t)) << ggml::traits(t).name;
  for (ggml::Type t : {ggml::Type::kQ8_K, ggml::Type::kIQ2_XXS, ggml::Type::kQ8_1})
    EXPECT_FALSE(gpu_->supports_ggml(t)) << ggml::traits(t).name;
}

// Captured in a CUDA graph (decode: the GEMV; larger batches: dequantize + GEMM), replayed on new
// inputs: the same results, and no device memory allocated after reserve().
TEST_F(CudaGgml, RunsInsideCudaGraphsWithoutAllocating) {
  TRACE_SEED();
  HostWeight q4k = make_weight(ggml::Type::kQ4_K, 512, 2048, rng_);
  HostWeight q6k = make_weight(ggml::Type::kQ6_K, 128, 2048, rng_);
  const Tensor bias = rand_host({640}, rng_, 0.5f);
  const GgmlLinear lin = place({&q4k, &q6k}, bias);
  StepCapacity cap;
  cap.max_tokens = 64;
  cap.max_blocks_per_seq = 4;
  cap.max_top_logprobs = 0;
  cap.max_edits = 16;
  gpu_->reserve(cap);
  for (int32_t T : {1, 8, 33}) {
    Tensor dx = gpu_->alloc(DType::kBF16, {T, 2048});
    Tensor dout = gpu_->alloc(DType::kBF16, {T, 640});
    cuda_fill_random(*gpu_, dx, seed_ + uint64_t(T), 1.0f);
    gpu_->linear_ggml(dx, lin, dout);  // eager first (cuBLASLt plans)
    cuda_synchronize(*gpu_);
    const int64_t allocated = gpu_->device_bytes_allocated();
    gpu_->begin_graph_capture();
    gpu_->linear_ggml(dx, lin, dout);
    gpu_->end_graph_capture(T);
    cuda_fill_random(*gpu_, dx, seed_ + 1000 + uint64_t(T), 1.0f);
    cuda_poison(*gpu_, dout);
    ASSERT_TRUE(gpu_->replay_graph(T));
    const Tensor x = cuda_download_f32(*gpu_, dx);
    const Tensor ref = reference({&q4k, &q6k}, x, bias);
    EXPECT_LT(rel_err(cuda_download_f32(*gpu_, dout), ref), 1e-2) << "T=" << T;
    EXPECT_EQ(gpu_->device_bytes_allocated(), allocated) << "T=" << T;
  }
}

}  // namespace
}  // namespace inferd
