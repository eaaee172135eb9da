// Where a request's image comes from: a `data:` URL (base64, RFC 2397) or an http(s) URL fetched
// with libcurl under limits (bytes, seconds) and only from hosts the server allows
// (--allowed-media-domains, or every host with --allow-media-fetch). Redirects are not followed
// (each hop would need the same host check).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace inferd::media {

struct MediaFetchOptions {
  bool allow_any_host = false;               // --allow-media-fetch
  std::vector<std::string> allowed_domains;  // --allowed-media-domains (host or *.suffix)
  int64_t max_bytes = 20 << 20;              // --max-image-bytes
  double timeout_s = 10;                     // --media-fetch-timeout
};

// The bytes `url` names; `what` names the URL's field in errors. Throws Error: a malformed data
// URL, bad base64, a scheme other than data/http/https, a host that is not allowed, a transfer
// that fails, answers other than 200, or is over max_bytes / timeout_s.
std::vector<uint8_t> load_media_bytes(const std::string& url, const MediaFetchOptions& opts,
                                      const std::string& what);

// Standard base64 (RFC 4648, '=' padding optional, whitespace skipped); nullopt-like: false on
// any other character.
bool base64_decode(std::string_view in, std::vector<uint8_t>& out);
// Standard base64 of `bytes` with '=' padding.
std::string base64_encode(std::span<const uint8_t> bytes);

// The image file `path` as a data: URL (base64) with its media type; Error naming the path when
// it cannot be read or is not a JPEG, PNG or WebP file (by its first bytes).
std::string file_data_url(const std::string& path);

// The host part of an http(s) URL, lower-cased ("" when there is none).
std::string url_host(const std::string& url);

// Whether `host` is allowed: allow_any_host, or equal to an entry, or below a "*.example.com"
// entry (or below any entry starting with '.').
bool host_allowed(const std::string& host, const MediaFetchOptions& opts);

}  // namespace inferd::media
