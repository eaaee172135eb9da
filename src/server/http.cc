#include "server/http.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "core/logging.h"

namespace inferd::server {

namespace {

std::string serialize_head(unsigned version, unsigned status,
                           const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string s = fmt::format("HTTP/{}.{} {} {}\r\n", version / 10, version % 10, status,
                              std::string_view(http::obsolete_reason(http::status(status))));
  for (const auto& [k, v] : fields) s += k + ": " + v + "\r\n";
  s += "\r\n";
  return s;
}

}  // namespace

// ---- Connection -------------------------------------------------------------------------------

Connection::Connection(tcp::socket&& socket, HttpServer& server)
    : server_(server), id_(server.next_id_.fetch_add(1)), stream_(std::move(socket)) {}

Connection::~Connection() = default;

void Connection::start() {
  server_.add(shared_from_this());
  net::dispatch(executor(), [self = shared_from_this()] { self->do_read_header(); });
}

void Connection::do_read_header() {
  if (closed_) return;
  if (close_when_idle_ || !server_.accepting()) {
    // Draining: nothing new on this connection, but a request already buffered is still read.
    if (buffer_.size() == 0) return close();
  }
  parser_.emplace();
  parser_->body_limit(server_.config().max_body_bytes);
  parser_->header_limit(server_.config().max_header_bytes);
  if (buffer_.size() > 0) return read_header_now();
  // Idle until the next request's first byte (keep_alive_timeout), then header_timeout for the
  // whole header from there.
  stream_.expires_after(server_.config().keep_alive_timeout);
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (self->closed_) return;
                            if (ec) return self->close();
                            self->buffer_.commit(n);
                            self->read_header_now();
                          });
}

void Connection::read_header_now() {
  stream_.expires_after(server_.config().header_timeout);
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_read_header(ec, n); });
}

void Connection::on_read_header(beast::error_code ec, size_t) {
  if (closed_) return;
  if (ec == http::error::body_limit) {
    // The Content-Length is over the limit: answer without reading the body, then close.
    version_ = parser_->get().version();
    keep_alive_ = false;
    in_exchange_ = true;
    respond(server_.handler().http_error(
        413,
        fmt::format("request body is larger than the limit of {} bytes",
                    server_.config().max_body_bytes),
        version_));
    return;
  }
  if (ec) {
    if (ec != http::error::end_of_stream && ec != net::error::eof && ec != beast::error::timeout &&
        ec != net::error::operation_aborted && ec != net::error::connection_reset &&
        buffer_.size() > 0) {
      // Malformed HTTP: say so, then close.
      keep_alive_ = false;
      in_exchange_ = true;
      version_ = 11;
      respond(server_.handler().http_error(400, "malformed HTTP request: " + ec.message(), 11));
      return;
    }
    return close();
  }
  auto& req = parser_->get();
  if (beast::iequals(req[http::field::expect], "100-continue")) {
    std::string cont =
        fmt::format("HTTP/{}.{} 100 Continue\r\n\r\n", req.version() / 10, req.version() % 10);
    auto buf = std::make_shared<std::string>(std::move(cont));
    stream_.expires_after(server_.config().write_timeout);
    net::async_write(stream_, net::buffer(*buf),
                     [self = shared_from_this(), buf](beast::error_code wec, size_t) {
                       if (wec) return self->close();
                       self->stream_.expires_after(self->server_.config().body_timeout);
                       http::async_read(self->stream_, self->buffer_, *self->parser_,
                                        [self](beast::error_code ec2, size_t n2) {
                                          self->on_read_body(ec2, n2);
                                        });
                     });
    return;
  }
  stream_.expires_after(server_.config().body_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec2, size_t n2) {
                     self->on_read_body(ec2, n2);
                   });
}

void Connection::on_read_body(beast::error_code ec, size_t) {
  if (closed_) return;
  if (ec == http::error::body_limit) {
    keep_alive_ = false;
    in_exchange_ = true;
    version_ = parser_->get().version();
    respond(server_.handler().http_error(
        413,
        fmt::format("request body is larger than the limit of {} bytes",
                    server_.config().max_body_bytes),
        version_));
    return;
  }
  if (ec) {
    if (ec != beast::error::timeout && ec != http::error::end_of_stream && ec != net::error::eof &&
        ec != net::error::connection_reset && ec != net::error::operation_aborted) {
      keep_alive_ = false;
      in_exchange_ = true;
      version_ = 11;
      respond(server_.handler().http_error(400, "malformed HTTP request: " + ec.message(), 11));
      return;
    }
    return close();
  }
  dispatch();
}

