// An async HTTP/1.1 server on Boost.Beast: a few io threads serve every connection; each
// connection runs on its own strand. Keep-alive, a request body limit (413), read timeouts for the
// idle wait, the headers and the body (a slow-loris client is cut), streamed responses
// (chunked transfer encoding) and detection of a peer that goes away while its request is being
// answered (so the generation behind it can be aborted).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace inferd::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

struct HttpConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0: any free port (see HttpServer::port)
  int io_threads = 4;
  uint64_t max_body_bytes = 16ull << 20;
  uint32_t max_header_bytes = 64u << 10;
  std::chrono::milliseconds keep_alive_timeout{60'000};  // idle before a request's first byte
  // A request's headers from its first byte, and its body after them: a client that trickles
  // them slower (slow loris) is cut. Waiting costs no thread (the reads are asynchronous).
  std::chrono::milliseconds header_timeout{30'000};
  std::chrono::milliseconds body_timeout{60'000};
  std::chrono::milliseconds write_timeout{60'000};  // one write to a peer that stops reading
};

class Connection;
class HttpServer;

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Runs on the connection's strand. The handler answers (now or later, from the strand) with
  // Connection::respond, or with begin_stream / write_chunk / end_stream.
  virtual void handle(const std::shared_ptr<Connection>& conn, Request&& req) = 0;
  // An error found by the HTTP layer itself (bad HTTP, body too large): a full response.
  virtual Response http_error(int status, const std::string& message, unsigned version) = 0;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // The socket's executor: a strand (the acceptor hands each socket its own).
  using Executor = net::any_io_executor;

  Connection(tcp::socket&& socket, HttpServer& server);
  ~Connection();
  void start();

  Executor executor() { return stream_.get_executor(); }
  uint64_t id() const { return id_; }

  // ---- on the strand only ----
  // A complete response. `keep_alive` of the request decides whether the connection stays open.
  void respond(Response&& res);
  // Streaming: status line and headers (Transfer-Encoding: chunked is added), then chunks.
  void begin_stream(http::status status, std::vector<std::pair<std::string, std::string>> headers);
  void write_chunk(std::string data);
  void end_stream();
  // Called once, on the strand, when the peer closes or resets while a request is in progress
  // (before its response finished). Cleared when the exchange ends.
  void on_peer_gone(std::function<void()> fn) { peer_gone_fn_ = std::move(fn); }
  bool closed() const { return closed_; }
  // Bytes queued for writing that the peer has not taken yet.
  size_t pending_write_bytes() const { return pending_bytes_; }

  // Any thread: close now (pending work is dropped).
  void close_async();
  // Any thread: close when no request is in progress (drain).
  void close_when_idle();

 private:
  void do_read_header();
  void read_header_now();
  void on_read_header(beast::error_code ec, size_t n);
  void on_read_body(beast::error_code ec, size_t n);
  void dispatch();
  void start_watch();
  void on_watch(beast::error_code ec, size_t n);
  void queue_write(std::string data);
  void do_write();
  void on_write(beast::error_code ec, size_t n);
  void finish_exchange();
  void peer_gone();
  void close();

  HttpServer& server_;
  uint64_t id_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool in_exchange_ = false;
  bool response_done_ = false;  // whole response queued
  bool streaming_ = false;
  bool watch_pending_ = false;
  bool resume_after_watch_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool close_when_idle_ = false;
  std::deque<std::string> write_queue_;
  std::string write_buf_;
  size_t pending_bytes_ = 0;
  std::function<void()> peer_gone_fn_;
};

class HttpServer {
 public:
  HttpServer(HttpConfig config, RequestHandler& handler);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (throws Error when the address cannot be bound), starts the io threads.
  void start();
  uint16_t port() const { return port_; }
  const HttpConfig& config() const { return config_; }
  RequestHandler& handler() { return handler_; }
  net::io_context& io() { return io_; }

  // Stops accepting; idle connections close, busy ones close after their response.
  void stop_accepting();
  bool accepting() const { return accepting_; }
  // Closes every connection now.
  void close_all();
  // Stops the io threads (after close_all) and joins them. Idempotent.
  void stop();
  size_t num_connections() const;

 private:
  friend class Connection;
  void do_accept();
  void add(const std::shared_ptr<Connection>& c);
  void remove(uint64_t id);

  HttpConfig config_;
  RequestHandler& handler_;
  net::io_context io_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> accepting_{false};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> conns_;
  std::atomic<uint64_t> next_id_{1};
  bool stopped_ = false;
};

// CORS under --allowed-origins for a request from `origin` (may be empty): appends the headers
// every answer carries to `out`; false when no origin was sent or it is not allowed.
bool cors_headers(const std::string& origin, const std::vector<std::string>& allowed,
                  std::vector<std::pair<std::string, std::string>>& out);

}  // namespace inferd::server
