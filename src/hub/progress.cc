// The download progress bar (progress.h).
#include "hub/progress.h"

#include <cstdio>

#include <fmt/format.h>

namespace inferd::hub {

std::string format_bytes(uint64_t b) {
  const double v = static_cast<double>(b);
  if (b >= 1000000000ull) return fmt::format("{:.2f} GB", v / 1e9);
  if (b >= 1000000ull) return fmt::format("{:.1f} MB", v / 1e6);
  if (b >= 1000ull) return fmt::format("{:.1f} kB", v / 1e3);
  return fmt::format("{} B", b);
}

ProgressBar::ProgressBar(std::string label, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_(total_bytes), enabled_(enabled) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() {
  std::lock_guard<std::mutex> lock(mu_);
  if (enabled_ && !finished_) std::fputc('\n', stderr);
}

void ProgressBar::add(uint64_t bytes) {
  done_.fetch_add(bytes);
  if (!enabled_) return;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(false);
}

void ProgressBar::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!enabled_ || finished_) return;
  draw(true);
  std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::draw(bool final) {
  const uint64_t done = done_.load();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
  const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done) / total_) : 1.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::string eta = "--:--";
  if (final) {
    eta = fmt::format("{:.1f}s", secs);
  } else if (rate > 0 && total_ > done) {
    const auto s = static_cast<uint64_t>(static_cast<double>(total_ - done) / rate);
    eta = fmt::format("{}:{:02}", s / 60, s % 60);
  }
  std::fprintf(stderr, "\r%s [%s] %3d%% %s/%s %s/s %s %s\x1b[K", label_.c_str(), bar.c_str(),
               static_cast<int>(frac * 100), format_bytes(done).c_str(),
               format_bytes(total_).c_str(), format_bytes(static_cast<uint64_t>(rate)).c_str(),
               final ? "in" : "ETA", eta.c_str());
  std::fflush(stderr);
}

}  // namespace inferd::hub