void Connection::dispatch() {
  Request req = parser_->release();
  parser_.reset();
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  in_exchange_ = true;
  response_done_ = false;
  streaming_ = false;
  stream_.expires_never();
  start_watch();
  server_.handler().handle(shared_from_this(), std::move(req));
}

// While a request is in progress the connection keeps one read open, so that a peer that goes
// away is noticed at once. Bytes that arrive (a pipelined request) are kept in the buffer.
void Connection::start_watch() {
  if (closed_ || watch_pending_) return;
  if (buffer_.size() >= server_.config().max_header_bytes + server_.config().max_body_bytes) return;
  watch_pending_ = true;
  stream_.expires_never();
  stream_.async_read_some(
      buffer_.prepare(4096),
      [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_watch(ec, n); });
}

void Connection::on_watch(beast::error_code ec, size_t n) {
  watch_pending_ = false;
  if (closed_) return;
  if (!ec) {
    buffer_.commit(n);
    if (in_exchange_) return start_watch();
    if (resume_after_watch_) {
      resume_after_watch_ = false;
      return do_read_header();
    }
    return;
  }
  if (ec == net::error::operation_aborted && !in_exchange_ && resume_after_watch_) {
    resume_after_watch_ = false;
    return do_read_header();
  }
  if (in_exchange_) return peer_gone();
  close();
}

void Connection::peer_gone() {
  auto fn = std::move(peer_gone_fn_);
  peer_gone_fn_ = nullptr;
  close();
  if (fn) fn();
}

void Connection::respond(Response&& res) {
  if (closed_ || !in_exchange_ || response_done_) return;
  if (!server_.accepting() || close_when_idle_) keep_alive_ = false;
  if (!keep_alive_) res.keep_alive(false);
  res.version(version_);
  res.prepare_payload();
  std::vector<std::pair<std::string, std::string>> fields;
  for (const auto& f : res)
    fields.emplace_back(std::string(f.name_string()), std::string(f.value()));
  std::string wire = serialize_head(version_, res.result_int(), fields);
  wire += res.body();
  response_done_ = true;
  queue_write(std::move(wire));
}

void Connection::begin_stream(http::status status,
                              std::vector<std::pair<std::string, std::string>> headers) {
  if (closed_ || !in_exchange_ || response_done_ || streaming_) return;
  if (!server_.accepting() || close_when_idle_) keep_alive_ = false;
  streaming_ = true;
  if (version_ >= 11) {
    headers.emplace_back("Transfer-Encoding", "chunked");
    if (!keep_alive_) headers.emplace_back("Connection", "close");
  } else {
    keep_alive_ = false;  // HTTP/1.0: the body ends when the connection closes
  }
  queue_write(serialize_head(version_, unsigned(status), headers));
}

void Connection::write_chunk(std::string data) {
  if (closed_ || !streaming_ || response_done_ || data.empty()) return;
  // A peer that stopped reading while the stream goes on: drop it rather than buffer forever.
  constexpr size_t kMaxPendingBytes = 64u << 20;
  if (pending_bytes_ > kMaxPendingBytes) return peer_gone();
  if (version_ >= 11) {
    std::string framed = fmt::format("{:x}\r\n", data.size());
    framed += data;
    framed += "\r\n";
    queue_write(std::move(framed));
  } else {
    queue_write(std::move(data));
  }
}

void Connection::end_stream() {
  if (closed_ || !streaming_ || response_done_) return;
  response_done_ = true;
  if (version_ >= 11)
    queue_write("0\r\n\r\n");
  else if (!writing_)
    finish_exchange();
}

void Connection::queue_write(std::string data) {
  pending_bytes_ += data.size();
  write_queue_.push_back(std::move(data));
  if (!writing_) do_write();
}

void Connection::do_write() {
  if (closed_) return;
  if (write_queue_.empty()) {
    if (response_done_) finish_exchange();
    return;
  }
  write_buf_.clear();
  while (!write_queue_.empty()) {
    write_buf_ += write_queue_.front();
    write_queue_.pop_front();
  }
  writing_ = true;
  stream_.expires_after(server_.config().write_timeout);
  net::async_write(
      stream_, net::buffer(write_buf_),
      [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_write(ec, n); });
}

