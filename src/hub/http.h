// HTTP for the hub downloader, on libcurl's easy interface: a GET or HEAD with the headers of
// each response of a redirect chain kept, and a streaming GET from a byte offset (Range) into a
// sink. Internal to src/hub.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace inferd::hub {

struct HttpResult {
  int curl_code = 0;       // CURLcode; 0 = the transfer finished
  std::string curl_error;  // curl's message when curl_code != 0
  long status = 0;         // the last response's HTTP status (0: none)
  // Lower-case header names -> values, of the first response (the hub's own, before any
  // redirect) and of the last one.
  std::map<std::string, std::string> first_headers, last_headers;
  std::string body;             // request(): the last response's body
  bool connect_failed() const;  // no connection (DNS, refused, connect timeout)
};

struct HttpRequest {
  std::string url;
  std::string token;  // Authorization: Bearer <token> when non-empty
  bool head = false;
  bool follow_redirects = true;
  double stall_timeout_s = 60;  // abort when no byte came for this long
  double connect_timeout_s = 10;
};

// Once a process (libcurl's global init; thread-safe through a call_once).
void http_global_init();

// The whole response into HttpResult::body.
HttpResult http_request(const HttpRequest& req);

// GET req.url from byte `offset` (a Range header when > 0), each chunk of the body of a 2xx
// response to `sink` with that status (returning false aborts). `abort` set by another thread
// stops it too; 206: the server honoured the range, 200: it sends everything.
HttpResult http_stream(const HttpRequest& req, uint64_t offset,
                       const std::function<bool(const char*, size_t, long)>& sink,
                       const std::atomic<bool>* abort = nullptr);

}  // namespace inferd::hub
