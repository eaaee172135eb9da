// FP8 linears on the CUDA backend (issue 13): the weight and activation quantization against the
// host's e4m3 conversions and an fp64 GEMM of the quantized values; FP8 checkpoints and
// --quantization fp8 through the whole model against the CPU. Skips itself without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/fp8.h"
#include "cuda_test_util.h"
#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "model/quant/fp8_weights.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

using test::rand_host;
using test::rel_err;

// Per-row FP8 quantization as the device does it: scale = max|x| / 448, q = e4m3(x * (1/scale)).
void quantize_rows_host(const Tensor& x, std::vector<float>& q, std::vector<float>& scale) {
  const int64_t R = x.size(0), C = x.size(1);
  q.assign(size_t(R * C), 0.f);
  scale.assign(size_t(R), 0.f);
  for (int64_t r = 0; r < R; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < C; ++c) amax = std::max(amax, std::fabs(x.data_as<float>()[r * C + c]));
    const float s = std::max(amax, 1e-10f) / 448.0f, inv = 1.0f / s;
    scale[size_t(r)] = s;
    for (int64_t c = 0; c < C; ++c)
      q[size_t(r * C + c)] = f8e4m3_to_f32(f32_to_f8e4m3(x.data_as<float>()[r * C + c] * inv));
  }
}

class CudaFp8 : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_GPU();
    gpu_ = make_cuda_backend(0);
  }
  void reserve(int32_t tokens) {
    StepCapacity cap;
    cap.max_tokens = tokens;
    cap.max_blocks_per_seq = 4;
    cap.max_top_logprobs = 0;
    cap.max_edits = 16;
    gpu_->reserve(cap);
  }
  const uint64_t seed_ = std::random_device{}();
  Rng rng_{seed_};
  std::unique_ptr<Backend> gpu_;
};

// quantize_linear_fp8 (weights per output channel, on the device) then an FP8 linear (inputs per
// row): equal to the fp64 product of the host-quantized values, in fp32 and bf16 outputs.
TEST_F(CudaFp8, QuantizedLinearMatchesHostQuantizedProduct) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed_);
  ASSERT_TRUE(gpu_->supports_fp8());
  struct Case {
    int32_t T;
    int64_t K, N;
    bool bias;
  };
  const std::vector<Case> cases = {
      {1, 64, 96, false}, {7, 128, 128, true}, {33, 4096, 1024, false}, {256, 896, 1792, true}};
  std::vector<Fp8Linear> lins;
  std::vector<Tensor> ws, biases;
  for (const Case& c : cases) {
    ws.push_back(rand_host({c.N, c.K}, rng_, 0.05f));
    biases.push_back(c.bias ? rand_host({c.N}, rng_, 0.5f) : Tensor());
    lins.push_back(gpu_->quantize_linear_fp8(gpu_->make_linear({ws.back()}, biases.back())));
  }
  reserve(256);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(::testing::Message() << "T=" << c.T << " K=" << c.K << " N=" << c.N);
    ASSERT_EQ(lins[i].weight.dtype(), DType::kF8E4M3);
    std::vector<float> wq, ws_scale, xq, xs;
    quantize_rows_host(ws[i], wq, ws_scale);
    const Tensor got_scale = cuda_download_f32(*gpu_, lins[i].weight_scale);
    for (int64_t n = 0; n < c.N; ++n)
      ASSERT_FLOAT_EQ(got_scale.data_as<float>()[n], ws_scale[size_t(n)]) << n;
    Tensor x = rand_host({c.T, c.K}, rng_, 2.0f);
    quantize_rows_host(x, xq, xs);
    // Up to kFp8GemvMaxTokens rows the inputs are used as they are (the decode GEMV); above,
    // they are quantized per row for the FP8 GEMM.
    const bool gemv = c.T <= 8;
    Tensor ref = Tensor::empty_host(DType::kF32, {c.T, c.N});
    for (int32_t t = 0; t < c.T; ++t)
      for (int64_t n = 0; n < c.N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < c.K; ++k) {
          const double xv = gemv ? double(x.data_as<float>()[t * c.K + k])
                                 : double(xq[size_t(t * c.K + k)]) * xs[size_t(t)];
          s += xv * double(wq[size_t(n * c.K + k)]);
        }
        s = s * double(ws_scale[size_t(n)]);
        if (c.bias) s += biases[i].data_as<float>()[n];
        ref.data_as<float>()[int64_t(t) * c.N + n] = float(s);
      }
    for (DType out_dt : {DType::kF32, DType::kBF16}) {
      Tensor dout = gpu_->alloc(out_dt, {c.T, c.N});
      cuda_poison(*gpu_, dout);
      gpu_->linear_fp8(cuda_upload(*gpu_, x, DType::kBF16), lins[i], dout);
      const double err = rel_err(cuda_download_f32(*gpu_, dout), ref);
      EXPECT_LT(err, out_dt == DType::kF32 ? 5e-4 : 1e-2) << dtype_name(out_dt);
      std::printf("[cuda-fp8] linear T=%d K=%ld N=%ld out %s: rel err %.2e vs host-quantized\n",
                  c.T, long(c.K), long(c.N), std::string(dtype_name(out_dt)).c_str(), err);
    }
  }
}

