// A child process of the multi-model server (model_manager.h): started with fork + exec (it gets
// SIGTERM should the server die), its stdout and stderr forwarded to ours line by line with a
// "[tag] " prefix (the last lines kept, to say why a load failed), polled for its exit without
// blocking, stopped by SIGTERM / SIGKILL.
// Also the two loopback helpers the manager needs: a free port, and a probe of GET /ready.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace inferd::router {

class ChildProcess {
 public:
  // Starts argv[0] with `argv` and our environment plus `env` ("NAME=value" each). Throws Error
  // when it cannot start.
  ChildProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               std::string tag);
  // Kills the process when still running, waits for it and its output.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // nullopt while it runs; then its exit status (the exit code, or 128 + the signal).
  std::optional<int> poll_exit();
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  // The last error line of its output ("error: ..."), else its last line; "" when none.
  std::string last_error_line() const;

 private:
  void forward_output(int fd);

  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string tag_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::deque<std::string> last_lines_;
};

// A TCP port on 127.0.0.1 free at the time of the call. Throws Error.
uint16_t free_loopback_port();

// True when GET /ready on 127.0.0.1:port answers 200 (within about half a second).
bool probe_ready(uint16_t port);

}  // namespace inferd::router
