// gpt-oss on the CUDA backend (issue 27) against the CPU reference: the fused MoE op (routing,
// grouping, bf16 and MXFP4 experts, clamped SwiGLU with interleaved gate/up and SiLU with halves,
// biases, 1 to 77 rows, shapes that are not multiples of the kernel tiles), attention sinks in
// the decode (split and unsplit) and prefill attention kernels, and a gpt-oss model with MXFP4
// experts decoding from CUDA graphs as it does eagerly. Whole-model goldens (gpt_oss,
// gpt_oss_mxfp4) run in cuda_test's CudaGoldens. Skips itself without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cuda_test_util.h"
#include "model/golden_util.h"
#include "model/quant/experts.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

using test::rand_host;
using test::rel_err;

constexpr double kBf16Tol = 2e-2;

// Random experts [E, rows, in]: bf16 values (host fp32 tensor of bf16 values for the CPU, bf16 on
// the GPU), or MXFP4 bytes (the CPU gets their exact bf16 dequantization).
struct TestExperts {
  ExpertLinear cpu, gpu;
};

TestExperts make_experts(Backend& gpu, int64_t E, int64_t rows, int64_t in, bool mxfp4, Rng& rng) {
  TestExperts t;
  ExpertLinear h;
  h.num_experts = E;
  h.out_features = rows;
  h.in_features = in;
  h.bias = rand_host({E, rows}, rng, 0.5f);
  if (mxfp4) {
    Tensor blocks = Tensor::empty_host(DType::kU8, {E, rows, in / 2});
    Tensor scales = Tensor::empty_host(DType::kU8, {E, rows, in / 32});
    for (int64_t i = 0; i < blocks.numel(); ++i)
      blocks.data_as<uint8_t>()[i] = uint8_t(rng.next_u64());
    // Scales 2^-5 .. 2^-3 (values up to 0.75): products of unit size.
    for (int64_t i = 0; i < scales.numel(); ++i)
      scales.data_as<uint8_t>()[i] = uint8_t(122 + rng.next_u64() % 3);
    Tensor deq = Tensor::empty_host(DType::kBF16, {E, rows, in});
    dequantize_mxfp4(blocks.data_as<uint8_t>(), scales.data_as<uint8_t>(), E * rows, in,
                     deq.data_as<uint16_t>());
    h.format = ExpertLinear::Format::kMxfp4;
    h.weight = blocks;
    h.scales = scales;
    t.gpu = gpu.make_experts(h);
    h.format = ExpertLinear::Format::kDense;
    h.weight = deq;
    h.scales = Tensor();
    t.cpu = h;
  } else {
    h.weight = rand_host({E, rows, in}, rng, 1.5f / std::sqrt(float(in)));
    t.gpu = gpu.make_experts(h);
    t.cpu = h;
  }
  return t;
}

TEST(CudaGptOss, FusedMoeMatchesCpu) {
  INFERD_REQUIRE_GPU();
  auto gpu = make_cuda_backend(0);
  auto cpu = make_cpu_backend(2);
  Rng rng(27);
  struct Case {
    int64_t E, K, H, F;
    bool mxfp4, gpt_oss;
  };
  const std::vector<Case> cases = {{4, 2, 64, 40, false, true},
                                   {32, 4, 96, 64, true, true},
                                   {8, 2, 64, 64, true, false},
                                   {6, 3, 160, 96, false, false},
                                   {128, 8, 128, 32, true, true}};
  for (const Case& c : cases) {
    const TestExperts gu = make_experts(*gpu, c.E, 2 * c.F, c.H, c.mxfp4, rng);
    const TestExperts dn = make_experts(*gpu, c.E, c.H, c.F, c.mxfp4, rng);
    MoeParams p;
    p.top_k = c.K;
    if (c.gpt_oss) {
      p.act = MoeParams::Act::kClampedSwiglu;
      p.interleaved_gate_up = true;
      p.limit = 1.0f;  // small, so that the clamps bite on these values
    } else {
      p.softmax_before_topk = true;
      p.renormalize = true;
    }
    for (int64_t T : {1, 3, 77}) {
      SCOPED_TRACE(::testing::Message() << "E " << c.E << " K " << c.K << " H " << c.H << " F "
                                        << c.F << (c.mxfp4 ? " mxfp4" : " bf16") << " T " << T);
      const Tensor x = rand_host({T, c.H}, rng, 2.f);
      const Tensor logits = rand_host({T, c.E}, rng, 3.f);
      Tensor ref = Tensor::empty_host(DType::kF32, {T, c.H});
      cpu->fused_moe(x, logits, gu.cpu, dn.cpu, p, ref);
      Tensor out = gpu->alloc(DType::kBF16, {T, c.H});
      gpu->fused_moe(cuda_upload(*gpu, x, DType::kBF16), cuda_upload(*gpu, logits, DType::kBF16),
                     gu.gpu, dn.gpu, p, out);
      const double err = rel_err(cuda_download_f32(*gpu, out), ref);
      std::printf("[cuda-gptoss] moe E %ld K %ld H %ld F %ld %s T %ld: rel err %.3e\n", long(c.E),
                  long(c.K), long(c.H), long(c.F), c.mxfp4 ? "mxfp4" : "bf16", long(T), err);
      EXPECT_LT(err, kBf16Tol);
    }
  }
}