// Every kernel of the decode GEMV (cuda::set_fp8_gemv_variant: one or several rows a warp, 2..8
// loads in flight) for 1..8 tokens, on row counts that leave a partial block (FP8 linears have a
// multiple of 16 rows) and a K that is not a multiple of a warp's stride: equal to the fp64 product
// of the bf16 inputs and the quantized weights.
TEST_F(CudaFp8, EveryGemvVariantMatchesTheHostProduct) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed_);
  struct Shape {
    int64_t K, N;
  };
  const std::vector<Shape> shapes = {{4112, 112}, {1024, 272}, {16, 48}};
  reserve(8);
  for (const Shape& sh : shapes) {
    const Tensor w = rand_host({sh.N, sh.K}, rng_, 0.05f);
    const Tensor bias = rand_host({sh.N}, rng_, 0.5f);
    const Fp8Linear lin = gpu_->quantize_linear_fp8(gpu_->make_linear({w}, bias));
    std::vector<float> wq, ws_scale;
    quantize_rows_host(w, wq, ws_scale);
    const Tensor x = rand_host({8, sh.K}, rng_, 2.0f);
    // The device sees x in bf16: the reference uses the same rounded values.
    const Tensor xb = cuda_download_f32(*gpu_, cuda_upload(*gpu_, x, DType::kBF16));
    for (int32_t T = 1; T <= 8; ++T) {
      Tensor ref = Tensor::empty_host(DType::kF32, {T, sh.N});
      for (int32_t t = 0; t < T; ++t)
        for (int64_t n = 0; n < sh.N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < sh.K; ++k)
            acc += double(xb.data_as<float>()[t * sh.K + k]) * double(wq[size_t(n * sh.K + k)]);
          ref.data_as<float>()[int64_t(t) * sh.N + n] =
              float(acc * double(ws_scale[size_t(n)]) + double(bias.data_as<float>()[n]));
        }
      const Tensor dx = cuda_upload(*gpu_, xb.slice_rows(0, T), DType::kBF16);
      for (int v = 0; v < cuda::kFp8GemvVariants; ++v) {
        if (v == cuda::kFp8GemvCublas) continue;
        SCOPED_TRACE(::testing::Message()
                     << "variant " << v << " T=" << T << " K=" << sh.K << " N=" << sh.N);
        const int before = cuda::set_fp8_gemv_variant(v);
        Tensor dout = gpu_->alloc(DType::kF32, {T, sh.N});
        cuda_poison(*gpu_, dout);
        gpu_->linear_fp8(dx, lin, dout);
        const Tensor got = cuda_download_f32(*gpu_, dout);
        cuda::set_fp8_gemv_variant(before);
        EXPECT_LT(rel_err(got, ref), 1e-4);
      }
    }
  }
}

