// ChildProcess (fork + exec, output forwarding, exit polling) and the loopback helpers.
#include "router/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

extern char** environ;

namespace inferd::router {

namespace {

constexpr size_t kKeptLines = 40;

int exit_code(int st) {
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env, std::string tag)
    : tag_(std::move(tag)) {
  if (argv.empty()) fail("child process: no program");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail("child process {}: pipe: {}", tag_, std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const std::string_view name = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& x : env)
      replaced = replaced || std::string_view(x).substr(0, x.find('=')) == name;
    if (!replaced) env_strings.emplace_back(kv);
  }
  env_strings.insert(env_strings.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  // fork + exec rather than posix_spawn: the child asks for SIGTERM when its parent dies
  // (prctl), so a server that is killed leaves no model process holding memory. Between fork and
  // exec only async-signal-safe calls.
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    // The signals the server blocks (SIGTERM, SIGINT) are the child's to take.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::execve(args[0], args.data(), envp.data());
    static const char kMsg[] = "error: cannot execute the inferd binary for a model\n";
    [[maybe_unused]] const ssize_t n = ::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }
  const int err = errno;
  ::close(fds[1]);
  if (pid_ < 0) {
    ::close(fds[0]);
    fail("child process {}: cannot start {}: {}", tag_, argv[0], std::strerror(err));
  }
  reader_ = std::thread([this, fd = fds[0]] { forward_output(fd); });
}

ChildProcess::~ChildProcess() {
  if (!status_) {
    kill();
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  if (reader_.joinable()) reader_.join();
}

void ChildProcess::forward_output(int fd) {
  std::string pending;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, size_t(n));
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      std::fprintf(stderr, "[%s] %s\n", tag_.c_str(), line.c_str());
      std::lock_guard lk(mu_);
      last_lines_.push_back(std::move(line));
      if (last_lines_.size() > kKeptLines) last_lines_.pop_front();
    }
  }
  if (!pending.empty()) {
    std::fprintf(stderr, "[%s] %s\n", tag_.c_str(), pending.c_str());
    std::lock_guard lk(mu_);
    last_lines_.push_back(std::move(pending));
  }
  ::close(fd);
}

std::optional<int> ChildProcess::poll_exit() {
  if (status_) return status_;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = exit_code(st);
    // The pipe's last bytes: the reader ends at EOF now that the process is gone.
    if (reader_.joinable()) reader_.join();
  }
  return status_;
}

void ChildProcess::terminate() {
  if (!status_) ::kill(pid_, SIGTERM);
}

void ChildProcess::kill() {
  if (!status_) ::kill(pid_, SIGKILL);
}

std::string ChildProcess::last_error_line() const {
  std::lock_guard lk(mu_);
  for (auto it = last_lines_.rbegin(); it != last_lines_.rend(); ++it)
    if (it->rfind("error: ", 0) == 0 || it->find("internal error: ") != std::string::npos)
      return *it;
  for (auto it = last_lines_.rbegin(); it != last_lines_.rend(); ++it)
    if (!it->empty()) return *it;
  return "";
}

uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("no socket for a free port: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int err = errno;
    ::close(fd);
    fail("no free port on 127.0.0.1: {}", std::strerror(err));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

bool probe_ready(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{0, 500'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size())) {
      char buf[64];
      const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      if (n >= 12) ok = std::string_view(buf, size_t(n)).substr(0, 12) == "HTTP/1.1 200";
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace inferd::router