void Connection::on_write(beast::error_code ec, size_t n) {
  writing_ = false;
  pending_bytes_ -= std::min(pending_bytes_, n);
  if (closed_) return;
  if (ec) {
    if (in_exchange_) return peer_gone();
    return close();
  }
  do_write();
}

void Connection::finish_exchange() {
  in_exchange_ = false;
  streaming_ = false;
  response_done_ = false;
  peer_gone_fn_ = nullptr;
  pending_bytes_ = 0;
  if (!keep_alive_) {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    return close();
  }
  if (watch_pending_) {
    resume_after_watch_ = true;
    beast::error_code ec;
    stream_.socket().cancel(ec);
    return;
  }
  do_read_header();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ec;
  stream_.socket().close(ec);
  write_queue_.clear();
  server_.remove(id_);
}

void Connection::close_async() {
  net::post(executor(), [self = shared_from_this()] {
    if (self->in_exchange_) return self->peer_gone();
    self->close();
  });
}

void Connection::close_when_idle() {
  net::post(executor(), [self = shared_from_this()] {
    self->close_when_idle_ = true;
    if (!self->in_exchange_ && self->buffer_.size() == 0) {
      // Idle (waiting for the next request): cancel the header read.
      self->close();
    }
  });
}

// ---- HttpServer -------------------------------------------------------------------------------

HttpServer::HttpServer(HttpConfig config, RequestHandler& handler)
    : config_(std::move(config)), handler_(handler), acceptor_(io_) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  beast::error_code ec;
  const auto addr = net::ip::make_address(config_.host, ec);
  if (ec) fail("--host: '{}' is not an IP address ({})", config_.host, ec.message());
  tcp::endpoint ep(addr, config_.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail("cannot listen on {}:{}: {}", config_.host, config_.port, ec.message());
  port_ = acceptor_.local_endpoint().port();
  accepting_ = true;
  work_.emplace(io_.get_executor());
  do_accept();
  const int n = std::max(1, config_.io_threads);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { io_.run(); });
}

void HttpServer::do_accept() {
  acceptor_.async_accept(net::make_strand(io_), [this](beast::error_code ec, tcp::socket socket) {
    if (!accepting_) return;
    if (!ec) {
      beast::error_code ec2;
      socket.set_option(tcp::no_delay(true), ec2);
      std::make_shared<Connection>(std::move(socket), *this)->start();
    } else if (ec == net::error::operation_aborted) {
      return;
    } else {
      LOG_WARN("accept failed: {}", ec.message());
    }
    do_accept();
  });
}

void HttpServer::stop_accepting() {
  if (!accepting_.exchange(false)) return;
  net::post(io_, [this] {
    beast::error_code ec;
    acceptor_.close(ec);
  });
  std::lock_guard lk(mu_);
  for (auto& [id, w] : conns_)
    if (auto c = w.lock()) c->close_when_idle();
}

void HttpServer::close_all() {
  std::vector<std::shared_ptr<Connection>> all;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, w] : conns_)
      if (auto c = w.lock()) all.push_back(c);
  }
  for (auto& c : all) c->close_async();
}

void HttpServer::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  accepting_ = false;
  if (!threads_.empty()) {
    net::post(io_, [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
    close_all();
    work_.reset();
    // Give connections a moment to close cleanly, then stop.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (num_connections() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
}

size_t HttpServer::num_connections() const {
  std::lock_guard lk(mu_);
  return conns_.size();
}

void HttpServer::add(const std::shared_ptr<Connection>& c) {
  std::lock_guard lk(mu_);
  conns_[c->id()] = c;
}

void HttpServer::remove(uint64_t id) {
  std::lock_guard lk(mu_);
  conns_.erase(id);
}

bool cors_headers(const std::string& origin, const std::vector<std::string>& allowed,
                  std::vector<std::pair<std::string, std::string>>& out) {
  if (origin.empty() || allowed.empty()) return false;
  if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) {
    out.emplace_back("Access-Control-Allow-Origin", "*");
    return true;
  }
  if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end()) {
    out.emplace_back("Access-Control-Allow-Origin", origin);
    out.emplace_back("Vary", "Origin");
    return true;
  }
  return false;
}

}  // namespace inferd::server
