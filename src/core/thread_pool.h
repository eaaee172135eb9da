// A small fork-join pool for data-parallel kernels: `parallel_for` splits [0, n) into one
// contiguous range per worker and blocks until all are done. The calling thread takes part.
// One thread drives a pool at a time (each CPU backend owns one, driven by the engine thread).
// A decode step on the CPU runs a few hundred parallel_for calls a few microseconds apart, so
// waiting threads (workers for work, the caller for the workers) first spin on an atomic for a
// bounded time (kSpinNs) and only then sleep on a condition variable: a futex wake-up per call
// would cost several microseconds each time. An idle pool sleeps.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace inferd {

class ThreadPool {
 public:
  // num_threads <= 0: one per hardware thread.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return int(workers_.size()) + 1; }

  // fn(begin, end, thread_index). Ranges are aligned to `grain` (the last may be shorter).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                    int64_t grain = 1);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  // Written by the caller before generation_ is bumped (release); read by workers after they
  // see the new generation (acquire).
  const std::function<void(int64_t, int64_t, int)>* task_ = nullptr;
  int64_t n_ = 0, chunk_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  int sleepers_ = 0;  // workers waiting on cv_start_ (guarded by mu_)
};

}  // namespace inferd
