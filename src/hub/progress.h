// A download progress bar on stderr: bytes done of the total, rate and ETA, redrawn at most ten
// times a second from any thread; silent when disabled (stderr not a terminal). Internal to
// src/hub.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace inferd::hub {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total_bytes, bool enabled);
  ~ProgressBar();
  void add(uint64_t bytes);  // thread-safe
  void finish();             // the final line (and a newline)

 private:
  void draw(bool final);
  std::string label_;
  uint64_t total_;
  bool enabled_;
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool finished_ = false;
};

// "1.5 GB", "320 MB", "12 kB", "17 B" (decimal units, as huggingface_hub's tqdm bars).
std::string format_bytes(uint64_t bytes);

}  // namespace inferd::hub
