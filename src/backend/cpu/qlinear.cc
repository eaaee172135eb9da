// The quantized linear layer of qlinear.h.
#include "backend/cpu/qlinear.h"

#include "core/error.h"

namespace inferd::cpu {

int64_t qlinear_scratch_bytes(const Kernels& k, ggml::Type wtype, int64_t T, int64_t K) {
  const ggml::Type a = k.act_type(wtype);
  return a == ggml::Type::kF32 ? 0 : T * ggml::row_bytes(a, K);
}

const uint8_t* quantize_rows(ThreadPool& pool, const Kernels& k, ggml::Type wtype, const float* x,
                             int64_t T, int64_t K, std::vector<uint8_t>& buf) {
  const ggml::Type a = k.act_type(wtype);
  INFERD_CHECK(a != ggml::Type::kF32 && K % ggml::traits(a).block_elems == 0,
               "qlinear: ggml type {} with K = {}", ggml::type_name(uint32_t(wtype)), K);
  const int64_t row = ggml::row_bytes(a, K);
  if (buf.size() < size_t(T * row)) buf.resize(size_t(T * row));
  uint8_t* xq = buf.data();
  if (T == 1) {
    k.quantize_act(wtype, x, 1, K, xq);
  } else {
    pool.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
      k.quantize_act(wtype, x + t0 * K, t1 - t0, K, xq + t0 * row);
    });
  }
  return xq;
}

void qlinear(ThreadPool& pool, const Kernels& k, const float* x, int64_t T, int64_t K,
             const void* W, ggml::Type wtype, const float* bias, int64_t N, float* out, int64_t ldo,
             std::vector<uint8_t>& scratch) {
  const uint8_t* xq = quantize_rows(pool, k, wtype, x, T, K, scratch);
  pool.parallel_for(
      N, [&](int64_t n0, int64_t n1, int) { k.qgemm(xq, T, K, W, wtype, bias, n0, n1, out, ldo); },
      8);
}

}  // namespace inferd::cpu
