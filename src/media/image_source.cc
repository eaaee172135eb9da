// data: URLs and http(s) fetches for request images (see image_source.h).
#include "media/image_source.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <mutex>

#include "core/error.h"
#include "media/image_decode.h"

namespace inferd::media {

namespace {

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet
  if (c == '/' || c == '_') return 63;
  return -1;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Fetch {
  std::vector<uint8_t> body;
  int64_t max_bytes = 0;
  bool too_big = false;
};

size_t on_body(char* p, size_t size, size_t n, void* user) {
  auto* f = static_cast<Fetch*>(user);
  const size_t len = size * n;
  if (int64_t(f->body.size() + len) > f->max_bytes) {
    f->too_big = true;
    return 0;  // aborts the transfer
  }
  f->body.insert(f->body.end(), p, p + len);
  return len;
}

std::vector<uint8_t> fetch(const std::string& url, const MediaFetchOptions& o,
                           const std::string& what) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURL* c = curl_easy_init();
  if (!c) fail("{}: cannot fetch {}: libcurl did not start", what, url);
  Fetch f;
  f.max_bytes = o.max_bytes;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, long(o.timeout_s * 1000));
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(o.max_bytes));
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (f.too_big || rc == CURLE_FILESIZE_EXCEEDED)
    fail("{}: {} is larger than the limit of {} bytes (--max-image-bytes)", what, url, o.max_bytes);
  if (rc == CURLE_OPERATION_TIMEDOUT)
    fail("{}: fetching {} took longer than {} s (--media-fetch-timeout)", what, url, o.timeout_s);
  if (rc != CURLE_OK)
    fail("{}: cannot fetch {}: {}", what, url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
  if (status != 200)
    fail("{}: fetching {} answered HTTP {} (expected 200; redirects are not followed)", what, url,
         status);
  return std::move(f.body);
}

}  // namespace

bool base64_decode(std::string_view in, std::vector<uint8_t>& out) {
  out.clear();
  out.reserve(in.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  bool pad = false;
  for (char ch : in) {
    if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') continue;
    if (ch == '=') {
      pad = true;
      continue;
    }
    const int v = b64_value(ch);
    if (v < 0 || pad) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(uint8_t(acc >> bits));
    }
  }
  return bits < 6;  // a lone 6-bit leftover is not valid base64
}

std::string file_data_url(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open the image", path);
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)),
                               std::istreambuf_iterator<char>());
  const ImageFormat fmt = sniff_format(b);
  const char* type = fmt == ImageFormat::kJpeg   ? "image/jpeg"
                     : fmt == ImageFormat::kPng  ? "image/png"
                     : fmt == ImageFormat::kWebp ? "image/webp"
                                                 : nullptr;
  if (!type)
    fail("{}: {} is not an image this server reads: expected JPEG, PNG or WebP", path,
         fmt == ImageFormat::kUnknown ? "the file" : format_name(fmt));
  return std::string("data:") + type + ";base64," + base64_encode(b);
}

std::string base64_encode(std::span<const uint8_t> b) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((b.size() + 2) / 3 * 4);
  for (size_t i = 0; i < b.size(); i += 3) {
    const uint32_t v = (uint32_t(b[i]) << 16) | (i + 1 < b.size() ? uint32_t(b[i + 1]) << 8 : 0) |
                       (i + 2 < b.size() ? uint32_t(b[i + 2]) : 0);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < b.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < b.size() ? k[v & 63] : '=';
  }
  return out;
}

std::string url_host(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  size_t start = scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string auth = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (const size_t at = auth.rfind('@'); at != std::string::npos) auth = auth.substr(at + 1);
  if (!auth.empty() && auth[0] == '[') {  // IPv6 literal
    const size_t close = auth.find(']');
    return lower(auth.substr(0, close == std::string::npos ? auth.size() : close + 1));
  }
  if (const size_t colon = auth.find(':'); colon != std::string::npos) auth.resize(colon);
  return lower(auth);
}

bool host_allowed(const std::string& host, const MediaFetchOptions& opts) {
  if (host.empty()) return false;
  if (opts.allow_any_host) return true;
  for (const std::string& d0 : opts.allowed_domains) {
    std::string d = lower(d0);
    if (d.starts_with("*.")) d = d.substr(1);
    if (d.starts_with(".")) {
      if (host.size() > d.size() && host.ends_with(d)) return true;
      if (host == d.substr(1)) return true;
    } else if (host == d) {
      return true;
    }
  }
  return false;
}

std::vector<uint8_t> load_media_bytes(const std::string& url, const MediaFetchOptions& opts,
                                      const std::string& what) {
  const std::string head = lower(url.substr(0, std::min<size_t>(url.size(), 8)));
  if (head.starts_with("data:")) {
    const size_t comma = url.find(',');
    if (comma == std::string::npos)
      fail("{}: malformed data URL: expected 'data:<media type>;base64,<data>'", what);
    const std::string meta = lower(url.substr(5, comma - 5));
    if (!meta.ends_with(";base64"))
      fail("{}: data URL is not base64 ('{}'): expected 'data:<media type>;base64,<data>'", what,
           url.substr(0, comma + 1));
    const std::string_view b64(url.data() + comma + 1, url.size() - comma - 1);
    if (int64_t(b64.size()) / 4 * 3 > opts.max_bytes + 3)
      fail("{}: the data URL's image is larger than the limit of {} bytes (--max-image-bytes)",
           what, opts.max_bytes);
    std::vector<uint8_t> out;
    if (!base64_decode(b64, out)) fail("{}: the data URL's base64 data is malformed", what);
    if (out.empty()) fail("{}: the data URL holds no data", what);
    return out;
  }
  if (head.starts_with("http://") || head.starts_with("https://")) {
    const std::string host = url_host(url);
    if (!opts.allow_any_host && opts.allowed_domains.empty())
      fail(
          "{}: image URLs are not fetched by this server: send the image as a data: URL "
          "(base64), or start the server with --allowed-media-domains or --allow-media-fetch",
          what);
    if (!host_allowed(host, opts))
      fail("{}: the host '{}' is not in --allowed-media-domains", what, host);
    return fetch(url, opts, what);
  }
  fail("{}: unsupported image URL '{}': expected a data: URL (base64) or an http(s) URL", what,
       url.substr(0, 40));
}

}  // namespace inferd::media