// The bf16 GEMV (CudaGemm::linear for decode-sized steps) on the same awkward shapes: equal to the
// fp64 product of the bf16 inputs and weights, and each token's row the same bits whatever the
// number of tokens beside it (a sequence decodes alike alone and in a verification step).
TEST_F(CudaFp8, Bf16GemvMatchesTheHostProductAtEveryTokenCount) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed_);
  struct Shape {
    int64_t K, N;
  };
  const std::vector<Shape> shapes = {{4112, 112}, {1024, 271}, {8, 48}};
  reserve(8);
  const int before = cuda::set_bf16_gemv_max_tokens(cuda::kFp8GemvMaxTokens);
  for (const Shape& sh : shapes) {
    const Tensor w = rand_host({sh.N, sh.K}, rng_, 0.05f);
    const Tensor bias = rand_host({sh.N}, rng_, 0.5f);
    const Linear lin = gpu_->make_linear({w}, bias);
    const Tensor wb = cuda_download_f32(*gpu_, cuda_upload(*gpu_, w, DType::kBF16));
    const Tensor x = rand_host({8, sh.K}, rng_, 2.0f);
    const Tensor xb = cuda_download_f32(*gpu_, cuda_upload(*gpu_, x, DType::kBF16));
    Tensor first;  // T = 8
    for (int32_t T : {8, 1, 2, 3, 4, 5, 6, 7}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " K=" << sh.K << " N=" << sh.N);
      Tensor ref = Tensor::empty_host(DType::kF32, {T, sh.N});
      for (int32_t t = 0; t < T; ++t)
        for (int64_t n = 0; n < sh.N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < sh.K; ++k)
            acc += double(xb.data_as<float>()[t * sh.K + k]) *
                   double(wb.data_as<float>()[n * sh.K + k]);
          ref.data_as<float>()[int64_t(t) * sh.N + n] =
              float(acc + double(bias.data_as<float>()[n]));
        }
      const Tensor dx = cuda_upload(*gpu_, xb.slice_rows(0, T), DType::kBF16);
      Tensor dout = gpu_->alloc(DType::kF32, {T, sh.N});
      cuda_poison(*gpu_, dout);
      gpu_->linear(dx, lin, dout);
      const Tensor got = cuda_download_f32(*gpu_, dout);
      EXPECT_LT(rel_err(got, ref), 1e-5);
      if (T == 8) {
        first = got;
      } else {
        EXPECT_EQ(0, std::memcmp(got.data(), first.data(), size_t(T * sh.N) * sizeof(float)));
      }
    }
  }
  cuda::set_bf16_gemv_max_tokens(before);
}

// make_linear_fp8 from host parts (the checkpoint path): parts concatenated with their scales.
TEST_F(CudaFp8, CheckpointPartsKeepTheirScales) {
  const int64_t K = 128;
  std::vector<Tensor> parts, scales;
  std::vector<Fp8Weight> fw;
  for (int64_t rows : {64, 32, 32}) {
    fw.push_back(quantize_fp8_per_channel(rand_host({rows, K}, rng_, 0.1f * float(rows) / 32)));
    parts.push_back(fw.back().q);
    Tensor s = Tensor::empty_host(DType::kF32, {rows});
    std::copy(fw.back().channel_scale.begin(), fw.back().channel_scale.end(), s.data_as<float>());
    scales.push_back(s);
  }
  const Fp8Linear l = gpu_->make_linear_fp8(parts, scales, Tensor(), 0.0f);
  ASSERT_EQ(l.out_features, 128);
  ASSERT_EQ(l.weight.dtype(), DType::kF8E4M3);
  reserve(64);
  for (int T : {5, 40}) {  // the decode GEMV and the FP8 GEMM
    Tensor x = rand_host({T, K}, rng_);
    std::vector<float> xq, xs;
    quantize_rows_host(x, xq, xs);
    Tensor ref = Tensor::empty_host(DType::kF32, {T, 128});
    for (int t = 0; t < T; ++t) {
      int64_t n0 = 0;
      for (const Fp8Weight& f : fw) {
        const Tensor d = dequantize_fp8(f);
        for (int64_t n = 0; n < f.out(); ++n) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) {
            const double xv = T <= 8 ? double(x.data_as<float>()[t * K + k])
                                     : double(xq[size_t(t * K + k)]) * xs[size_t(t)];
            s += xv * double(d.data_as<float>()[n * K + k]);
          }
          ref.data_as<float>()[t * 128 + n0 + n] = float(s);
        }
        n0 += f.out();
      }
    }
    Tensor out = gpu_->alloc(DType::kF32, {T, 128});
    gpu_->linear_fp8(cuda_upload(*gpu_, x, DType::kBF16), l, out);
    EXPECT_LT(rel_err(cuda_download_f32(*gpu_, out), ref), 5e-4) << "T=" << T;
  }
}

