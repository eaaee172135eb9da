// The CPU communicator (cpu_communicator.h).
#include "backend/cpu/cpu_communicator.h"

#include <condition_variable>
#include <cstring>
#include <mutex>

#include "core/error.h"

namespace inferd {

namespace {

// What the ranks of one group share.
struct Group {
  explicit Group(int n) : size(n), ptrs(size_t(n)), numel(size_t(n)) {}
  const int size;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  bool aborted = false;
  int failed_rank = -1;
  std::string reason;
  // Published by each rank between the two barriers of a collective.
  std::vector<void*> ptrs;
  std::vector<int64_t> numel;
};

class CpuCommunicator final : public Communicator {
 public:
  CpuCommunicator(std::shared_ptr<Group> g, int rank) : g_(std::move(g)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  std::string name() const override { return fmt::format("cpu (rank {} of {})", rank_, size()); }

  void barrier() override {
    std::unique_lock lk(g_->mu);
    throw_if_aborted();
    const uint64_t gen = g_->generation;
    if (++g_->arrived == g_->size) {
      g_->arrived = 0;
      ++g_->generation;
      g_->cv.notify_all();
      return;
    }
    g_->cv.wait(lk, [&] { return g_->generation != gen || g_->aborted; });
    if (g_->generation == gen) throw_if_aborted();
  }

  void abort(const std::string& reason) noexcept override {
    try {
      std::lock_guard lk(g_->mu);
      if (!g_->aborted) {
        g_->aborted = true;
        g_->failed_rank = rank_;
        g_->reason = reason;
      }
    } catch (...) {  // a failed lock: nothing better to do
    }
    g_->cv.notify_all();
  }

  void all_reduce_sum(Tensor t) override {
    check(t.dtype() == DType::kF32 && t.is_contiguous(), "all_reduce_sum of a {} {} tensor",
          dtype_name(t.dtype()), t.shape_str());
    publish(t.data(), t.numel());
    const int n = size();
    const int64_t total = t.numel(), begin = total * rank_ / n, end = total * (rank_ + 1) / n;
    float* p[kMaxRanks];
    for (int r = 0; r < n; ++r) p[r] = static_cast<float*>(g_->ptrs[size_t(r)]);
    for (int64_t i = begin; i < end; ++i) {
      float s = p[0][i];
      for (int r = 1; r < n; ++r) s += p[r][i];
      for (int r = 0; r < n; ++r) p[r][i] = s;
    }
    barrier();
  }

  void broadcast(Tensor t, int root) override {
    check(t.is_contiguous() && root >= 0 && root < size(), "broadcast of {} from rank {}",
          t.shape_str(), root);
    publish(t.data(), t.numel());
    if (rank_ != root) std::memcpy(t.data(), g_->ptrs[size_t(root)], t.nbytes());
    barrier();
  }

  void all_gather(const Tensor& in, Tensor out, int dim) override {
    check(in.ndim() == 2 && out.ndim() == 2 && (dim == 0 || dim == 1) &&
              in.dtype() == out.dtype() && out.size(dim) == in.size(dim) * size() &&
              out.size(1 - dim) == in.size(1 - dim) && out.stride(1) == 1 && in.stride(1) == 1,
          "all_gather of {} into {} along dim {}", in.shape_str(), out.shape_str(), dim);
    // Each rank publishes its input; every rank copies every other rank's block row by row.
    publish(in.data(), in.numel());
    const int64_t rows = in.size(0), cols = in.size(1), es = int64_t(dtype_size(in.dtype()));
    const int64_t src_stride = in.stride(0);  // the same layout on every rank
    for (int r = 0; r < size(); ++r) {
      const char* src = static_cast<const char*>(g_->ptrs[size_t(r)]);
      if (src == in.data() && r == rank_ && in_block_of(in, out, dim)) continue;
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t orow = dim == 0 ? r * rows + i : i, ocol = dim == 1 ? r * cols : 0;
        char* dst = static_cast<char*>(out.data()) + (orow * out.stride(0) + ocol) * es;
        std::memmove(dst, src + i * src_stride * es, size_t(cols * es));
      }
    }
    barrier();
  }

 private:
  static constexpr int kMaxRanks = 64;

  // Publishes this rank's buffer and waits for every rank's; the element counts must agree.
  void publish(void* p, int64_t numel) {
    {
      std::lock_guard lk(g_->mu);
      g_->ptrs[size_t(rank_)] = p;
      g_->numel[size_t(rank_)] = numel;
    }
    barrier();
    for (int r = 0; r < size(); ++r)
      check(g_->numel[size_t(r)] == numel, "a collective of {} elements on rank {}, {} on rank {}",
            numel, rank_, g_->numel[size_t(r)], r);
  }

  // `in` is this rank's own block of `out` (an all-gather in place).
  bool in_block_of(const Tensor& in, const Tensor& out, int dim) const {
    const int64_t es = int64_t(dtype_size(in.dtype()));
    const int64_t off = dim == 0 ? rank_ * in.size(0) * out.stride(0) : rank_ * in.size(1);
    return in.data() == static_cast<const char*>(out.data()) + off * es &&
           in.stride(0) == out.stride(0);
  }

  // A broken invariant in a collective: the other ranks must not wait for this one.
  template <typename... Args>
  void check(bool ok, fmt::format_string<Args...> f, Args&&... args) {
    if (ok) return;
    const std::string msg = fmt::format(f, std::forward<Args>(args)...);
    abort(msg);
    throw Error("communicator: " + msg);
  }

  // Under g_->mu.
  void throw_if_aborted() const {
    if (!g_->aborted) return;
    if (g_->failed_rank == rank_) throw Error("tensor-parallel group aborted: " + g_->reason);
    throw Error(fmt::format("tensor-parallel rank {} of {} failed: {}", g_->failed_rank, g_->size,
                            g_->reason));
  }

  std::shared_ptr<Group> g_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_cpu_communicators(int size) {
  if (size < 1 || size > 64) fail("a CPU tensor-parallel group of {} ranks: expected 1..64", size);
  auto g = std::make_shared<Group>(size);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < size; ++r) out.push_back(std::make_unique<CpuCommunicator>(g, r));
  return out;
}

}  // namespace inferd
