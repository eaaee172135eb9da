// Small HTTP helpers for the benchmark client: URL parsing and a blocking keep-alive client used
// before the measured run (/v1/models, /tokenize).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace inferd::bench {

// http://host[:port][/path]. https is not supported (Error).
struct Url {
  std::string host;
  uint16_t port = 80;
  std::string path;                 // without a trailing '/', "" for none
  std::string host_header() const;  // host[:port]
};
Url parse_url(const std::string& url);

struct HttpResult {
  int status = 0;
  std::string body;
};

class SyncHttpClient {
 public:
  SyncHttpClient(Url base, std::string api_key,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~SyncHttpClient();
  // Sends a request to base.path + path. Throws Error when the server cannot be reached.
  HttpResult get(const std::string& path);
  HttpResult post_json(const std::string& path, const std::string& body);
  const Url& base() const { return base_; }

 private:
  HttpResult request(bool post, const std::string& path, const std::string& body);
  Url base_;
  std::string api_key_;
  std::chrono::milliseconds timeout_;
  boost::asio::io_context ioc_;
  std::unique_ptr<boost::beast::tcp_stream> stream_;
};

}  // namespace inferd::bench
