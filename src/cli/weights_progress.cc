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
#include <functional>
#include <memory>
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

  // `now`: the time the bytes were done (the last line may come later, once the load is).
  void update(uint64_t done, bool last, Clock::time_point now = Clock::now()) {
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

// The read-ahead: chunks of the files in order, taken by a few threads (the files are read in the
// loader's order with several reads in flight), and a thread showing the progress.
class Prefetch {
 public:
  static constexpr uint64_t kChunk = 32u << 20;

  Prefetch(std::vector<fs::path> files, const std::vector<uint64_t>& sizes, uint64_t total)
      : files_(std::move(files)), progress_(total), total_(total) {
    for (size_t i = 0; i < files_.size(); ++i) {
      const int fd = ::open(files_[i].c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        const std::string why = std::strerror(errno);
        close_all();
        fail("cannot open '{}': {}", files_[i].string(), why);
      }
      fds_.push_back(fd);
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      for (uint64_t off = 0; off < sizes[i]; off += kChunk)
        chunks_.push_back({i, off, std::min(kChunk, sizes[i] - off)});
    }
    const size_t n_threads = std::min<size_t>(chunks_.size(), 4);
    for (size_t t = 0; t < n_threads; ++t) readers_.emplace_back([this] { read(); });
    shower_ = std::thread([this] { show(); });
  }

  ~Prefetch() {
    stop_ = true;
    join();
    close_all();
  }

  Prefetch(const Prefetch&) = delete;
  Prefetch& operator=(const Prefetch&) = delete;

  // Waits for the read; throws its error.
  void finish() {
    join();
    if (!error_.empty()) fail("{}", error_);
    progress_.update(std::min<uint64_t>(done_, total_), true, read_end_);
  }

 private:
  struct Chunk {
    size_t file;
    uint64_t offset, size;
  };

  void read() {
    std::vector<char> buf(8u << 20);
    for (size_t c = next_++; c < chunks_.size() && !stop_; c = next_++) {
      const Chunk& ch = chunks_[c];
      for (uint64_t at = 0; at < ch.size && !stop_;) {
        const ssize_t n =
            ::pread(fds_[ch.file], buf.data(), std::min<uint64_t>(buf.size(), ch.size - at),
                    off_t(ch.offset + at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          const std::string err =
              n < 0 ? fmt::format("cannot read '{}': {}", files_[ch.file].string(),
                                  std::strerror(errno))
                    : fmt::format("cannot read '{}': it ends at {} bytes, short of its size",
                                  files_[ch.file].string(), ch.offset + at);
          const std::lock_guard<std::mutex> lock(err_mu_);
          if (error_.empty()) error_ = err;
          stop_ = true;
          return;
        }
        at += uint64_t(n);
        done_ += uint64_t(n);
      }
    }
  }

  void show() {
    while (!stop_ && done_ < total_) {
      progress_.update(std::min<uint64_t>(done_, total_), false);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    read_end_ = Clock::now();  // within 20 ms of the last byte
  }

  void join() {
    for (std::thread& t : readers_)
      if (t.joinable()) t.join();
    stop_ = true;  // the readers are done: the progress thread too
    if (shower_.joinable()) shower_.join();
  }

  void close_all() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }

  std::vector<fs::path> files_;
  std::vector<int> fds_;
  std::vector<Chunk> chunks_;
  Progress progress_;
  uint64_t total_;
  std::atomic<size_t> next_{0};
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> stop_{false};
  std::mutex err_mu_;
  std::string error_;
  std::vector<std::thread> readers_;
  std::thread shower_;
  Clock::time_point read_end_ = Clock::now();
};

}  // namespace

std::function<void()> read_weights_with_progress(const std::string& model,
                                                 const std::string& load_format) {
  if (load_format == "dummy") return {};
  if (arriving_files(model)) return {};  // being downloaded: the download shows its progress
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(model, ec)) {
    for (const auto& e : fs::directory_iterator(model, ec))
      if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
    std::sort(files.begin(), files.end());  // model-00001-of-... first: the loader reads it first
  } else if (fs::is_regular_file(model, ec)) {
    files.push_back(model);
  }
  uint64_t total = 0;
  std::vector<uint64_t> sizes;
  for (const auto& f : files) {
    sizes.push_back(fs::file_size(f, ec));
    if (ec) sizes.back() = 0;
    total += sizes.back();
  }
  if (files.empty() || total == 0) return {};
  // Reading ahead only helps when the files then stay in the page cache for the model to map.
  if (const uint64_t avail = available_memory(); avail > 0 && total > avail / 10 * 8) {
    LOG_INFO("loading weights: {} ({} of memory available: read while mapping, no progress shown)",
             format_bytes(double(total)), format_bytes(double(avail)));
    return {};
  }
  LOG_INFO("loading weights: {} file{}, {}", files.size(), files.size() == 1 ? "" : "s",
           format_bytes(double(total)));
  auto p = std::make_shared<Prefetch>(std::move(files), sizes, total);
  return [p] { p->finish(); };
}

}  // namespace inferd::cli
