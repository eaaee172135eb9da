// CUDA benchmark of batched multi-LoRA (issue 29): one decoder layer of the Llama-3.1-8B shape
// (the four merged linears qkv 6144x4096, o 4096x4096, gate_up 28672x4096, down 4096x14336), its
// base GEMMs (KernelOps::linear, bf16) against its four KernelOps::lora_add calls (the segmented
// shrink + expand of backend/cuda/lora.cu, rank-16 slots on all seven projections), us per layer,
// for decode batches of 1, 8 and 32 rows and prefill/mixed steps of 128, 512 and 2048 rows, with
// one adapter and with eight (decode rows interleaved over the adapters, prefill rows in eight
// runs). "lora us" is the four lora_add calls alone (shrink and expand on one stream); "layer us"
// the four linears with their LoRA as LinearLayer issues them (lora_begin: the shrink on a side
// stream beside the GEMM, then the expand; steps of at most 8 rows skip the fork). "ratio" is base
// / layer over the four linears only (a whole step adds attention, norms and the lm_head, so its
// ratio is higher; issue 29 asks >= 0.90 for one decode stream); "lora ms/step" is 32 layers' LoRA.
// Each figure is timed from a CUDA graph of many calls. Prints a table; asserts nothing. Needs a
// GPU.
//   cuda_lora_bench [--device N] [--rank R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cuda_bench_util.h"

using namespace inferd;
using bench::time_per_call;

namespace {

struct Proj {
  int64_t in = 0;
  std::vector<int64_t> parts;
};

LoraLinear random_lora(Backend& gpu, const Proj& p, int32_t slots, int64_t rank, uint64_t seed) {
  LoraLinear l;
  l.num_parts = int32_t(p.parts.size());
  l.max_rank = rank;
  l.rank = l.num_parts * rank;
  l.in_features = p.in;
  int64_t end = 0;
  for (size_t i = 0; i < p.parts.size(); ++i) l.part_end[i] = end += p.parts[i];
  l.out_features = end;
  const int64_t as[3] = {slots, l.rank, p.in}, bs[3] = {slots, end, l.rank};
  l.a = cuda_random_tensor(gpu, DType::kBF16, as, seed, 0.02f);
  l.b = cuda_random_tensor(gpu, DType::kBF16, bs, seed + 1, 0.02f);
  return l;
}

// One sequence of T new tokens (the LoRA kernels read only the rows' slots).
ForwardBatch rows_batch(int32_t T) {
  ForwardBatch fb;
  SeqBatchInfo s;
  s.q_start = 0;
  s.q_len = T;
  s.kv_len = T;
  s.num_blocks = (T + 15) / 16;
  s.block_table_offset = 0;
  for (int32_t i = 0; i < s.num_blocks; ++i) fb.block_tables.push_back(i);
  fb.seqs.push_back(s);
  for (int32_t t = 0; t < T; ++t) {
    fb.token_ids.push_back(0);
    fb.positions.push_back(t);
  }
  fb.logit_rows.push_back(T - 1);
  return fb;
}

int run(const std::unique_ptr<Backend>& gpu, int64_t rank) {
  constexpr int32_t kSlots = 8, kMaxT = 2048;
  StepCapacity cap;
  cap.max_tokens = kMaxT;
  cap.max_blocks_per_seq = kMaxT / 16;
  cap.max_lora_columns = int32_t(3 * rank);
  gpu->reserve(cap);
  const std::vector<Proj> projs = {
      {4096, {4096, 1024, 1024}}, {4096, {4096}}, {4096, {14336, 14336}}, {14336, {4096}}};
  std::vector<Linear> base;
  std::vector<LoraLinear> lora;
  for (size_t i = 0; i < projs.size(); ++i) {
    int64_t N = 0;
    for (int64_t n : projs[i].parts) N += n;
    const int64_t ws[2] = {N, projs[i].in};
    base.push_back(
        gpu->make_linear({cuda_random_tensor(*gpu, DType::kBF16, ws, 7 + i, 0.02f)}, Tensor()));
    lora.push_back(random_lora(*gpu, projs[i], kSlots, rank, 100 + 2 * i));
  }
  std::printf("%s, 8B layer, rank %lld, %d slots\n%6s %8s %10s %10s %10s %7s %14s\n",
              gpu->name().c_str(), (long long)rank, kSlots, "rows", "adapters", "base us",
              "lora us", "layer us", "ratio", "lora ms/step");
  int32_t key = 29100;
  for (int32_t T : {1, 8, 32, 128, 512, 2048}) {
    std::vector<Tensor> in, out;
    for (size_t i = 0; i < projs.size(); ++i) {
      const int64_t xs[2] = {T, projs[i].in};
      in.push_back(cuda_random_tensor(*gpu, DType::kBF16, xs, 11 + i, 1.0f));
      out.push_back(gpu->alloc(DType::kBF16, {T, lora[i].out_features}));
    }
    for (int32_t adapters : {1, 8}) {
      std::vector<int32_t> rows(static_cast<size_t>(T), 0);
      for (int32_t t = 0; t < T; ++t)
        rows[size_t(t)] = adapters == 1 ? 0 : T > 32 ? t * adapters / T : t % adapters;
      gpu->set_lora_rows(rows);
      const DeviceBatch& b = gpu->prepare_batch(rows_batch(T), 16);
      auto base_fn = [&] {
        for (size_t i = 0; i < projs.size(); ++i) gpu->linear(in[i], base[i], out[i]);
      };
      auto lora_fn = [&] {
        for (size_t i = 0; i < projs.size(); ++i) gpu->lora_add(in[i], lora[i], b, out[i]);
      };
      auto layer_fn = [&] {  // as LinearLayer::apply issues them: the shrink beside the GEMM
        for (size_t i = 0; i < projs.size(); ++i) {
          gpu->lora_begin(in[i], lora[i], b);
          gpu->linear(in[i], base[i], out[i]);
          gpu->lora_add(in[i], lora[i], b, out[i]);
        }
      };
      const double sb = time_per_call(*gpu, base_fn, key++);
      const double sl = time_per_call(*gpu, lora_fn, key++);
      const double sy = time_per_call(*gpu, layer_fn, key++);
      std::printf("%6d %8d %10.2f %10.2f %10.2f %7.3f %14.3f\n", T, adapters, sb * 1e6, sl * 1e6,
                  sy * 1e6, sb / sy, sl * 32 * 1e3);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rank = 16;
  int rc = 0;
  std::unique_ptr<Backend> gpu =
      bench::open_cuda_bench(argc, argv, "cuda_lora_bench [--device N] [--rank R]", &rc,
                             [&](const std::string& flag, const char* value) {
                               if (flag != "--rank") return false;
                               rank = std::atoll(value);
                               return true;
                             });
  if (!gpu) return rc;
  try {
    return run(gpu, rank);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_lora_bench: %s\n", e.what());
    return 1;
  }
}
