// Fuzz target: HTTP/1.1 requests as a connection reads them (src/server/http.cc): Boost.Beast's
// request_parser<string_body> with the server's default body and header limits, fed through a
// growing window as async_read feeds it from its buffer, several requests per connection
// (keep-alive, pipelining). For each request the header handling the server does before
// routing: the Expect and Connection headers, the target's path, the Authorization header
// through check_bearer, and the body through parse_json_body. Parser errors, 401s and 400s are
// answers; only crashes, sanitizer reports, leaks and hangs are findings.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "server/api_keys.h"
#include "server/http.h"
#include "server/protocol.h"

namespace {

using namespace inferd::server;

void handle_headers(const Request& req) {
  (void)beast::iequals(req[http::field::expect], "100-continue");
  (void)req.keep_alive();
  (void)req.version();
  (void)req.method_string();
  std::string target(req.target());
  if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
  (void)std::string(req[http::field::origin]);
  static const std::vector<std::string> keys = {"sk-one", "sk-two-longer-key"};
  try {
    check_bearer(req[http::field::authorization], keys);
  } catch (const ApiError& e) {
    if (e.status() != 401) std::abort();
  }
  if (req.method() == http::verb::post) {
    try {
      (void)parse_json_body(req.body());
    } catch (const ApiError& e) {
      if (e.status() != 400) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const HttpConfig config;
  // The first byte sets how many bytes each read brings (1..256), as a peer's segments would.
  const size_t step = size_t(data[0]) + 1;
  const char* in = reinterpret_cast<const char*>(data + 1);
  const size_t n = size - 1;
  size_t pos = 0;  // start of the unparsed bytes
  size_t avail = std::min(n, step);
  for (int requests = 0; requests < 64 && pos < n; ++requests) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(config.max_body_bytes);
    parser.header_limit(config.max_header_bytes);
    parser.eager(true);
    beast::error_code ec;
    while (!parser.is_done()) {
      ec = {};
      const size_t used = parser.put(net::buffer(in + pos, avail - pos), ec);
      pos += used;
      if (ec == http::error::need_more || (!ec && used == 0)) {
        if (avail == n) {  // the peer closed
          ec = {};
          parser.put_eof(ec);
          break;
        }
        avail = std::min(n, avail + step);
        continue;
      }
      if (ec) break;
    }
    if (ec || !parser.is_done()) return 0;  // 400 / 413 and the connection closes
    const Request req = parser.release();
    handle_headers(req);
    if (!req.keep_alive()) return 0;
    if (avail < pos) avail = pos;
  }
  return 0;
}
