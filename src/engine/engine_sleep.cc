// Sleep mode (vLLM's /sleep, /wake_up; issue 31) on the engine thread: drain the running
// requests within a bound, park the ones that arrive meanwhile, release the executor's memory at
// level 1 or 2, and bring it back on wake-up.
#include "core/logging.h"
#include "engine/engine_impl.h"

namespace inferd {

// ---- Sleep mode ------------------------------------------------------------------------------

void Engine::Impl::sleep(int level, double drain_timeout_s) {
  if (level != 1 && level != 2) {
    throw InvalidRequestError(fmt::format(
        "sleep level {} is not supported: expected 1 (weights offloaded to host memory, KV cache "
        "freed) or 2 (weights and KV cache freed)",
        level));
  }
  std::lock_guard control(control_mu_);
  std::unique_lock lk(mu_);
  if (stopping_) throw EngineStoppedError("the engine is shut down");
  if (sleep_state_ == SleepState::kAsleep) return;
  sleep_state_ = SleepState::kDraining;
  sleep_level_ = level;
  drain_deadline_ = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(std::max(drain_timeout_s, 0.0)));
  control_done_ = false;
  cv_.notify_one();
  control_cv_.wait(lk, [&] { return control_done_; });
  if (!control_error_.empty()) throw Error(control_error_);
}

void Engine::Impl::wake_up() {
  std::lock_guard control(control_mu_);
  std::unique_lock lk(mu_);
  if (stopping_) throw EngineStoppedError("the engine is shut down");
  if (sleep_state_ != SleepState::kAsleep) return;
  wake_requested_ = true;
  control_done_ = false;
  cv_.notify_one();
  control_cv_.wait(lk, [&] { return control_done_; });
  if (!control_error_.empty()) throw Error(control_error_);
}

void Engine::Impl::finish_control(std::string error) {
  {
    std::lock_guard lk(mu_);
    if (control_done_) return;
    control_done_ = true;
    control_error_ = std::move(error);
  }
  control_cv_.notify_all();
}

std::chrono::steady_clock::time_point Engine::Impl::sleep_deadline() const {
  auto t = std::chrono::steady_clock::time_point::max();
  if (sleep_state_ == SleepState::kAwake) return t;
  if (sleep_state_ == SleepState::kDraining) t = drain_deadline_;
  if (!parked_.empty()) {
    t = std::min(t, parked_.front()->times.arrival +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(config_.sleep_wait_s)));
  }
  return t;
}

void Engine::Impl::take_parked(const std::vector<std::string>& aborts,
                               std::vector<std::unique_ptr<RequestState>>& incoming,
                               std::vector<std::unique_ptr<RequestState>>& expired) {
  if (parked_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  const auto wait = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(config_.sleep_wait_s));
  std::vector<std::unique_ptr<RequestState>> keep;
  for (auto& r : parked_) {
    if (std::find(aborts.begin(), aborts.end(), r->id) != aborts.end()) {
      incoming.push_back(std::move(r));
    } else if (sleep_state_ != SleepState::kAwake && r->times.arrival + wait <= now) {
      expired.push_back(std::move(r));
    } else {
      keep.push_back(std::move(r));
    }
  }
  parked_ = std::move(keep);
}

void Engine::Impl::fail_expired(std::vector<std::unique_ptr<RequestState>>& expired) {
  for (auto& r : expired) {
    RequestState& rs = *r;
    start_request(std::move(r));
    outputs_.abort_request(
        rs, fmt::format("the model is asleep (sleep mode) and was not woken up within "
                        "--sleep-wait-seconds {:g}; POST /wake_up wakes it",
                        config_.sleep_wait_s));
    rs.pending.unavailable = true;
  }
  expired.clear();
}

bool Engine::Impl::run_sleep_control(SleepState state, bool wake) {
  if (wake) {
    wake_executor();
    return true;
  }
  if (state != SleepState::kDraining) return false;
  drain_for_sleep();
  return true;
}

void Engine::Impl::drain_for_sleep() {
  int level = 0;
  std::chrono::steady_clock::time_point deadline;
  {
    std::lock_guard lk(mu_);
    level = sleep_level_;
    deadline = drain_deadline_;
  }
  if (sched_.has_work()) {
    if (std::chrono::steady_clock::now() < deadline) {
      step();
      return;
    }
    const int32_t running = sched_.num_running(), waiting = sched_.num_waiting();
    {
      std::lock_guard lk(mu_);
      sleep_state_ = SleepState::kAwake;
      sleep_level_ = 0;
      for (auto& r : parked_) incoming_.push_back(std::move(r));
      parked_.clear();
    }
    finish_control(fmt::format(
        "sleep level {} called off: {} sequences were still running and {} waiting when the "
        "bound on draining them passed; nothing was put to sleep and requests are admitted again",
        level, running, waiting));
    return;
  }
  try {
    spec_.sleep(level);  // a draft model first: when the target cannot sleep, it wakes again
    try {
      exec_->sleep(level);
    } catch (...) {
      spec_.wake_up();
      throw;
    }
  } catch (const DeviceFault& e) {
    finish_control(e.what());
    throw;
  } catch (const std::exception& e) {
    {
      std::lock_guard lk(mu_);
      sleep_state_ = SleepState::kAwake;
      sleep_level_ = 0;
      for (auto& r : parked_) incoming_.push_back(std::move(r));
      parked_.clear();
    }
    finish_control(fmt::format("sleep level {} failed: {}", level, e.what()));
    return;
  }
  kv_.pool().reset_prefix_cache();  // no block is referenced: nothing runs
  {
    std::lock_guard lk(mu_);
    sleep_state_ = SleepState::kAsleep;
  }
  publish_stats();  // before the caller returns: /metrics says asleep
  finish_control("");
}

void Engine::Impl::wake_executor() {
  try {
    spec_.wake_up();
    exec_->wake_up();
  } catch (const DeviceFault& e) {
    finish_control(e.what());
    throw;
  } catch (const std::exception& e) {
    {
      std::lock_guard lk(mu_);
      wake_requested_ = false;
    }
    finish_control(fmt::format("wake_up failed (the model stays asleep): {}", e.what()));
    return;
  }
  {
    std::lock_guard lk(mu_);
    wake_requested_ = false;
    sleep_state_ = SleepState::kAwake;
    sleep_level_ = 0;
    for (auto& r : parked_) incoming_.push_back(std::move(r));
    parked_.clear();
  }
  publish_stats();
  finish_control("");
}

}  // namespace inferd
