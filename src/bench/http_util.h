// The benchmark's blocking keep-alive HTTP client, used before the measured run (/v1/models,
// /tokenize) and by `inferd chat --url`; on the shared client (server/http_client.h).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http_client.h"

namespace inferd::bench {

// http://host[:port][/path]. https is not supported (Error naming --base-url).
using Url = server::HttpUrl;
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
  // POSTs JSON and hands the response body to on_data as it arrives (an SSE stream). A status
  // other than 200 comes back with its body and on_data is not called. When should_stop() turns
  // true (it is polled every 50 ms) the connection is closed (the server aborts the generation)
  // and the result's `stopped` is set. Throws Error when the server cannot be reached or the
  // connection breaks mid-stream.
  struct StreamResult {
    int status = 0;
    std::string body;  // only when status != 200
    bool stopped = false;
  };
  StreamResult post_stream(const std::string& path, const std::string& body,
                           const std::function<void(std::string_view)>& on_data,
                           const std::function<bool()>& should_stop);
  const Url& base() const { return base_; }

 private:
  HttpResult request(bool post, const std::string& path, const std::string& body);
  void connect();
  Url base_;
  std::string api_key_;
  std::chrono::milliseconds timeout_;
  boost::asio::io_context ioc_;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints_;  // request(): resolved once
  std::unique_ptr<boost::beast::tcp_stream> stream_;
};

// The first model the server at `base` lists on /v1/models: the bench commands' default --model.
// Throws Error (naming --model) when the answer is not 200 or lists none.
std::string discover_model(const Url& base, const std::string& api_key);

}  // namespace inferd::bench
