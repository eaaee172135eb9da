// The CPU reference of the batched multi-LoRA op (lora.h).
#include "backend/cpu/lora.h"

#include "core/error.h"

namespace inferd::cpu {

void lora_add(ThreadPool& pool, const Tensor& x, const LoraLinear& w, const int32_t* slots,
              Tensor out, std::vector<std::vector<float>>& scratch) {
  const int64_t T = x.size(0), K = w.in_features, N = w.out_features, R = w.rank;
  INFERD_CHECK(x.size(1) == K && out.size(0) == T && out.size(1) == N &&
                   w.a.dtype() == DType::kF32 && w.b.dtype() == DType::kF32,
               "lora_add shapes x {} out {} A {} B {}", x.shape_str(), out.shape_str(),
               w.a.shape_str(), w.b.shape_str());
  const int64_t num_slots = w.a.size(0), ldx = x.stride(0), ldo = out.stride(0);
  scratch.resize(size_t(pool.num_threads()) + 1);
  pool.parallel_for(
      T,
      [&](int64_t t0, int64_t t1, int thread) {
        std::vector<float>& tmp = scratch[size_t(thread)];
        if (tmp.size() < size_t(R)) tmp.resize(size_t(R));
        for (int64_t t = t0; t < t1; ++t) {
          const int32_t s = slots[t];
          if (s < 0) continue;
          INFERD_CHECK(s < num_slots, "row {}: LoRA slot {} of {}", t, s, num_slots);
          const float* xr = x.data_as<float>() + t * ldx;
          const float* a = w.a.data_as<float>() + int64_t(s) * R * K;
          const float* b = w.b.data_as<float>() + int64_t(s) * N * R;
          for (int64_t k = 0; k < R; ++k) {
            const float* ak = a + k * K;
            float acc = 0.0f;
            for (int64_t i = 0; i < K; ++i) acc += xr[i] * ak[i];
            tmp[size_t(k)] = acc;
          }
          float* o = out.data_as<float>() + t * ldo;
          // Each part's outputs read only its own block of columns (B is zero elsewhere).
          int64_t n0 = 0;
          for (int32_t p = 0; p < w.num_parts; ++p) {
            const int64_t n1 = w.part_end[p], c0 = p * w.max_rank, c1 = c0 + w.max_rank;
            for (int64_t n = n0; n < n1; ++n) {
              const float* bn = b + n * R;
              float acc = 0.0f;
              for (int64_t c = c0; c < c1; ++c) acc += tmp[size_t(c)] * bn[c];
              o[n] += acc;
            }
            n0 = n1;
          }
        }
      },
      1);
}

}  // namespace inferd::cpu
