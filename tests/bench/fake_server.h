// An in-test fake OpenAI server on 127.0.0.1 (a free port): answers /v1/completions and
// /v1/chat/completions with SSE streams whose timing and failures the test chooses per request.
#pragma once

#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace inferd::bench::testing {

struct FakeBehavior {
  int status = 200;               // other than 200: an OpenAI error body with this status
  double ttft_s = 0.0;            // delay before the first chunk (after the request was read)
  int chunks = 4;                 // chunks with text
  double itl_s = 0.0;             // delay between chunks
  int tokens_per_chunk = 1;       // usage.completion_tokens = chunks * tokens_per_chunk
  bool usage = true;              // a usage chunk when the request asked for it
  int cached_tokens = -1;         // >= 0: usage.prompt_tokens_details.cached_tokens
  bool send_done = true;          // data: [DONE]
  int drop_after_chunks = -1;     // close the connection after this many chunks
  bool hang = false;              // read the request, never answer
  bool bad_json = false;          // the second chunk is not JSON
  bool error_event = false;       // a data: {"error": ...} event after the first chunk
  bool close_connection = false;  // Connection: close after the response
  bool finish_chunk = true;       // the final chunk with finish_reason (and empty text)
};

class FakeOpenAIServer {
 public:
  using Policy = std::function<FakeBehavior(const nlohmann::json& body, size_t request_number)>;

  explicit FakeOpenAIServer(Policy policy)
      : policy_(std::move(policy)),
        acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    acceptor_.listen(4096);
    port_ = acceptor_.local_endpoint().port();
    boost::asio::co_spawn(ioc_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FakeOpenAIServer() {
    ioc_.stop();
    thread_.join();
  }

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  size_t requests() const { return requests_.load(); }  // completions and chat requests
  size_t tokenize_calls() const { return tokenize_calls_.load(); }
  int peak_streams() const { return peak_streams_.load(); }
  std::vector<nlohmann::json> bodies() const {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  std::vector<std::string> authorizations() const {  // Authorization headers, by request
    std::lock_guard<std::mutex> lock(mu_);
    return authorizations_;
  }

 private:
  using tcp = boost::asio::ip::tcp;
  template <typename T>
  using awaitable = boost::asio::awaitable<T>;

  awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s = co_await acceptor_.async_accept(
          boost::asio::redirect_error(boost::asio::use_awaitable, ec));
      if (ec) co_return;
      s.set_option(tcp::no_delay(true), ec);
      boost::asio::co_spawn(ioc_, serve(std::move(s)), boost::asio::detached);
    }
  }

  static std::string chunked(const std::string& data) {
    char len[32];
    std::snprintf(len, sizeof(len), "%zx\r\n", data.size());
    return std::string(len) + data + "\r\n";
  }

