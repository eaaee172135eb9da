#include "server/api_keys.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "server/api_error.h"

namespace inferd::server {

namespace {

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

bool consteq(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char d = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    d |= static_cast<unsigned char>(x ^ y);
  }
  // Keep the compiler from turning the loop into an early-exit comparison.
  volatile unsigned char r = d;
  return r == 0;
}

}  // namespace

std::vector<std::string> read_api_key_file(const std::string& path) {
  if (path.empty()) fail("--api-key-file: empty path");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("--api-key-file '{}': cannot read it: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("--api-key-file '{}': cannot read it: {}", path, std::strerror(errno));
  std::vector<std::string> keys;
  std::istringstream lines(ss.str());
  for (std::string line; std::getline(lines, line);) {
    const std::string_view k = trim(line);
    if (k.empty() || k.front() == '#') continue;
    keys.emplace_back(k);
  }
  if (keys.empty())
    fail(
        "--api-key-file '{}' holds no key: expected one key a line (blank lines and lines "
        "starting with '#' are ignored)",
        path);
  return keys;
}

std::vector<std::string> collect_api_keys(const std::vector<std::string>& values,
                                          const std::string& file) {
  std::vector<std::string> out;
  for (const auto& s : values) {
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = s.find(',', i);
      if (j == std::string::npos) j = s.size();
      const std::string_view part = trim(std::string_view(s).substr(i, j - i));
      if (!part.empty()) out.emplace_back(part);
      i = j + 1;
    }
  }
  if (!file.empty())
    for (auto& k : read_api_key_file(file)) out.push_back(std::move(k));
  return out;
}

bool api_key_matches(std::string_view token, const std::vector<std::string>& keys) {
  bool ok = false;
  for (const auto& k : keys) ok |= consteq(token, k);
  return ok;
}

void check_bearer(std::string_view authorization, const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  std::string_view token;
  if (authorization.size() > 7) {
    std::string scheme(authorization.substr(0, 7));
    for (auto& c : scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "bearer ") token = authorization.substr(7);
  }
  if (!api_key_matches(token, keys) || token.empty())
    throw ApiError(401,
                   token.empty() ? "Missing API key: pass it as 'Authorization: Bearer <key>'."
                                 : "Incorrect API key provided.",
                   "invalid_request_error", std::nullopt, "invalid_api_key");
}

}  // namespace inferd::server
