// The segmented (SGMV) multi-LoRA kernels of backend/cuda/lora.cu (issue 29) against the CPU
// reference (KernelOps::lora_add): steps of 1..300 rows mixing base rows and several adapters whose
// modules have different ranks (rank_pattern: padded to the slot's rank with zeros), on the
// q/k/v-, gate/up- and down-shaped linears, through both shrink paths (SIMT up to 8 rows, tensor
// cores above) and the unvectorized tails (K and ranks not multiples of 8), the shrink on the
// backend's stream or forked beside it (lora_begin); prefill-sized steps of up to 2000 rows over
// eight adapters with 8B-wide K (many K splits: the split tickets); then a CUDA graph captured
// with one mix and replayed with others. The tile grouping (build_lora_tiles) is checked on the
// host and runs everywhere; the kernel tests skip themselves without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <vector>

#include "backend/cuda/lora.h"
#include "cuda_test_util.h"

namespace inferd {
namespace {

// The shapes of one merged linear and its slots' per-part ranks (slot s, part p: ranks[(s + p) %
// size], each at most max_rank).
struct Shape {
  int64_t in = 0;
  std::vector<int64_t> parts;
  int64_t max_rank = 16;
};

struct HostLora {
  std::vector<float> a, b;
};

float bf16_round(float v) {
  return bf16_to_f32(f32_to_bf16(v));
}

// A [S, parts * max_rank, in] and B [S, out, parts * max_rank] laid out as LoraWeights writes them:
// part p owns A's rows and B's columns [p * max_rank, + its rank); zeros elsewhere. Values are
// bf16-exact, so the CPU and the GPU start from the same weights.
HostLora make_host(const Shape& sh, int32_t S, Rng& rng) {
  const std::vector<int64_t> ranks = {sh.max_rank, std::max<int64_t>(1, sh.max_rank / 2), 3,
                                      sh.max_rank - 1};
  const int64_t P = int64_t(sh.parts.size()), R = P * sh.max_rank;
  int64_t N = 0;
  for (int64_t p : sh.parts) N += p;
  HostLora h;
  h.a.assign(size_t(S * R * sh.in), 0.f);
  h.b.assign(size_t(S * N * R), 0.f);
  for (int32_t s = 0; s < S; ++s) {
    int64_t n0 = 0;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t r = std::min(sh.max_rank, ranks[size_t((s + p) % int64_t(ranks.size()))]);
      for (int64_t c = p * sh.max_rank; c < p * sh.max_rank + r; ++c) {
        for (int64_t k = 0; k < sh.in; ++k)
          h.a[size_t((s * R + c) * sh.in + k)] = bf16_round(float(rng.uniform()) - 0.5f);
        for (int64_t n = n0; n < n0 + sh.parts[size_t(p)]; ++n)
          h.b[size_t((s * N + n) * R + c)] = bf16_round(float(rng.uniform()) - 0.5f);
      }
      n0 += sh.parts[size_t(p)];
    }
  }
  return h;
}

LoraLinear make_linear(Backend& be, const Shape& sh, int32_t S, const HostLora& h) {
  LoraLinear l;
  l.num_parts = int32_t(sh.parts.size());
  l.max_rank = sh.max_rank;
  l.rank = l.num_parts * sh.max_rank;
  l.in_features = sh.in;
  int64_t end = 0;
  for (size_t p = 0; p < sh.parts.size(); ++p) l.part_end[p] = end += sh.parts[p];
  l.out_features = end;
  l.a = be.alloc(be.activation_dtype(), {S, l.rank, sh.in});
  l.b = be.alloc(be.activation_dtype(), {S, l.out_features, l.rank});
  be.upload_f32(l.a, h.a);
  be.upload_f32(l.b, h.b);
  return l;
}

// Each row's slot: runs of rows (sequences) of one slot or the base (-1), as a step packs them.
std::vector<int32_t> mixed_rows(int32_t T, int32_t S, Rng& rng) {
  std::vector<int32_t> rows;
  while (int32_t(rows.size()) < T) {
    const int32_t slot = int32_t(rng.next_u64() % uint64_t(S + 1)) - 1;
    const int32_t len = 1 + int32_t(rng.next_u64() % (T > 32 ? 40u : 4u));
    for (int32_t j = 0; j < len && int32_t(rows.size()) < T; ++j) rows.push_back(slot);
  }
  return rows;
}

Tensor bf16_host(std::initializer_list<int64_t> shape, Rng& rng) {
  Tensor t = test::rand_host(shape, rng);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = bf16_round(t.data_as<float>()[i]);
  return t;
}

TEST(CudaLoraTiles, GroupRowsBySlotInTilesOfAtMost64) {
  Rng rng(7);
  for (int32_t T : {1, 2, 5, 31, 64, 65, 127, 300, 1000}) {
    for (int32_t S : {1, 3, 8}) {
      std::vector<int32_t> rows = mixed_rows(T, S, rng);
      if (T == 300) std::fill(rows.begin(), rows.end(), 0);  // one long segment
      std::vector<int32_t> meta(cuda::lora_tile_ints(T), -7);
      std::vector<int64_t> order(static_cast<size_t>(T), 0);
      cuda::build_lora_tiles(rows, meta.data(), order);
      const int32_t n = meta[0];
      EXPECT_LE(n, cuda::lora_max_tiles(T, S)) << "T " << T << " S " << S;
      std::multiset<int32_t> seen;
      for (int32_t i = 0; i < n; ++i) {
        const int32_t start = meta[size_t(1 + 3 * i)], len = meta[size_t(2 + 3 * i)];
        const int32_t slot = meta[size_t(3 + 3 * i)];
        ASSERT_GE(len, 1);
        ASSERT_LE(len, cuda::kLoraTileRows);
        for (int32_t j = 0; j < len; ++j) {
          const int32_t t = meta[size_t(1 + 3 * T + start + j)];
          ASSERT_GE(t, 0);
          ASSERT_LT(t, T);
          EXPECT_EQ(rows[size_t(t)], slot) << "row " << t;
          seen.insert(t);
        }
      }
      std::multiset<int32_t> want;
      for (int32_t t = 0; t < T; ++t)
        if (rows[size_t(t)] >= 0) want.insert(t);
      EXPECT_EQ(seen, want) << "T " << T << " S " << S;
    }
  }
  EXPECT_EQ(cuda::lora_max_tiles(1, 8), 1);
  EXPECT_EQ(cuda::lora_max_tiles(32, 8), 8);
  EXPECT_EQ(cuda::lora_max_tiles(512, 1), 8);
  EXPECT_EQ(cuda::lora_max_tiles(512, 8), 15);
}

struct Pair {
  std::unique_ptr<Backend> cpu, gpu;
};

Pair make_pair_backends(int32_t max_tokens, int64_t max_columns) {
  Pair p{make_cpu_backend(2), make_cuda_backend(0)};
  StepCapacity cap;
  cap.max_tokens = max_tokens;
  cap.max_blocks_per_seq = 32;
  cap.max_lora_columns = int32_t(max_columns);
  p.gpu->reserve(cap);
  return p;
}

// `T` rows as sequences of at most 256 rows (at most 16 blocks of 16 a table; 160 in all).
std::vector<test::SeqSpec> seqs_of(int32_t T) {
  std::vector<test::SeqSpec> seqs;
  for (int32_t t = 0; t < T; t += 256) seqs.push_back({0, std::min(256, T - t)});
  return seqs;
}

// out0 + the CPU reference's LoRA for `rows` (fp32 weights equal to the GPU's bf16 ones).
Tensor cpu_reference(Backend& cpu, const LoraLinear& lc, const std::vector<int32_t>& rows,
                     const Tensor& x, const Tensor& out0, Rng& rng) {
  const ForwardBatch fb = test::make_batch(seqs_of(int32_t(rows.size())), 16, 160, rng);
  cpu.set_lora_rows(rows);
  const DeviceBatch& bc = cpu.prepare_batch(fb, 16);
  Tensor want = test::copy_host(out0);
  cpu.lora_add(x, lc, bc, want);
  return want;
}

void expect_base_rows_untouched(const std::vector<int32_t>& rows, const Tensor& got,
                                const Tensor& out0) {
  const int64_t N = out0.size(1);
  for (size_t t = 0; t < rows.size(); ++t) {
    if (rows[t] >= 0) continue;
    for (int64_t n = 0; n < N; ++n)
      ASSERT_EQ(got.data_as<float>()[int64_t(t) * N + n], out0.data_as<float>()[int64_t(t) * N + n])
          << "base row " << t << " output " << n;
  }
}

// One step of `rows` through the GPU's kernels (the shrink forked beside the backend's stream when
// `fork`: lora_begin) against the CPU reference: the relative error. Base rows must come back
// untouched.
double gpu_step_err(Pair& be, const LoraLinear& lc, const LoraLinear& lg, int64_t in,
                    const std::vector<int32_t>& rows, bool fork, Rng& rng) {
  const int32_t T = int32_t(rows.size());
  const Tensor x = bf16_host({T, in}, rng);
  const Tensor out0 = bf16_host({T, lg.out_features}, rng);
  const Tensor want = cpu_reference(*be.cpu, lc, rows, x, out0, rng);
  be.gpu->set_lora_rows(rows);
  const DeviceBatch& bg = be.gpu->prepare_batch(test::make_batch(seqs_of(T), 16, 160, rng), 16);
  const Tensor xd = cuda_upload(*be.gpu, x, DType::kBF16);
  Tensor od = cuda_upload(*be.gpu, out0, DType::kBF16);
  if (fork) be.gpu->lora_begin(xd, lg, bg);
  be.gpu->lora_add(xd, lg, bg, od);
  const Tensor got = cuda_download_f32(*be.gpu, od);
  expect_base_rows_untouched(rows, got, out0);
  return test::rel_err(got, want);
}

TEST(CudaLoraSgmv, MixedStepsOfOneTo300RowsMatchTheCpuReference) {
  INFERD_REQUIRE_GPU();
  const int32_t S = 4;
  const std::vector<Shape> shapes = {
      {256, {256, 64, 64}, 16},  // q/k/v
      {256, {512, 512}, 16},     // gate/up
      {520, {256}, 16},          // down
      {300, {200, 100}, 12},     // K and ranks that are not multiples of 8: the scalar tails
      {128, {64, 32, 32}, 64},   // the widest rank a slot of --max-lora-rank 64 has
  };
  Pair be = make_pair_backends(320, 3 * 64);
  Rng rng(2901);
  for (const Shape& sh : shapes) {
    const HostLora h = make_host(sh, S, rng);
    const LoraLinear lc = make_linear(*be.cpu, sh, S, h);
    const LoraLinear lg = make_linear(*be.gpu, sh, S, h);
    for (int32_t T : {1, 2, 7, 8, 9, 16, 32, 33, 64, 65, 130, 300}) {
      const std::vector<int32_t> rows = mixed_rows(T, S, rng);
      const double err = gpu_step_err(be, lc, lg, sh.in, rows, T % 2 == 1, rng);
      EXPECT_LT(err, 1e-2) << "in " << sh.in << " out " << lg.out_features << " rank "
                           << sh.max_rank << " rows " << T;
      if (T == 1 || T == 300)
        std::printf("[cuda-lora-sgmv] in %ld out %ld rank %ld rows %d: rel err %.3e\n", long(sh.in),
                    long(lg.out_features), long(sh.max_rank), T, err);
    }
  }
}

// Prefill and mixed steps: up to 2000 rows over eight adapters and the base, runs of rows of one
// slot as long as whole prompts (several 64-row tiles of one slot), K as wide as the 8B model's
// (many K splits, added by the last block of each tile's ticket), the shrink on either stream.
TEST(CudaLoraSgmv, LargeStepsOfUpTo2000RowsOverEightAdaptersMatchTheCpuReference) {
  INFERD_REQUIRE_GPU();
  const int32_t S = 8;
  const std::vector<Shape> shapes = {
      {4096, {1024, 256, 256}, 16},  // q/k/v
      {2048, {1536, 1536}, 16},      // gate/up
      {14336, {512}, 16},            // down: K of the 8B model
      {1000, {300, 84}, 12},         // odd part ends and a K that is no multiple of 64
  };
  Pair be = make_pair_backends(2048, 3 * 16);
  Rng rng(2903);
  for (const Shape& sh : shapes) {
    const HostLora h = make_host(sh, S, rng);
    const LoraLinear lc = make_linear(*be.cpu, sh, S, h);
    const LoraLinear lg = make_linear(*be.gpu, sh, S, h);
    for (int32_t T : {100, 513, 1000, 2000}) {
      for (int pattern = 0; pattern < 3; ++pattern) {
        std::vector<int32_t> rows;
        if (pattern == 0) {
          rows = mixed_rows(T, S, rng);
        } else if (pattern == 1) {
          rows.assign(size_t(T), 5);  // one prompt of one adapter
        } else {
          for (int32_t t = 0; t < T; ++t) rows.push_back(int32_t(t * S / T));  // 8 long runs
          rows[0] = -1;
        }
        if (T == 2000 && pattern != 0) continue;
        const double err = gpu_step_err(be, lc, lg, sh.in, rows, pattern == 1, rng);
        EXPECT_LT(err, 1e-2) << "in " << sh.in << " out " << lg.out_features << " rows " << T
                             << " pattern " << pattern;
        if (pattern == 0)
          std::printf("[cuda-lora-sgmv] in %ld out %ld rows %d, 8 adapters: rel err %.3e\n",
                      long(sh.in), long(lg.out_features), T, err);
      }
    }
  }
}

TEST(CudaLoraSgmv, GraphCapturedWithOneMixReplaysOthers) {
  INFERD_REQUIRE_GPU();
  const int32_t S = 3;
  const Shape sh{2048, {256, 64, 64}, 16};  // K wide enough for several K splits (tickets)
  Pair be = make_pair_backends(64, 3 * 16);
  Rng rng(2902);
  const HostLora h = make_host(sh, S, rng);
  const LoraLinear lc = make_linear(*be.cpu, sh, S, h);
  const LoraLinear lg = make_linear(*be.gpu, sh, S, h);
  int32_t key = 29000;
  // The SIMT and the tensor-core shrink, each on the backend's stream and forked beside it
  // (lora_begin, as LinearLayer issues it: a branch of the graph; 8 rows skip the fork), the
  // expand a programmatic dependent of the shrink; the split tickets must be left zero by each
  // replay for the next.
  for (const auto& [T, fork] :
       std::vector<std::pair<int32_t, bool>>{{8, false}, {48, false}, {8, true}, {48, true}}) {
    const ForwardBatch fb = test::make_batch({{0, T}}, 16, 32, rng);
    const Tensor x = bf16_host({T, sh.in}, rng);
    const Tensor out0 = bf16_host({T, lg.out_features}, rng);
    const std::vector<float> out0v(out0.data_as<float>(), out0.data_as<float>() + out0.numel());
    const Tensor xd = cuda_upload(*be.gpu, x, DType::kBF16);
    Tensor od = cuda_upload(*be.gpu, out0, DType::kBF16);
    // Captured with base rows only, as the runner captures its decode graphs.
    be.gpu->set_lora_rows(std::vector<int32_t>(size_t(T), -1));
    const DeviceBatch& b0 = be.gpu->prepare_batch(fb, 16);
    const int32_t* tiles0 = b0.lora_tiles;
    be.gpu->begin_graph_capture();
    if (fork) be.gpu->lora_begin(xd, lg, b0);
    be.gpu->lora_add(xd, lg, b0, od);
    be.gpu->end_graph_capture(key);
    std::vector<std::vector<int32_t>> mixes = {mixed_rows(T, S, rng), mixed_rows(T, S, rng),
                                               std::vector<int32_t>(size_t(T), 2),
                                               std::vector<int32_t>(size_t(T), -1)};
    for (int32_t t = 0; t < T; ++t) mixes[1][size_t(t)] = t % (S + 1) - 1;  // rows interleaved
    for (const auto& rows : mixes) {
      const Tensor want = cpu_reference(*be.cpu, lc, rows, x, out0, rng);
      be.gpu->upload_f32(od, out0v);
      be.gpu->set_lora_rows(rows);
      const DeviceBatch& b = be.gpu->prepare_batch(fb, 16);
      ASSERT_EQ(b.lora_tiles, tiles0) << "the metadata moved: the graph reads stale rows";
      ASSERT_TRUE(be.gpu->replay_graph(key));
      const Tensor got = cuda_download_f32(*be.gpu, od);
      EXPECT_LT(test::rel_err(got, want), 1e-2) << "rows " << T << " fork " << fork;
      expect_base_rows_untouched(rows, got, out0);
    }
    ++key;
  }
}

}  // namespace
}  // namespace inferd
