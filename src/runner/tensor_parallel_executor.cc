// Tensor parallelism on one host (tensor_parallel_executor.h).
#include "runner/tensor_parallel_executor.h"

#include "backend/cpu/cpu_communicator.h"
#include "core/error.h"
#include "core/logging.h"

namespace inferd {

TensorParallelExecutor::TensorParallelExecutor(const std::string& model_dir,
                                               const RunnerOptions& opts,
                                               TensorParallelOptions tp) {
  const int n = tp.size;
  if (n < 2 || n > 64) fail("tensor parallelism over {} ranks: expected 2..64", n);
  if (opts.max_loras > 0)
    fail("--enable-lora with --tensor-parallel-size {}: LoRA adapters are not sharded yet", n);
  if (opts.enable_sleep_mode)
    fail("--enable-sleep-mode with --tensor-parallel-size {}: not supported yet", n);
  comms_ = tp.comms.empty() ? make_cpu_communicators(n) : std::move(tp.comms);
  INFERD_CHECK(int(comms_.size()) == n, "{} communicators for {} ranks", comms_.size(), n);
  ranks_.resize(size_t(n));
  scratch_logits_.resize(size_t(n));
  for (int r = 1; r < n; ++r) threads_.emplace_back([this, r] { worker_loop(r); });
  try {
    load(model_dir, opts, tp);
  } catch (...) {
    stop_threads();
    throw;
  }
}

void TensorParallelExecutor::load(const std::string& model_dir, const RunnerOptions& opts,
                                  const TensorParallelOptions& tp) {
  const int n = size();
  const std::string error = run_all([&](int r) {
    if (tp.before_load) tp.before_load(r);
    RunnerOptions o = opts;
    o.load.tp = TensorParallel{r, n, comms_[size_t(r)].get()};
    // The KV budget is the process's (--kv-cache-memory): a rank's blocks hold 1/n of the heads.
    o.kv_cache_bytes = opts.kv_cache_bytes / n;
    if (r != n - 1) o.inject_device_fault_after_steps = -1;  // one rank's device fails
    std::unique_ptr<Backend> be =
        tp.make_backend ? tp.make_backend(r) : make_cpu_backend(tp.threads_per_rank);
    ranks_[size_t(r)] = std::make_unique<ModelRunner>(model_dir, o, std::move(be));
  });
  if (!error.empty()) {
    // Every rank refused the same way (the model does not split so): the reason alone.
    bool same = true;
    for (const std::string& e : errors_) same = same && e == errors_[0];
    if (same) fail("{}", errors_[0]);
    fail("tensor parallelism: {}", error);
  }
  // The ranks must agree on what the engine sees (they read one config; this catches a bug).
  for (int r = 1; r < n; ++r) {
    const ModelRunner& m = *ranks_[size_t(r)];
    INFERD_CHECK(m.num_kv_blocks() == num_kv_blocks() && m.vocab_size() == vocab_size(),
                 "rank {}: {} KV blocks, vocab {}; rank 0: {}, {}", r, m.num_kv_blocks(),
                 m.vocab_size(), num_kv_blocks(), vocab_size());
  }
  LOG_INFO("tensor parallelism: {} ranks on {} (rank 0: {} KV heads a layer of the model's {})", n,
           ranks_[0]->backend().name(), ranks_[0]->model().kv_cache_spec()[0].num_kv_heads,
           ranks_[0]->config().num_kv_heads);
}

TensorParallelExecutor::~TensorParallelExecutor() {
  stop_threads();
}

void TensorParallelExecutor::stop_threads() noexcept {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

bool TensorParallelExecutor::takes_images(std::string* why_not) const {
  if (why_not) *why_not = "images are not supported with --tensor-parallel-size > 1 yet";
  return false;
}

void TensorParallelExecutor::run_rank(int rank, const std::function<void(int)>& task) {
  try {
    task(rank);
  } catch (const std::exception& e) {
    {
      std::lock_guard lk(mu_);
      if (first_error_.empty())
        first_error_ = fmt::format("rank {} of {}: {}", rank, size(), e.what());
      errors_[size_t(rank)] = e.what();
    }
    comms_[size_t(rank)]->abort(e.what());  // after recording: the others' errors come later
  }
}

std::string TensorParallelExecutor::run_all(const std::function<void(int)>& task) {
  {
    std::lock_guard lk(mu_);
    task_ = &task;
    first_error_.clear();
    errors_.assign(size_t(size()), std::string());
    pending_ = size() - 1;
    ++generation_;
  }
  cv_start_.notify_all();
  run_rank(0, task);
  std::unique_lock lk(mu_);
  cv_done_.wait(lk, [&] { return pending_ == 0; });
  task_ = nullptr;
  return first_error_;
}

void TensorParallelExecutor::worker_loop(int rank) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* task = nullptr;
    {
      std::unique_lock lk(mu_);
      cv_start_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      task = task_;
    }
    run_rank(rank, *task);
    {
      std::lock_guard lk(mu_);
      --pending_;
    }
    cv_done_.notify_one();
  }
}

void TensorParallelExecutor::forward(const ForwardBatch& batch, float* logits) {
  check_device();
  const size_t need = batch.logit_rows.size() * size_t(vocab_size());
  for (size_t r = 1; r < scratch_logits_.size(); ++r)
    if (scratch_logits_[r].size() < need) scratch_logits_[r].resize(need);
  const std::string error = run_all([&](int r) {
    ranks_[size_t(r)]->forward(batch, r == 0 ? logits : scratch_logits_[size_t(r)].data());
  });
  if (error.empty()) return;
  broken_ = "tensor-parallel " + error;
  LOG_ERROR("{}", broken_);
  throw DeviceFault(broken_);
}

void TensorParallelExecutor::check_device() {
  if (!broken_.empty()) throw DeviceFault(broken_);
}

void TensorParallelExecutor::reset_step_timing() {
  for (auto& r : ranks_) r->reset_step_timing();
}

}  // namespace inferd
