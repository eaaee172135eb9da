// Speculative verification step vs decode step (issue 26's table): the time of one runner step
// in which each of B sequences verifies 1 + k tokens (every row sampled, greedy) against a decode
// step of the same B sequences (one token each; a CUDA graph replay when B has one), at a fixed
// context length. Prints a table of the median step time for k = 0..7 and B = 1, 8, 32, 64, and
// the ratio to k = 0. Verification steps run eagerly, or with --verify-graphs 1 replay the graphs
// a runner captured for that k (one runner a k: RunnerOptions::num_speculative_tokens).
//   spec_verify_bench MODEL_DIR [--device cuda|cpu] [--context N] [--iters N] [--batches 1,8,32,64]
//                     [--max-k 7] [--verify-graphs 0|1]       (weights: --load-format dummy)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "runner/model_runner.h"
#ifdef INFERD_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

using namespace inferd;

namespace {

struct Args {
  std::string dir, device = "cuda";
  int32_t context = 512, iters = 20, max_k = 7;
  bool verify_graphs = false;
  std::vector<int32_t> batches{1, 8, 32, 64};
};

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: %s MODEL_DIR [--device cuda|cpu] [--context N] [--iters N] "
                 "[--batches 1,8,32,64] [--max-k 7] [--verify-graphs 0|1]\n",
                 argv[0]);
    std::exit(2);
  }
  a.dir = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") {
      a.device = v;
    } else if (k == "--context") {
      a.context = std::atoi(v.c_str());
    } else if (k == "--iters") {
      a.iters = std::atoi(v.c_str());
    } else if (k == "--verify-graphs") {
      a.verify_graphs = std::atoi(v.c_str()) != 0;
    } else if (k == "--max-k") {
      a.max_k = std::atoi(v.c_str());
    } else if (k == "--batches") {
      a.batches.clear();
      for (size_t p = 0; p < v.size();) {
        const size_t c = v.find(',', p);
        a.batches.push_back(std::atoi(v.substr(p, c - p).c_str()));
        p = c == std::string::npos ? v.size() : c + 1;
      }
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

// B sequences with `context` tokens cached, each computing 1 + k tokens; all rows sampled.
void make_step(int32_t B, int32_t k, int32_t context, int32_t block_size, int32_t vocab,
               ForwardBatch& fb, SamplingBatch& sb) {
  fb.clear();
  sb.clear();
  const int32_t q = 1 + k, kv = context + q;
  const int32_t blocks = (kv + block_size - 1) / block_size;
  for (int32_t s = 0; s < B; ++s) {
    SeqBatchInfo info;
    info.q_start = fb.num_tokens();
    info.q_len = q;
    info.kv_len = kv;
    info.block_table_offset = int32_t(fb.block_tables.size());
    info.num_blocks = blocks;
    for (int32_t b = 0; b < blocks; ++b) fb.block_tables.push_back(s * blocks + b);
    for (int32_t j = 0; j < q; ++j) {
      fb.token_ids.push_back((s * 131 + j * 17 + 7) % vocab);
      fb.positions.push_back(context + j);
      fb.logit_rows.push_back(info.q_start + j);
      SamplingRow row;  // greedy
      row.counter = uint64_t(j);
      sb.rows.push_back(row);
    }
    fb.seqs.push_back(info);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The median time of `iters` runner steps (after 3 unmeasured ones).
double time_step(ModelRunner& runner, const ForwardBatch& fb, const SamplingBatch& sb,
                 int32_t iters) {
  std::vector<SampledToken> out(sb.rows.size());
  std::vector<double> ms;
  for (int32_t it = 0; it < iters + 3; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    runner.execute(fb, sb, out);
    const double dt =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (it >= 3) ms.push_back(dt);  // the first runs: lazily loaded kernels, GEMM plans
  }
  return median(ms);
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  std::unique_ptr<Backend> be;
#ifdef INFERD_HAVE_CUDA
  if (device == "cuda") be = make_cuda_backend(0);
#endif
  if (device == "cpu") be = make_cpu_backend(0);
  if (!be) fail("--device {}: not available in this build", device);
  return be;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  const int32_t max_b = *std::max_element(a.batches.begin(), a.batches.end());
  RunnerOptions o;
  o.load.format = LoadFormat::kDummy;
  o.max_num_seqs = max_b;
  o.max_extra_logit_rows = max_b * a.max_k;
  o.max_num_batched_tokens = std::max(2048, max_b * (1 + a.max_k));
  o.max_model_len = a.context + 64;
  const int32_t blocks_per_seq = (o.max_model_len + o.block_size - 1) / o.block_size;
  o.num_kv_blocks = max_b * blocks_per_seq + 16;
  // ms[b][k]: one runner for the decode column and the eager verification steps; with
  // --verify-graphs one more a k (its graphs captured for that k).
  std::vector<std::vector<double>> ms(a.batches.size(), std::vector<double>(size_t(a.max_k) + 1));
  ForwardBatch fb;
  SamplingBatch sb;
  int32_t V = 0;
  {
    ModelRunner runner(a.dir, o, make_backend(a.device));
    V = runner.vocab_size();
    for (size_t bi = 0; bi < a.batches.size(); ++bi) {
      for (int32_t k = 0; k <= (a.verify_graphs ? 0 : a.max_k); ++k) {
        make_step(a.batches[bi], k, a.context, o.block_size, V, fb, sb);
        ms[bi][size_t(k)] = time_step(runner, fb, sb, a.iters);
      }
    }
  }
  for (int32_t k = 1; a.verify_graphs && k <= a.max_k; ++k) {
    RunnerOptions ok = o;
    ok.num_speculative_tokens = k;
    ok.max_speculative_seqs = max_b;
    ModelRunner runner(a.dir, ok, make_backend(a.device));
    for (size_t bi = 0; bi < a.batches.size(); ++bi) {
      make_step(a.batches[bi], k, a.context, o.block_size, V, fb, sb);
      ms[bi][size_t(k)] = time_step(runner, fb, sb, a.iters);
    }
  }
  std::printf(
      "# %s on %s, context %d, %d iterations a cell, verification steps %s; median step ms "
      "(ratio to k = 0)\n",
      a.dir.c_str(), a.device.c_str(), a.context, a.iters,
      a.verify_graphs ? "on one runner a k (CUDA: its verification graphs)" : "eager");
  std::printf("%-6s", "batch");
  for (int32_t k = 0; k <= a.max_k; ++k)
    std::printf("  %16s", k == 0 ? "decode" : ("1+" + std::to_string(k)).c_str());
  std::printf("\n");
  for (size_t bi = 0; bi < a.batches.size(); ++bi) {
    std::printf("%-6d", a.batches[bi]);
    for (int32_t k = 0; k <= a.max_k; ++k)
      std::printf("  %7.3f (%5.2fx)", ms[bi][size_t(k)], ms[bi][size_t(k)] / ms[bi][0]);
    std::printf("\n");
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "spec_verify_bench: %s\n", e.what());
  return 1;
}