std::unique_ptr<ModelRunner> load(const std::string& dir, bool cuda, const std::string& q = "") {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  o.load.quantization = q;
  return std::make_unique<ModelRunner>(dir, o, cuda ? make_cuda_backend(0) : make_cpu_backend(2));
}

// The FP8 checkpoints (tests/data/fp8) on the GPU: logits close to their dequantized copies on
// the CPU (the GPU also quantizes activations), the first 8 greedy tokens of the golden prompts
// identical.
TEST_F(CudaFp8, CheckpointsMatchTheirDequantizedCopiesOnTheCpu) {
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/fp8/";
  const auto gold = SafetensorsIndex::open_file(std::string(INFERD_TEST_DATA_DIR) +
                                                "/goldens/llama3/golden.safetensors");
  for (const std::string name : {"llama3_ct_channel", "llama3_ct_tensor", "llama3_fp8_block"}) {
    auto g = load(dir + name, true);
    auto c = load(dir + name + "_dequant", false);
    for (int j = 0; gold.contains("greedy" + std::to_string(j) + ".tokens"); ++j) {
      const int pi =
          testing_util::ints(gold.get("greedy" + std::to_string(j) + ".prompt_index"))[0];
      const auto prompt = testing_util::ints(gold.get("prompt" + std::to_string(pi) + ".ids"));
      const auto lg = testing_util::forward_all(*g, {prompt}, 64)[0];
      const auto lc = testing_util::forward_all(*c, {prompt}, 64)[0];
      const double err = testing_util::rel_err(lg.data(), lc.data(), lc.size());
      const auto tg = greedy_generate(*g, prompt, 8, 64), tc = greedy_generate(*c, prompt, 8, 64);
      std::printf("[cuda-fp8] %s prompt %d: logits rel err %.2e vs CPU dequantized, greedy %s\n",
                  name.c_str(), pi, err, tg == tc ? "identical" : "DIFFERENT");
      EXPECT_LT(err, 5e-2) << name;
      EXPECT_EQ(tg, tc) << name << " prompt " << pi;
    }
  }
}

// --quantization fp8 on the GPU against the same flag on the CPU (weights rounded identically;
// the GPU also quantizes activations).
TEST_F(CudaFp8, QuantizationFlagOnTheGpuMatchesTheCpu) {
  const std::string llama = std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3";
  auto g = load(llama, true, "fp8");
  auto c = load(llama, false, "fp8");
  const std::vector<int32_t> prompt = {5, 17, 200, 3, 99, 41, 7, 8, 9, 10, 11, 12};
  const auto lg = testing_util::forward_all(*g, {prompt}, 64)[0];
  const auto lc = testing_util::forward_all(*c, {prompt}, 64)[0];
  const double err = testing_util::rel_err(lg.data(), lc.data(), lc.size());
  std::printf("[cuda-fp8] llama3 --quantization fp8: GPU vs CPU logits rel err %.2e\n", err);
  EXPECT_LT(err, 5e-2);
}

}  // namespace
}  // namespace inferd
