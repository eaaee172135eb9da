// Tensor parallelism on one host (issue 33): one ModelRunner a rank, each with its own backend, its
// shard of the weights (model/parallel.h), its KV heads and its communicator, each driven by its
// own thread; the engine sees one ModelExecutor. Every step is broadcast once to all ranks (the
// ranks are threads of this process: the broadcast hands each of them the engine's ForwardBatch);
// the ranks run the same forward, meeting in the communicator's collectives, and rank 0's logits go
// back to the engine (after the lm_head's all-gather every rank holds all of them).
//
// Failure, never a hang: a rank that throws while loading makes the constructor throw its error,
// naming the rank, once every rank has stopped. A rank that throws in a step aborts the
// communicator, so the others leave their collectives at once; the step then throws DeviceFault
// naming the rank and its error, and so do every later step and check_device(): the group is
// broken and the engine stops, as after a GPU fault.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/communicator.h"
#include "runner/model_runner.h"

namespace inferd {

struct TensorParallelOptions {
  int size = 2;
  // Rank r's backend (default: a CPU backend of `threads_per_rank` threads).
  std::function<std::unique_ptr<Backend>(int rank)> make_backend;
  int threads_per_rank = 1;
  // The group's communicators, one a rank (default: make_cpu_communicators(size)).
  std::vector<std::unique_ptr<Communicator>> comms;
  // Test-only: called on rank r's thread before its runner loads (a throw fails that rank's load).
  std::function<void(int rank)> before_load;
};

class TensorParallelExecutor final : public ModelExecutor {
 public:
  // Loads rank r's runner with `opts` (its load.tp set to rank r of the group) on rank r's thread,
  // all ranks at once. --debug-inject-device-fault (opts.inject_device_fault_after_steps) fails
  // the last rank only: one rank's device fails.
  TensorParallelExecutor(const std::string& model_dir, const RunnerOptions& opts,
                         TensorParallelOptions tp);
  ~TensorParallelExecutor() override;

  int size() const { return int(ranks_.size()); }
  ModelRunner& rank(int r) { return *ranks_[size_t(r)]; }
  std::string step_profile() const { return ranks_[0]->step_profile(); }

  int32_t vocab_size() const override { return ranks_[0]->vocab_size(); }
  int32_t block_size() const override { return ranks_[0]->block_size(); }
  int32_t num_kv_blocks() const override { return ranks_[0]->num_kv_blocks(); }
  int32_t max_model_len() const override { return ranks_[0]->max_model_len(); }
  int32_t max_num_batched_tokens() const override { return ranks_[0]->max_num_batched_tokens(); }
  int32_t max_top_logprobs() const override { return ranks_[0]->max_top_logprobs(); }
  int32_t hidden_size() const override { return ranks_[0]->hidden_size(); }
  bool pools_only() const override { return ranks_[0]->pools_only(); }
  bool takes_images(std::string* why_not = nullptr) const override;
  void forward(const ForwardBatch& batch, float* logits) override;
  std::span<const float> pooled() const override { return ranks_[0]->pooled(); }
  void check_device() override;
  StepTiming step_timing() const override { return ranks_[0]->step_timing(); }
  void reset_step_timing() override;

 private:
  // Loads every rank's runner (the constructor's work once the threads run).
  void load(const std::string& model_dir, const RunnerOptions& opts,
            const TensorParallelOptions& tp);
  // Ends the rank threads (idle ones: no task is running).
  void stop_threads() noexcept;
  // Runs task(r) for every rank r, rank 0 on this thread and the others on theirs, and waits for
  // all of them. A rank that throws aborts the communicator; the first failure (the cause: the
  // others fail because of its abort) is returned as "rank r of n: what", else "".
  std::string run_all(const std::function<void(int rank)>& task);
  void worker_loop(int rank);
  // Runs task(rank), catching what it throws (recorded, then the group is aborted).
  void run_rank(int rank, const std::function<void(int rank)>& task);

  std::vector<std::unique_ptr<Communicator>> comms_;
  std::vector<std::unique_ptr<ModelRunner>> ranks_;
  std::vector<std::vector<float>> scratch_logits_;  // ranks 1..: logits nobody reads
  std::vector<std::thread> threads_;                // ranks 1..n-1
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int)>* task_ = nullptr;  // under mu_
  uint64_t generation_ = 0;                         // bumped for each task (under mu_)
  int pending_ = 0;                                 // worker ranks still running the task
  bool stop_ = false;
  std::string first_error_;          // the first failure of the current task (under mu_)
  std::vector<std::string> errors_;  // each rank's failure of the current task ("": none)
  std::string broken_;               // set once a step failed: every later call throws it
};

}  // namespace inferd