TEST(CudaGptOss, AttentionSinksMatchCpu) {
  INFERD_REQUIRE_GPU();
  auto gpu = make_cuda_backend(0);
  auto cpu = make_cpu_backend(2);
  Rng rng(28);
  StepCapacity cap;
  cap.max_tokens = 512;
  cap.max_blocks_per_seq = 64;
  gpu->reserve(cap);
  struct Case {
    int32_t nh, nkv, hd, window;
  };
  // Decode rows (split and unsplit key ranges), prefill chunks, a sliding window; a sink far
  // above the scores (near-zero output) and far below (no effect) included.
  const std::vector<test::SeqSpec> specs = {{0, 1}, {300, 1}, {0, 23}, {16, 70}, {5, 1}};
  for (const Case& c : std::vector<Case>{{8, 2, 64, 0}, {8, 1, 64, 12}, {4, 4, 128, 0}}) {
    SCOPED_TRACE(::testing::Message()
                 << "heads " << c.nh << "/" << c.nkv << " hd " << c.hd << " window " << c.window);
    const int32_t bs = 16, num_blocks = 64;
    const ForwardBatch fb = test::make_batch(specs, bs, num_blocks, rng);
    const int32_t T = fb.num_tokens();
    Tensor qkv = rand_host({T, int64_t(c.nh + 2 * c.nkv) * c.hd}, rng, 2.f);
    Tensor kc = rand_host({num_blocks, bs, c.nkv, c.hd}, rng, 2.f);
    Tensor vc = rand_host({num_blocks, bs, c.nkv, c.hd}, rng, 2.f);
    Tensor sinks = rand_host({c.nh}, rng, 3.f);
    sinks.data_as<float>()[0] = 40.f;
    sinks.data_as<float>()[1] = -40.f;
    KvLayer ckv{test::copy_host(kc), test::copy_host(vc)};
    KvLayer gkv{cuda_upload(*gpu, kc, DType::kBF16), cuda_upload(*gpu, vc, DType::kBF16)};
    const float scale = 1.0f / std::sqrt(float(c.hd));
    const DeviceBatch& gb = gpu->prepare_batch(fb, bs);
    Tensor dqkv = cuda_upload(*gpu, qkv, DType::kBF16);
    gpu->write_kv(dqkv, c.nh, c.nkv, gkv, gb);
    Tensor dout = gpu->alloc(DType::kBF16, {T, int64_t(c.nh) * c.hd});
    gpu->attention(dqkv, c.nh, c.nkv, gkv, scale, c.window, gb, dout,
                   cuda_upload(*gpu, sinks, DType::kF32));
    const DeviceBatch& cb = cpu->prepare_batch(fb, bs);
    cpu->write_kv(qkv, c.nh, c.nkv, ckv, cb);
    Tensor ref = Tensor::empty_host(DType::kF32, {T, int64_t(c.nh) * c.hd});
    cpu->attention(qkv, c.nh, c.nkv, ckv, scale, c.window, cb, ref, sinks);
    const double err = rel_err(cuda_download_f32(*gpu, dout), ref);
    std::printf("[cuda-gptoss] sinks heads %d/%d hd %d window %d: rel err %.3e\n", c.nh, c.nkv,
                c.hd, c.window, err);
    EXPECT_LT(err, 1e-2);
  }
}

// The MXFP4 golden model: greedy tokens decoded from CUDA graphs equal the eager ones.
TEST(CudaGptOss, Mxfp4ModelGraphsMatchEager) {
  INFERD_REQUIRE_GPU();
  const std::string dir = testing_util::goldens_dir() + "gpt_oss_mxfp4";
  std::vector<std::vector<int32_t>> outs;
  for (bool eager : {true, false}) {
    RunnerOptions o;
    o.num_kv_blocks = 64;
    o.block_size = 16;
    o.max_num_batched_tokens = 128;
    o.max_num_seqs = 4;
    o.enforce_eager = eager;
    ModelRunner m(dir, o, make_cuda_backend(0));
    outs.push_back(greedy_generate(m, {5, 17, 99, 3, 250, 7, 8}, 24, 64));
  }
  EXPECT_EQ(outs[0], outs[1]);
}

}  // namespace
}  // namespace inferd
