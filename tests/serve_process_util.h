// Tests that run `inferd serve` as a child process (its device-fault and start-up behaviour):
// starting it with its log in a file, finding its port in the "ready:" line, plain HTTP/1.1
// requests to it on one connection each (Connection: close), and waiting for it to exit.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

extern char** environ;

namespace inferd::testing_util {

struct HttpReply {
  int status = 0;    // 0: no answer (connection refused or closed)
  std::string text;  // the whole response, header and body
};

// One request on its own connection; reads until the server closes it (`timeout_s` at most
// between two reads).
inline HttpReply http_request(uint16_t port, const std::string& method, const std::string& path,
                              const std::string& body = "", int timeout_s = 30) {
  HttpReply r;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return r;
  }
  const std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n" +
                          "Content-Type: application/json\r\nConnection: close\r\n" +
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) {
    ::close(fd);
    return r;
  }
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) r.text.append(buf, size_t(n));
  ::close(fd);
  if (r.text.rfind("HTTP/1.1 ", 0) == 0) r.status = std::atoi(r.text.c_str() + 9);
  return r;
}

// The demo model (models/demo) and a greedy completion request for it, served as "demo":
// `prompt`, `max_tokens` tokens, EOS ignored.
inline std::string demo_model_dir() {
  return std::string(INFERD_SOURCE_DIR) + "/models/demo";
}
inline std::string demo_completion(const std::string& prompt, int max_tokens) {
  return R"({"model": "demo", "prompt": ")" + prompt +
         R"(", "temperature": 0, "ignore_eos": true, "max_tokens": )" + std::to_string(max_tokens) +
         "}";
}

// The first "text" field of a reply ("" when there is none; no JSON unescaping).
inline std::string completion_text(const HttpReply& r) {
  const size_t k = r.text.find("\"text\":\"");
  if (k == std::string::npos) return "";
  return r.text.substr(k + 8, r.text.find('"', k + 8) - (k + 8));
}

// `inferd serve ARGS` as a child process, its stdout and stderr in a temporary file. Killed by
// the destructor when still running.
class ServeProcess {
 public:
  ServeProcess() = default;
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove(log_path_, ec);
  }

  // Starts the server and waits (up to `timeout`) for its "ready:" line; false when it exited or
  // did not get ready in time (log() says why).
  bool start(const std::string& args, std::chrono::seconds timeout = std::chrono::seconds(180)) {
    static int counter = 0;
    log_path_ =
        (std::filesystem::temp_directory_path() /
         ("inferd_serve_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".log"))
            .string();
    const std::string cmd =
        "exec " + std::string(INFERD_BINARY) + " serve " + args + " >" + log_path_ + " 2>&1";
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    if (::posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
      return false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::regex ready(R"(ready: .* http://[^ ]*:(\d+))");
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string text = log();
      if (std::regex_search(text, m, ready)) {
        port_ = uint16_t(std::stoi(m[1]));
        return true;
      }
      if (exited(std::chrono::milliseconds(100))) return false;
    }
    return false;
  }

  // Waits up to `timeout` for the process to exit; true when it has (exit_status() then holds
  // its status: the exit code, or 128 + the signal).
  bool exited(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return true;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }

  int exit_status() const { return status_; }
  uint16_t port() const { return port_; }
  std::string log() const {
    std::ifstream f(log_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  uint16_t port_ = 0;
  std::string log_path_;
};

}  // namespace inferd::testing_util
