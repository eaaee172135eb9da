// libcurl requests for the hub downloader (http.h).
#include "hub/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>

#include "core/error.h"

namespace inferd::hub {

namespace {

struct Transfer {
  HttpResult* res = nullptr;
  int responses = 0;  // "HTTP/" status lines seen
  bool keep_body = false;
  const std::function<bool(const char*, size_t, long)>* sink = nullptr;
  const std::atomic<bool>* abort = nullptr;
  long status_now = 0;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  std::string line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    ++t->responses;
    t->res->last_headers.clear();
    const size_t sp = line.find(' ');
    t->status_now = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return len;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return len;
  std::string key = line.substr(0, colon);
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t v = colon + 1;
  while (v < line.size() && line[v] == ' ') ++v;
  const std::string value = line.substr(v);
  t->res->last_headers[key] = value;
  if (t->responses == 1) t->res->first_headers[key] = value;
  return len;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (t->abort != nullptr && t->abort->load()) return 0;
  if (t->sink != nullptr) {
    // A redirect's or an error's body never reaches the file.
    if (t->status_now < 200 || t->status_now >= 300) {
      if (t->res->body.size() < 4096) t->res->body.append(data, std::min<size_t>(len, 4096));
      return len;
    }
    return (*t->sink)(data, len, t->status_now) ? len : 0;
  }
  t->res->body.append(data, len);
  return len;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->abort != nullptr && t->abort->load() ? 1 : 0;
}

HttpResult perform(const HttpRequest& req, uint64_t offset, Transfer& t) {
  http_global_init();
  HttpResult res;
  t.res = &res;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) fail("libcurl: curl_easy_init failed");
  CURL* c = curl.get();
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "User-Agent: inferd/0.1; hf_hub-compatible");
  headers = curl_slist_append(headers, "Accept-Encoding: identity");
  std::string auth;
  if (!req.token.empty()) {
    auth = "Authorization: Bearer " + req.token;
    headers = curl_slist_append(headers, auth.c_str());
  }
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> hold(headers, curl_slist_free_all);
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, req.follow_redirects ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout_s * 1000));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(req.stall_timeout_s)));
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
  if (req.head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  const std::string range = std::to_string(offset) + "-";
  if (offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  res.curl_code = curl_easy_perform(c);
  if (res.curl_code != CURLE_OK)
    res.curl_error = errbuf[0] != 0 ? errbuf : curl_easy_strerror(CURLcode(res.curl_code));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res.status);
  if (res.status == 0) res.status = t.status_now;
  return res;
}

}  // namespace

bool HttpResult::connect_failed() const {
  return curl_code == CURLE_COULDNT_CONNECT || curl_code == CURLE_COULDNT_RESOLVE_HOST ||
         curl_code == CURLE_COULDNT_RESOLVE_PROXY ||
         (curl_code == CURLE_OPERATION_TIMEDOUT && status == 0);
}

void http_global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

HttpResult http_request(const HttpRequest& req) {
  Transfer t;
  t.keep_body = true;
  return perform(req, 0, t);
}

HttpResult http_stream(const HttpRequest& req, uint64_t offset,
                       const std::function<bool(const char*, size_t, long)>& sink,
                       const std::atomic<bool>* abort) {
  Transfer t;
  t.sink = &sink;
  t.abort = abort;
  return perform(req, offset, t);
}

}  // namespace inferd::hub
