// Batched multi-LoRA on the CUDA backend (cuda_lora.h).
#include "backend/cuda/cuda_lora.h"

#include "backend/cuda/lora.h"

namespace inferd::cuda_impl {

CudaLora::~CudaLora() {
  if (side_) (void)cudaStreamSynchronize(side_);
  if (fork_) (void)cudaEventDestroy(fork_);
  if (join_) (void)cudaEventDestroy(join_);
  if (side_) (void)cudaStreamDestroy(side_);
}

void CudaLora::reserve(const StepCapacity& c) {
  max_tokens_ = c.max_tokens;
  if (c.max_lora_columns <= 0) return;
  tmp_ = ctx_.alloc(DType::kF32,
                    {int64_t(cuda::lora_partial_floats(c.max_tokens, c.max_lora_columns))});
  tickets_ =
      ctx_.alloc(DType::kI32, {int64_t(cuda::lora_ticket_ints(c.max_tokens, c.max_lora_columns))});
  CU_CHECK(cudaMemsetAsync(tickets_.data(), 0, size_t(tickets_.numel()) * 4, ctx_.stream()));
  if (side_ == nullptr) {
    CU_CHECK(cudaSetDevice(ctx_.device()));
    int lo = 0, hi = 0;
    CU_CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    // The highest priority: the shrink's few blocks go ahead of the GEMM's waiting ones.
    CU_CHECK(cudaStreamCreateWithPriority(&side_, cudaStreamNonBlocking, hi));
    CU_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
    CU_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
  }
}

CudaLora::Plan CudaLora::plan(const Tensor& x, const LoraLinear& w, const DeviceBatch& b) const {
  check_dtype(x, DType::kBF16, "lora x");
  Plan p;
  p.x = as_matrix(x, "lora x");
  INFERD_CHECK(p.x.cols == w.in_features && p.x.rows <= b.num_tokens && b.lora_tiles != nullptr,
               "lora x {} A {} for a step of {} rows", x.shape_str(), w.a.shape_str(),
               b.num_tokens);
  p.rows = int32_t(p.x.rows);
  p.tiles = cuda::lora_max_tiles(b.num_tokens, int32_t(w.a.size(0)));
  p.splits = cuda::lora_shrink_splits(b.num_tokens, p.tiles, w.in_features, w.rank);
  INFERD_CHECK(tmp_.defined() && b.num_tokens <= max_tokens_ &&
                   size_t(p.tiles) * size_t((w.rank + 31) / 32) <= size_t(tickets_.numel()) &&
                   size_t(p.splits) * size_t(b.num_tokens) * size_t(w.rank) <= size_t(tmp_.numel()),
               "LoRA scratch of {} floats for {} rows of rank {}",
               tmp_.defined() ? tmp_.numel() : 0, b.num_tokens, w.rank);
  return p;
}

void CudaLora::shrink(const Tensor& x, const LoraLinear& w, const DeviceBatch& b, const Plan& p,
                      cudaStream_t stream) {
  CU_CHECK(cuda::launch_lora_shrink(x.data(), p.x.ld, p.rows, w.a.data(), b.lora_tiles,
                                    b.num_tokens, p.tiles, w.in_features, w.rank,
                                    tmp_.data_as<float>(), tickets_.data_as<int32_t>(), stream));
}

void CudaLora::begin(const Tensor& x, const LoraLinear& w, const DeviceBatch& b) {
  if (b.lora_slots == nullptr || side_ == nullptr) return;
  INFERD_CHECK(pending_w_ == nullptr, "lora_begin twice without lora_add");
  // Small steps: the fork and join would cost more than the shrink; lora_add issues it.
  if (!cuda::lora_fork_shrink(b.num_tokens)) return;
  const Plan p = plan(x, w, b);
  // The side stream starts after everything issued so far (x is ready, the previous expand has
  // read the scratch), and the backend's stream waits for it in add().
  CU_CHECK(cudaEventRecord(fork_, ctx_.stream()));
  CU_CHECK(cudaStreamWaitEvent(side_, fork_, 0));
  shrink(x, w, b, p, side_);
  CU_CHECK(cudaEventRecord(join_, side_));
  pending_w_ = &w;
  pending_x_ = x.data();
}

void CudaLora::add(const Tensor& x, const LoraLinear& w, const DeviceBatch& b, Tensor out) {
  if (b.lora_slots == nullptr) return;
  const Plan p = plan(x, w, b);
  check_dtype(out, DType::kBF16, "lora out");
  const Mat om = as_matrix(out, "lora out");
  INFERD_CHECK(om.cols == w.out_features && om.rows == p.x.rows, "lora x {} out {} B {}",
               x.shape_str(), out.shape_str(), w.b.shape_str());
  const bool forked = pending_w_ != nullptr;
  if (forked) {
    const bool same = pending_w_ == &w && pending_x_ == x.data();
    pending_w_ = nullptr;
    pending_x_ = nullptr;
    CU_CHECK(cudaStreamWaitEvent(ctx_.stream(), join_, 0));  // joined back in any case
    INFERD_CHECK(same, "lora_add of another linear or input than lora_begin's");
  } else {
    shrink(x, w, b, p, ctx_.stream());
  }
  const int32_t splits = cuda::lora_expand_splits(b.num_tokens, p.tiles, w.in_features, w.rank);
  CU_CHECK(cuda::launch_lora_expand(tmp_.data_as<float>(), splits, w.b.data(), b.lora_tiles, p.rows,
                                    b.num_tokens, p.tiles, w.out_features, w.rank, w.max_rank,
                                    w.num_parts, w.part_end, out.data(), om.ld, !forked,
                                    ctx_.stream()));
}

}  // namespace inferd::cuda_impl