  awaitable<void> wait(double s) {
    if (s <= 0) co_return;
    boost::asio::steady_timer t(ioc_);
    t.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(s)));
    boost::system::error_code ec;
    co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }

  awaitable<bool> send(tcp::socket& s, const std::string& bytes) {
    boost::system::error_code ec;
    co_await boost::asio::async_write(s, boost::asio::buffer(bytes),
                                      boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    co_return !ec;
  }

  awaitable<void> serve(tcp::socket s) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      co_await http::async_read(s, buf, req,
                                boost::asio::redirect_error(boost::asio::use_awaitable, ec));
      if (ec) co_return;
      nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, false);
      const std::string target(req.target());
      if (target == "/v1/models" || target == "/tokenize") {
        // /v1/models lists "fake-model"; /tokenize counts whitespace-separated words, plus one
        // BOS token, as ids (vLLM's response form).
        nlohmann::json out;
        if (target == "/v1/models") {
          out = {{"object", "list"}, {"data", {{{"id", "fake-model"}, {"object", "model"}}}}};
        } else {
          std::istringstream in(body.is_object() ? body.value("prompt", "") : "");
          std::vector<int> ids = {1};
          std::string w;
          while (in >> w) ids.push_back(int(ids.size()) + 1);
          out = {{"tokens", ids}, {"count", ids.size()}};
          ++tokenize_calls_;
        }
        const std::string text = out.dump();
        const std::string resp =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
            std::to_string(text.size()) + "\r\nConnection: keep-alive\r\n\r\n" + text;
        const bool sent = co_await send(s, resp);
        if (!sent) co_return;
        continue;
      }
      const size_t n = requests_++;
      {
        std::lock_guard<std::mutex> lock(mu_);
        bodies_.push_back(body);
        authorizations_.emplace_back(req[http::field::authorization]);
      }
      const FakeBehavior b = policy_(body, n);
      const bool chat = std::string(req.target()).find("chat") != std::string::npos;
      if (b.hang) {
        co_await wait(3600);
        co_return;
      }
      const char* conn = b.close_connection ? "close" : "keep-alive";
      if (b.status != 200) {
        const std::string err =
            nlohmann::json{
                {"error", {{"message", "fake failure"}, {"type", "fake"}, {"code", b.status}}}}
                .dump();
        const std::string resp = "HTTP/1.1 " + std::to_string(b.status) +
                                 " Fake\r\nContent-Type: application/json\r\nContent-Length: " +
                                 std::to_string(err.size()) + "\r\nConnection: " + conn +
                                 "\r\n\r\n" + err;
        const bool sent = co_await send(s, resp);
        if (!sent || b.close_connection) co_return;
        continue;
      }
      const int cur = ++streams_;
      for (int prev = peak_streams_.load();
           cur > prev && !peak_streams_.compare_exchange_weak(prev, cur);) {
      }
      const std::string head = std::string(
                                   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                   "Transfer-Encoding: chunked\r\nConnection: ") +
                               conn + "\r\n\r\n";
      bool ok = co_await send(s, head);
      if (ok && chat) {
        const std::string role = chunked(
            "data: " +
            nlohmann::json{
                {"choices", {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}}}}}
                .dump() +
            "\n\n");
        ok = co_await send(s, role);
      }
      bool dropped = false;
      for (int c = 0; ok && c < b.chunks; ++c) {
        co_await wait(c == 0 ? b.ttft_s : b.itl_s);
        std::string event;
        if (b.bad_json && c == 1) {
          event = "data: {not json\n\n";
        } else if (b.error_event && c == 1) {
          event =
              "data: " + nlohmann::json{{"error", {{"message", "engine failed"}}}}.dump() + "\n\n";
        } else {
          nlohmann::json choice = {{"index", 0}, {"finish_reason", nullptr}};
          if (chat)
            choice["delta"] = {{"content", " tok"}};
          else
            choice["text"] = " tok";
          event =
              "data: " + nlohmann::json{{"object", "chunk"}, {"choices", {choice}}}.dump() + "\n\n";
        }
        const std::string framed = chunked(event);
        ok = co_await send(s, framed);
        if (b.drop_after_chunks == c + 1) {
          dropped = true;
          break;
        }
      }
      --streams_;
      if (dropped || !ok) {
        boost::system::error_code ignored;
        s.shutdown(tcp::socket::shutdown_both, ignored);
        s.close(ignored);
        co_return;
      }
      std::string tail;
      nlohmann::json fin = {{"index", 0}, {"finish_reason", "length"}};
      if (chat)
        fin["delta"] = nlohmann::json::object();
      else
        fin["text"] = "";
      if (b.finish_chunk)
        tail += chunked("data: " + nlohmann::json{{"choices", {fin}}}.dump() + "\n\n");
      const bool want_usage = body.is_object() && body.contains("stream_options") &&
                              body["stream_options"].value("include_usage", false);
      if (b.usage && want_usage) {
        nlohmann::json usage = {{"prompt_tokens", 7},
                                {"completion_tokens", b.chunks * b.tokens_per_chunk},
                                {"total_tokens", 7 + b.chunks * b.tokens_per_chunk}};
        if (b.cached_tokens >= 0)
          usage["prompt_tokens_details"] = {{"cached_tokens", b.cached_tokens}};
        tail += chunked(
            "data: " +
            nlohmann::json{{"choices", nlohmann::json::array()}, {"usage", usage}}.dump() + "\n\n");
      }
      if (b.send_done) tail += chunked("data: [DONE]\n\n");
      tail += "0\r\n\r\n";
      const bool sent = co_await send(s, tail);
      if (!sent || b.close_connection) {
        boost::system::error_code ignored;
        s.shutdown(tcp::socket::shutdown_both, ignored);
        co_return;
      }
    }
  }

  Policy policy_;
  boost::asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<size_t> requests_{0};
  std::atomic<size_t> tokenize_calls_{0};
  std::atomic<int> streams_{0};
  std::atomic<int> peak_streams_{0};
  mutable std::mutex mu_;
  std::vector<nlohmann::json> bodies_;
  std::vector<std::string> authorizations_;
};

}  // namespace inferd::bench::testing
