#include "cli/weights_progress.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/arriving_files.h"
#include "core/error.h"
#include "core/logging.h"

namespace inferd::cli {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b)
                : fmt::format("{:.{}f} {}", b, b < 10 ? 2 : 1, units[u]);
}

namespace {

class Progress {
 public:
  explicit Progress(uint64_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}

  void update(uint64_t done, bool last) {
    const auto now = Clock::now();
    const double el = std::chrono::duration<double>(now - t0_).count();
    const double rate = el > 0 ? double(done) / el : 0;
    if (tty_) {
      if (!last && now - shown_ < std::chrono::milliseconds(100)) return;
      shown_ = now;
      constexpr int kWidth = 30;
      const double frac = total_ ? double(done) / double(total_) : 1.0;
      const int fill = int(frac * kWidth);
      std::string bar(size_t(fill), '=');
      if (fill < kWidth) bar += '>';
      bar.resize(kWidth, ' ');
      std::fprintf(stderr, "\r\033[Kloading weights [%s] %3d%%  %s / %s  %s/s%s", bar.c_str(),
                   int(frac * 100), format_bytes(double(done)).c_str(),
                   format_bytes(double(total_)).c_str(), format_bytes(rate).c_str(),
                   last ? "\n" : "");
      std::fflush(stderr);
    } else if (last) {
      LOG_INFO("read {} of weights in {:.1f} s ({}/s)", format_bytes(double(total_)), el,
               format_bytes(rate));
    } else if (now - shown_ >= std::chrono::seconds(10)) {
      shown_ = now;
      LOG_INFO("reading weights: {} / {} ({:.0f}%), {}/s", format_bytes(double(done)),
               format_bytes(double(total_)), 100.0 * double(done) / double(total_),
               format_bytes(rate));
    }
  }

 private:
  uint64_t total_;
  bool tty_;
  Clock::time_point t0_ = Clock::now();
  Clock::time_point shown_ = t0_;
};

// MemAvailable of /proc/meminfo in bytes; 0 when unknown.
uint64_t available_memory() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof(line), f))
    if (std::sscanf(line, "MemAvailable: %lu kB", &kib) == 1) break;
  std::fclose(f);
  return kib * 1024;
}

}  // namespace

void read_weights_with_progress(const std::string& model, const std::string& load_format) {
  if (load_format == "dummy") return;
  if (arriving_files(model)) return;  // being downloaded: the download shows its progress
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(model, ec)) {
    for (const auto& e : fs::directory_iterator(model, ec))
      if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
    std::sort(files.begin(), files.end());
  } else if (fs::is_regular_file(model, ec)) {
    files.push_back(model);
  }
  uint64_t total = 0;
  for (const auto& f : files) total += fs::file_size(f, ec);
  if (files.empty() || total == 0) return;
  // Reading ahead only helps when the files then stay in the page cache for the model to map.
  if (const uint64_t avail = available_memory(); avail > 0 && total > avail / 10 * 8) {
    LOG_INFO("loading weights: {} ({} of memory available: read while mapping, no progress shown)",
             format_bytes(double(total)), format_bytes(double(avail)));
    return;
  }
  LOG_INFO("loading weights: {} file{}, {}", files.size(), files.size() == 1 ? "" : "s",
           format_bytes(double(total)));
  // Shards are read in parallel (a few at a time: one stream per file keeps each read
  // sequential), the progress line fed from the bytes all readers have done.
  Progress progress(total);
  std::atomic<uint64_t> done{0};
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  std::string error;
  auto reader = [&] {
    std::vector<char> buf(8u << 20);
    for (size_t i = next++; i < files.size(); i = next++) {
      const fs::path& f = files[i];
      const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
      std::string err;
      if (fd < 0) err = fmt::format("cannot open '{}': {}", f.string(), std::strerror(errno));
      if (fd >= 0) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      while (fd >= 0 && err.empty()) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) err = fmt::format("cannot read '{}': {}", f.string(), std::strerror(errno));
        if (n <= 0) break;
        done += uint64_t(n);
      }
      if (fd >= 0) ::close(fd);
      if (!err.empty()) {
        const std::lock_guard<std::mutex> lock(err_mu);
        if (error.empty()) error = err;
        next = files.size();  // the others stop after their current file
      }
    }
  };
  const size_t n_threads = std::min<size_t>(files.size(), 4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n_threads; ++t) threads.emplace_back(reader);
  std::atomic<bool> finished{false};
  std::thread waiter([&] {
    for (auto& t : threads) t.join();
    finished = true;
  });
  while (!finished) {
    progress.update(std::min<uint64_t>(done, total), false);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  waiter.join();
  if (!error.empty()) fail("{}", error);
  progress.update(std::min<uint64_t>(done, total), true);
}

}  // namespace inferd::cli
