// The quantized linear layer of qlinear.h.
#include "backend/cpu/qlinear.h"

#include "core/error.h"

namespace inferd::cpu {

namespace {
// Elements and bytes of one activation block.
void act_block(ggml::Type a, int64_t* elems, int64_t* bytes) {
  switch (a) {
    case ggml::Type::kQ8_0:
      *elems = ggml::kQK, *bytes = sizeof(ggml::BlockQ8_0);
      return;
    case ggml::Type::kQ8_1:
      *elems = ggml::kQK, *bytes = sizeof(ggml::BlockQ8_1);
      return;
    case ggml::Type::kQ8_K:
      *elems = ggml::kQKK, *bytes = sizeof(ggml::BlockQ8_K);
      return;
    default:
      *elems = 1, *bytes = 0;
      return;
  }
}
}  // namespace

int64_t qlinear_scratch_bytes(const Kernels& k, ggml::Type wtype, int64_t T, int64_t K) {
  int64_t elems = 1, bytes = 0;
  act_block(k.act_type(wtype), &elems, &bytes);
  return T * (K / elems) * bytes;
}

void qlinear(ThreadPool& pool, const Kernels& k, const float* x, int64_t T, int64_t K,
             const void* W, ggml::Type wtype, const float* bias, int64_t N, float* out, int64_t ldo,
             std::vector<uint8_t>& scratch) {
  const ggml::Type a = k.act_type(wtype);
  int64_t elems = 1, bytes = 0;
  act_block(a, &elems, &bytes);
  INFERD_CHECK(bytes > 0 && K % elems == 0, "qlinear: ggml type {} with K = {}", uint32_t(wtype),
               K);
  const int64_t row = K / elems * bytes;
  if (scratch.size() < size_t(T * row)) scratch.resize(size_t(T * row));
  uint8_t* xq = scratch.data();
  if (T == 1) {
    k.quantize_act(wtype, x, 1, K, xq);
  } else {
    pool.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
      k.quantize_act(wtype, x + t0 * K, t1 - t0, K, xq + t0 * row);
    });
  }
  pool.parallel_for(
      N, [&](int64_t n0, int64_t n1, int) { k.qgemm(xq, T, K, W, wtype, bias, n0, n1, out, ldo); },
      8);
}

}  // namespace inferd::cpu
