// The tolerant JSON scanner (see partial_json.h).
#include "server/partial_json.h"

#include <nlohmann/json.hpp>

#include <cctype>

namespace inferd::server {

bool is_json_ws(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

size_t skip_json_ws(std::string_view s, size_t i) {
  while (i < s.size() && is_json_ws(s[i])) ++i;
  return i;
}

namespace {

constexpr int kMaxDepth = 128;  // deeper JSON in a call is malformed (bounds the recursion)

Scan scan_value(std::string_view s, size_t& i, int depth);

Scan scan_string(std::string_view s, size_t& i) {
  size_t j = i + 1;
  while (j < s.size()) {
    const char c = s[j];
    if (c == '"') {
      i = j + 1;
      return Scan::kOk;
    }
    if (c == '\\') {
      j += 2;
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      i = j;
      return Scan::kBad;
    }
    ++j;
  }
  return Scan::kMore;
}

Scan scan_number(std::string_view s, size_t& i) {
  size_t j = i;
  while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '-' ||
                          s[j] == '+' || s[j] == '.' || s[j] == 'e' || s[j] == 'E'))
    ++j;
  if (j == s.size()) return Scan::kMore;  // more digits may follow
  i = j;
  return Scan::kOk;
}

Scan scan_literal(std::string_view s, size_t& i, std::string_view word) {
  const std::string_view rest = s.substr(i);
  if (rest.size() < word.size())
    return word.substr(0, rest.size()) == rest ? Scan::kMore : Scan::kBad;
  if (rest.substr(0, word.size()) != word) return Scan::kBad;
  i += word.size();
  return Scan::kOk;
}

Scan scan_container(std::string_view s, size_t& i, int depth, bool object) {
  if (depth > kMaxDepth) return Scan::kBad;
  const char close = object ? '}' : ']';
  size_t j = skip_json_ws(s, i + 1);
  auto fail = [&](Scan r) {
    if (r == Scan::kBad) i = j;
    return r;
  };
  if (j == s.size()) return Scan::kMore;
  if (s[j] == close) {
    i = j + 1;
    return Scan::kOk;
  }
  for (;;) {
    if (object) {
      if (j == s.size()) return Scan::kMore;
      if (s[j] != '"') return fail(Scan::kBad);
      if (Scan r = scan_string(s, j); r != Scan::kOk) return fail(r);
      j = skip_json_ws(s, j);
      if (j == s.size()) return Scan::kMore;
      if (s[j] != ':') return fail(Scan::kBad);
      j = skip_json_ws(s, j + 1);
    }
    if (Scan r = scan_value(s, j, depth + 1); r != Scan::kOk) return fail(r);
    j = skip_json_ws(s, j);
    if (j == s.size()) return Scan::kMore;
    if (s[j] == close) {
      i = j + 1;
      return Scan::kOk;
    }
    if (s[j] != ',') return fail(Scan::kBad);
    j = skip_json_ws(s, j + 1);
  }
}

Scan scan_value(std::string_view s, size_t& i, int depth) {
  if (i >= s.size()) return Scan::kMore;
  switch (s[i]) {
    case '{':
      return scan_container(s, i, depth, true);
    case '[':
      return scan_container(s, i, depth, false);
    case '"':
      return scan_string(s, i);
    case 't':
      return scan_literal(s, i, "true");
    case 'f':
      return scan_literal(s, i, "false");
    case 'n':
      return scan_literal(s, i, "null");
    default:
      if (s[i] == '-' || std::isdigit(static_cast<unsigned char>(s[i]))) return scan_number(s, i);
      return Scan::kBad;
  }
}

}  // namespace

CallScan scan_call(std::string_view s, size_t start) {
  CallScan c;
  auto done = [&](Scan r) {
    c.status = r;
    return c;
  };
  if (start >= s.size()) return done(Scan::kMore);
  if (s[start] != '{') return done(Scan::kBad);
  size_t j = skip_json_ws(s, start + 1);
  if (j == s.size()) return done(Scan::kMore);
  if (s[j] == '}') {
    c.end = j + 1;
    return done(Scan::kOk);
  }
  for (;;) {
    if (j == s.size()) return done(Scan::kMore);
    if (s[j] != '"') return done(Scan::kBad);
    const size_t key_begin = j;
    if (Scan r = scan_string(s, j); r != Scan::kOk) return done(r);
    std::string key;
    try {
      key = nlohmann::json::parse(s.substr(key_begin, j - key_begin)).get<std::string>();
    } catch (const std::exception&) {
      return done(Scan::kBad);
    }
    j = skip_json_ws(s, j);
    if (j == s.size()) return done(Scan::kMore);
    if (s[j] != ':') return done(Scan::kBad);
    j = skip_json_ws(s, j + 1);
    const size_t vbegin = j;
    const Scan r = scan_value(s, j, 1);
    if (key == "name") {
      if (vbegin < s.size() && s[vbegin] != '"' && r != Scan::kMore) return done(Scan::kBad);
      if (r == Scan::kOk) {
        try {
          c.name = nlohmann::json::parse(s.substr(vbegin, j - vbegin)).get<std::string>();
        } catch (const std::exception&) {
          return done(Scan::kBad);
        }
      }
    } else if ((key == "arguments" || key == "parameters") && !c.args_started) {
      c.args_started = true;
      c.args_begin = vbegin;
      c.args_string = vbegin < s.size() && s[vbegin] == '"';
      if (r == Scan::kOk) {
        c.args_done = true;
        c.args_end = j;
      } else if (vbegin < s.size() && (s[vbegin] == '{' || s[vbegin] == '[')) {
        // Everything so far (up to the offending byte when broken) is inside the arguments.
        c.args_end = r == Scan::kMore ? s.size() : j;
      } else {
        c.args_end = vbegin;  // a string or scalar: only whole
      }
    }
    if (r != Scan::kOk) return done(r);
    j = skip_json_ws(s, j);
    if (j == s.size()) return done(Scan::kMore);
    if (s[j] == '}') {
      c.end = j + 1;
      return done(Scan::kOk);
    }
    if (s[j] != ',') return done(Scan::kBad);
    j = skip_json_ws(s, j + 1);
  }
}

}  // namespace inferd::server
