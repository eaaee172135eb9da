// Python's str semantics on UTF-8 text for the jinja builtins (builtins.h): character classes
// and case mapping from utf8proc, strip / split / replace / splitlines, HTML escaping, and
// int() / float() of strings.
#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "jinja/builtins.h"
#include "jinja/lexer.h"

namespace inferd::jinja {

char32_t to_upper(char32_t c) {
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_lower(char32_t c) {
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_title(char32_t c) {
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

bool is_cased(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
bool is_upper_c(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_LU;
}
bool is_lower_c(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_LL;
}
bool is_alpha_c(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}
bool is_numeric_c(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}
bool is_decimal_c(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND;
}
bool is_word_c(char32_t c) {
  return c == '_' || is_alpha_c(c) || is_numeric_c(c);
}

std::string py_upper(std::string_view s) {
  std::u32string u = utf8_decode(s);
  for (auto& c : u) c = to_upper(c);
  return utf8_encode(u);
}
std::string py_lower(std::string_view s) {
  std::u32string u = utf8_decode(s);
  for (auto& c : u) c = to_lower(c);
  return utf8_encode(u);
}
std::string py_capitalize(std::string_view s) {
  std::u32string u = utf8_decode(s);
  for (size_t i = 0; i < u.size(); ++i) u[i] = i == 0 ? to_title(u[i]) : to_lower(u[i]);
  return utf8_encode(u);
}
// str.title()
std::string py_title(std::string_view s) {
  std::u32string u = utf8_decode(s);
  bool prev_cased = false;
  for (auto& c : u) {
    char32_t orig = c;
    c = prev_cased ? to_lower(c) : to_title(c);
    prev_cased = is_cased(orig);
  }
  return utf8_encode(u);
}
// The jinja2 `title` filter: split on runs of [-\s({\[<], upper-case the first character of every
// piece and lower-case the rest.
std::string jinja_title(std::string_view s) {
  std::u32string u = utf8_decode(s);
  auto is_sep = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_python_space(c);
  };
  std::u32string out;
  size_t i = 0;
  while (i < u.size()) {
    size_t j = i;
    bool sep = is_sep(u[i]);
    while (j < u.size() && is_sep(u[j]) == sep) ++j;
    for (size_t k = i; k < j; ++k) out.push_back(k == i ? to_upper(u[k]) : to_lower(u[k]));
    i = j;
  }
  return utf8_encode(out);
}

namespace {

std::u32string strip_set(const Value* chars) {
  if (!chars || chars->is_none()) return U"";
  if (!chars->is_string()) runtime_error("strip arg must be None or str");
  return utf8_decode(chars->str_ref());
}

}  // namespace

std::string py_strip(std::string_view s, const Value* chars, bool left, bool right) {
  std::u32string u = utf8_decode(s);
  bool ws = !chars || chars->is_none();
  std::u32string set = strip_set(chars);
  auto strip = [&](char32_t c) {
    return ws ? is_python_space(c) : set.find(c) != std::u32string::npos;
  };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip(u[b])) ++b;
  if (right)
    while (e > b && strip(u[e - 1])) --e;
  return utf8_encode(std::u32string_view(u).substr(b, e - b));
}

ValueList py_split(const std::string& s, const Value* sep_v, int64_t maxsplit, bool from_right) {
  ValueList out;
  if (!sep_v || sep_v->is_none()) {
    std::u32string u = utf8_decode(s);
    if (!from_right) {
      size_t i = 0;
      while (true) {
        while (i < u.size() && is_python_space(u[i])) ++i;
        if (i >= u.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
          out.emplace_back(utf8_encode(std::u32string_view(u).substr(i)));
          break;
        }
        size_t j = i;
        while (j < u.size() && !is_python_space(u[j])) ++j;
        out.emplace_back(utf8_encode(std::u32string_view(u).substr(i, j - i)));
        i = j;
      }
    } else {
      size_t e = u.size();
      while (true) {
        while (e > 0 && is_python_space(u[e - 1])) --e;
        if (e == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
          out.emplace_back(utf8_encode(std::u32string_view(u).substr(0, e)));
          break;
        }
        size_t b = e;
        while (b > 0 && !is_python_space(u[b - 1])) --b;
        out.emplace_back(utf8_encode(std::u32string_view(u).substr(b, e - b)));
        e = b;
      }
      std::reverse(out.begin(), out.end());
    }
    return out;
  }
  if (!sep_v->is_string()) runtime_error("must be str or None, not " + sep_v->type_name());
  const std::string& sep = sep_v->str_ref();
  if (sep.empty()) runtime_error("empty separator");
  if (!from_right) {
    size_t i = 0;
    while (true) {
      size_t p = s.find(sep, i);
      if (p == std::string::npos ||
          (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
        out.emplace_back(s.substr(i));
        break;
      }
      out.emplace_back(s.substr(i, p - i));
      i = p + sep.size();
    }
  } else {
    size_t e = s.size();
    while (true) {
      size_t p = e >= sep.size() ? s.rfind(sep, e - sep.size()) : std::string::npos;
      if (p == std::string::npos ||
          (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
        out.emplace_back(s.substr(0, e));
        break;
      }
      out.emplace_back(s.substr(p + sep.size(), e - p - sep.size()));
      e = p;
    }
    std::reverse(out.begin(), out.end());
  }
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& nw,
                       int64_t count) {
  std::string out;
  if (old.empty()) {
    std::u32string u = utf8_decode(s);
    int64_t n = 0;
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || n < count) {
        out += nw;
        ++n;
      }
      if (i < u.size()) utf8_append(out, u[i]);
      check_string_size(out.size(), "replace");
    }
    return out;
  }
  size_t i = 0;
  int64_t n = 0;
  while (true) {
    size_t p = s.find(old, i);
    if (p == std::string::npos || (count >= 0 && n >= count)) break;
    out.append(s, i, p - i);
    out += nw;
    check_string_size(out.size(), "replace");
    i = p + old.size();
    ++n;
  }
  out.append(s, i, std::string::npos);
  return out;
}

std::vector<std::string> py_splitlines(const std::string& s, bool keepends) {
  std::u32string u = utf8_decode(s);
  std::vector<std::string> out;
  size_t i = 0, start = 0;
  auto is_break = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
           c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
  };
  while (i < u.size()) {
    if (is_break(u[i])) {
      size_t eol = i;
      size_t next = i + 1;
      if (u[i] == '\r' && next < u.size() && u[next] == '\n') ++next;
      out.push_back(
          utf8_encode(std::u32string_view(u).substr(start, (keepends ? next : eol) - start)));
      start = i = next;
    } else {
      ++i;
    }
  }
  if (start < u.size()) out.push_back(utf8_encode(std::u32string_view(u).substr(start)));
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

int64_t arg_int(const Value* v, int64_t def, const char* what) {
  if (!v || v->is_none()) return def;
  if (v->is_int() || v->is_bool()) return v->to_int();
  runtime_error(std::string(what) + ": expected an integer, got " + v->type_name());
}

bool arg_bool(const Value* v, bool def) {
  return v ? v->truthy() : def;
}

const std::string& arg_str(const Value* v, const char* what) {
  if (!v || !v->is_string())
    runtime_error(std::string(what) + ": expected a string, got " +
                  (v ? v->type_name() : "nothing"));
  return v->str_ref();
}

// Python's int(str, base) for base 10 (whitespace, sign, underscores between digits).
bool parse_py_int(const std::string& s, int64_t base, int64_t& out) {
  std::string t = py_strip(s, nullptr, true, true);
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
  if (base == 0 || base == 16 || base == 8 || base == 2) {
    if (i + 1 < t.size() && t[i] == '0') {
      char p = static_cast<char>(t[i + 1] | 0x20);
      if ((p == 'x' && (base == 16 || base == 0)) || (p == 'o' && (base == 8 || base == 0)) ||
          (p == 'b' && (base == 2 || base == 0))) {
        base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
        i += 2;
        if (i < t.size() && t[i] == '_') ++i;
      }
    }
    if (base == 0) base = 10;
  }
  if (i >= t.size()) return false;
  int64_t v = 0;
  bool prev_digit = false;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c == '_') {
      if (!prev_digit || i + 1 >= t.size()) return false;
      prev_digit = false;
      continue;
    }
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'z')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'Z')
      d = c - 'A' + 10;
    else
      return false;
    if (d >= base) return false;
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v)) return false;
    prev_digit = true;
  }
  out = neg ? -v : v;
  return true;
}

// Python's float(str).
bool parse_py_float(const std::string& s, double& out) {
  std::string t = py_strip(s, nullptr, true, true);
  std::string clean;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '_') {
      if (i == 0 || i + 1 >= t.size() || !isdigit(static_cast<unsigned char>(t[i - 1])) ||
          !isdigit(static_cast<unsigned char>(t[i + 1])))
        return false;
      continue;
    }
    clean.push_back(t[i]);
  }
  if (clean.empty()) return false;
  std::string low = py_lower(clean);
  std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  bool neg = low[0] == '-';
  if (body == "inf" || body == "infinity") {
    out = neg ? -INFINITY : INFINITY;
    return true;
  }
  if (body == "nan") {
    out = NAN;
    return true;
  }
  for (char c : body)
    if (!(isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-'))
      return false;
  char* end = nullptr;
  out = std::strtod(clean.c_str(), &end);
  return end && *end == '\0';
}

}  // namespace inferd::jinja
