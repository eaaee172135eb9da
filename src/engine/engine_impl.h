// Engine::Impl, the engine's state and loop (engine.cc), shared with the sleep-mode half of its
// work (engine_sleep.cc). Private to src/engine.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "engine/engine_config.h"
#include "engine/image_spans.h"
#include "engine/input_batch.h"
#include "engine/kv_cache_manager.h"
#include "engine/output_processor.h"
#include "engine/request_state.h"
#include "engine/scheduler.h"
#include "engine/speculator.h"
#include "engine/structured_output_manager.h"
#include "inferd/engine.h"
#include "inferd/request_validation.h"
#include "runner/executor.h"
#include "tokenizer/text_decoder.h"

namespace inferd {

class Engine::Impl {
 public:
  Impl(std::shared_ptr<ModelExecutor> executor, EngineConfig config,
       std::shared_ptr<const TextDecoder> decoder);
  ~Impl() { shutdown(); }

  std::string submit(GenerateRequest request, OutputCallback cb, bool ignore_queue_limit);
  bool abort(const std::string& id);
  void validate(const GenerateRequest& r) const {
    validate_request(r, bounds_);
    validate_images(r, *exec_, config_.max_num_batched_tokens);
    if (r.lora_adapter_id < 0) return;
    if (exec_->max_loras() == 0)
      throw InvalidRequestError(
          fmt::format("lora_adapter_id {}: LoRA adapters need --enable-lora", r.lora_adapter_id));
    std::lock_guard lk(mu_);
    if (!lora_known_.count(r.lora_adapter_id))
      throw InvalidRequestError(
          fmt::format("lora_adapter_id {}: no such LoRA adapter", r.lora_adapter_id));
  }
  void add_lora(int32_t id, std::shared_ptr<const LoraAdapter> adapter);
  void remove_lora(int32_t id);
  // Engine thread: hands queued adapters to the executor; takes removed ones from it once no
  // live request names them.
  void apply_lora_updates();
  void shutdown();
  std::string device_fault() const {
    std::lock_guard lk(mu_);
    return fault_;
  }
  EngineStats stats() const {
    std::lock_guard lk(stats_mu_);
    return stats_;
  }
  void sleep(int level, double drain_timeout_s);
  void wake_up();
  int sleep_level() const {
    std::lock_guard lk(mu_);
    return sleep_state_ == SleepState::kAsleep ? sleep_level_ : 0;
  }

  EngineConfig config_;
  int32_t vocab_ = 0;

 private:
  void run();
  void start_request(std::unique_ptr<RequestState> rs);
  int32_t spec_rollback() const {
    return spec_.enabled() ? config_.speculative.num_speculative_tokens : 0;
  }
  void fork(RequestState& rs);
  void step();
  void mark_started();
  void count_step_tokens(int64_t tokens);
  void process_sampled();
  void process_prompt_rows();
  void abort_all(const std::string& error);
  // After a step failed with `e`: the device's fault when the device is broken too, else "".
  std::string device_fault_after(const std::exception& e);
  // The device can run nothing more: every request, running or just submitted, fails with the
  // fault, later submits are refused, and the loop ends.
  void stop_on_device_fault(const std::string& fault);
  void deliver();
  void retire(RequestState& rs);
  void publish_stats();
  // ---- sleep mode (below) ----
  enum class SleepState { kAwake, kDraining, kAsleep };
  // Under mu_: the next time the loop must look at the parked requests or the drain bound.
  std::chrono::steady_clock::time_point sleep_deadline() const;
  // Under mu_: parked requests named by `aborts` move to `incoming` (they start and are aborted
  // as usual); those that waited sleep_wait_s go to `expired`.
  void take_parked(const std::vector<std::string>& aborts,
                   std::vector<std::unique_ptr<RequestState>>& incoming,
                   std::vector<std::unique_ptr<RequestState>>& expired);
  // Expired parked requests fail with a 503-kind error naming sleep mode.
  void fail_expired(std::vector<std::unique_ptr<RequestState>>& expired);
  // One turn of a pending sleep or wake (engine thread): steps while draining, then sleeps;
  // returns true when it ran something (else the loop steps as usual).
  bool run_sleep_control(SleepState state, bool wake);
  void drain_for_sleep();
  void wake_executor();
  // Tells the caller of sleep() / wake_up() that it is done ("" or the error).
  void finish_control(std::string error);

  std::shared_ptr<ModelExecutor> exec_;
  std::shared_ptr<const TextDecoder> decoder_;
  RequestBounds bounds_;
  KvCacheManager kv_;
  Scheduler sched_;
  StructuredOutputManager structured_;  // compile() is called by submitting threads
  OutputProcessor outputs_;
  Speculator spec_;

  // Shared with submitting threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<RequestState>> incoming_;
  std::vector<std::string> aborts_;
  // LoRA: ids requests may name; adapters to hand to the executor, ids to take from it.
  std::unordered_set<int32_t> lora_known_;
  std::vector<std::pair<int32_t, std::shared_ptr<const LoraAdapter>>> lora_adds_;
  std::vector<int32_t> lora_removes_;
  std::unordered_set<std::string> live_;
  uint64_t next_number_ = 0;
  bool stopping_ = false;
  std::string fault_;               // the device fault that stopped the engine
  std::atomic<int64_t> queued_{0};  // submitted, not started, not finished
  // Seconds between request starts while others waited (an exponential average; 0: none seen
  // yet), for admission by expected wait (max_queue_wait_s). Written by the loop.
  std::atomic<double> start_gap_s_{0};
  std::chrono::steady_clock::time_point last_start_;
  mutable std::mutex stats_mu_;
  EngineStats stats_;
  std::thread thread_;
  // Sleep mode, under mu_ (control_mu_: one sleep or wake at a time).
  std::mutex control_mu_;
  std::condition_variable control_cv_;
  SleepState sleep_state_ = SleepState::kAwake;
  int sleep_level_ = 0;  // asleep: its level; draining: the level asked for
  bool wake_requested_ = false;
  bool control_done_ = true;
  std::string control_error_;
  std::chrono::steady_clock::time_point drain_deadline_;
  std::vector<std::unique_ptr<RequestState>> parked_;  // submitted while not awake (oldest first)

  // Engine thread only.
  std::unordered_map<std::string, std::unique_ptr<RequestState>> requests_;
  std::vector<int32_t> lora_removing_;  // removed adapters the executor still holds
  std::vector<ReadyOutput> ready_;
  int64_t next_seq_id_ = 0;
  std::vector<ScheduledSeq> scheduled_;
  InputBatch input_;
  int64_t num_steps_ = 0, tokens_computed_ = 0;
  std::array<int64_t, 32> steps_by_tokens_log2_{};
  int64_t requests_finished_ = 0, requests_aborted_ = 0;
};

}  // namespace inferd
