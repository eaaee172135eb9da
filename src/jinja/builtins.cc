// Filters, tests, globals and the Python methods of str/dict/list that templates call, with the
// semantics of jinja2 3.1 (filters.py, tests.py) and CPython.
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>

#include "jinja/interpreter.h"
#include "jinja/lexer.h"

namespace inferd::jinja {

using namespace std::literals;

namespace {

// ---- helpers ---------------------------------------------------------------------------------

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_object()) {
    if (v.object_ref().type_name() == "Namespace") return "jinja2.utils.Namespace object";
    if (v.object_ref().type_name() == "LoopContext") return "jinja2.runtime.LoopContext object";
    return v.object_ref().type_name() + " object";
  }
  if (v.is_callable()) return "function object";
  return v.type_name() + " object";
}

Value undefined_attr(const Value& obj, const std::string& name) {
  return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + name + "'");
}

Value undefined_elem(const Value& obj, const Value& key) {
  if (key.is_string()) return undefined_attr(obj, key.str_ref());
  return Value::undefined(object_type_repr(obj) + " has no element " + key.repr());
}

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() +
                          "' object is unsafe.");
}

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

std::u32string strip_set(const Value* chars) {
  if (!chars || chars->is_none()) return U"";
  if (!chars->is_string()) runtime_error("strip arg must be None or str");
  return utf8_decode(chars->str_ref());
}

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

class Namespace : public Object {
 public:
  std::string type_name() const override { return "Namespace"; }
  std::optional<Value> get_attr(std::string_view name) const override {
    for (const auto& [k, v] : attrs_)
      if (k == name) return v;
    return std::nullopt;
  }
  void set_attr(std::string_view name, Value value) override {
    for (auto& [k, v] : attrs_) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    attrs_.emplace_back(std::string(name), std::move(value));
  }
  std::string repr() const override {
    std::string out = "<Namespace {";
    for (size_t i = 0; i < attrs_.size(); ++i) {
      if (i) out += ", ";
      out += python_str_repr(attrs_[i].first) + ": " + attrs_[i].second.repr();
    }
    return out + "}>";
  }

 private:
  std::vector<std::pair<std::string, Value>> attrs_;
};

// Bound methods of str/dict/list values.
Value string_method(const Value& self, const std::string& name);
Value dict_method(const Value& self, const std::string& name);
Value list_method(const Value& self, const std::string& name);

Value bound(const std::string& name, Value self,
            std::function<Value(Interpreter&, const Value&, const CallArgs&)> fn) {
  return Value::callable(name, [self = std::move(self), fn = std::move(fn)](
                                   Interpreter& in, const CallArgs& a) { return fn(in, self, a); });
}

bool prefix_match(const std::string& s, const Value& p, bool suffix) {
  auto one = [&](const Value& x) {
    if (!x.is_string())
      runtime_error(std::string(suffix ? "endswith" : "startswith") +
                    " first arg must be str or a tuple of str, not " + x.type_name());
    const std::string& t = x.str_ref();
    if (t.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - t.size(), t.size(), t) == 0
                  : s.compare(0, t.size(), t) == 0;
  };
  if (p.is_tuple()) {
    for (const auto& x : p.items())
      if (one(x)) return true;
    return false;
  }
  return one(p);
}

Value string_method(const Value& self, const std::string& name) {
  using A = const CallArgs&;
  using I = Interpreter&;
  using V = const Value&;
  if (name == "strip"sv || name == "lstrip"sv || name == "rstrip"sv) {
    bool l = name != "rstrip"sv, r = name != "lstrip"sv;
    return bound(name, self, [l, r](I, V s, A a) {
      return Value(py_strip(s.str_ref(), a.get(0, "chars"), l, r));
    });
  }
  if (name == "split"sv || name == "rsplit"sv) {
    bool right = name == "rsplit"sv;
    return bound(name, self, [right](I, V s, A a) {
      return Value::list(py_split(s.str_ref(), a.get(0, "sep"),
                                  arg_int(a.get(1, "maxsplit"), -1, "maxsplit"), right));
    });
  }
  if (name == "startswith"sv || name == "endswith"sv) {
    bool suffix = name == "endswith"sv;
    return bound(name, self, [suffix](I, V s, A a) {
      const Value* p = a.get(0, "prefix");
      if (!p) runtime_error("startswith() takes at least 1 argument (0 given)");
      std::u32string u = utf8_decode(s.str_ref());
      int64_t n = static_cast<int64_t>(u.size());
      int64_t b = arg_int(a.get(1, "start"), 0, "start"), e = arg_int(a.get(2, "end"), n, "end");
      if (b < 0) b = std::max<int64_t>(0, b + n);
      if (e < 0) e = std::max<int64_t>(0, e + n);
      b = std::min(b, n);
      e = std::min(e, n);
      if (b > e) return Value(false);
      std::string sub = utf8_encode(
          std::u32string_view(u).substr(static_cast<size_t>(b), static_cast<size_t>(e - b)));
      return Value(prefix_match(sub, *p, suffix));
    });
  }
  if (name == "upper"sv)
    return bound(name, self, [](I, V s, A) { return Value(py_upper(s.str_ref())); });
  if (name == "lower"sv)
    return bound(name, self, [](I, V s, A) { return Value(py_lower(s.str_ref())); });
  if (name == "title"sv)
    return bound(name, self, [](I, V s, A) { return Value(py_title(s.str_ref())); });
  if (name == "capitalize"sv)
    return bound(name, self, [](I, V s, A) { return Value(py_capitalize(s.str_ref())); });
  if (name == "swapcase"sv)
    return bound(name, self, [](I, V s, A) {
      std::u32string u = utf8_decode(s.str_ref());
      for (auto& c : u) c = is_upper_c(c) ? to_lower(c) : is_lower_c(c) ? to_upper(c) : c;
      return Value(utf8_encode(u));
    });
  if (name == "replace"sv)
    return bound(name, self, [](I, V s, A a) {
      return Value(py_replace(s.str_ref(), arg_str(a.get(0, "old"), "replace"),
                              arg_str(a.get(1, "new"), "replace"),
                              arg_int(a.get(2, "count"), -1, "count")));
    });
  if (name == "find"sv || name == "rfind"sv || name == "index"sv || name == "rindex"sv ||
      name == "count"sv) {
    return bound(name, self, [name](I, V s, A a) -> Value {
      const std::string& sub = arg_str(a.get(0, "sub"), name.c_str());
      const std::string& str = s.str_ref();
      if (name == "count"sv) {
        if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(str) + 1));
        int64_t n = 0;
        for (size_t p = str.find(sub); p != std::string::npos; p = str.find(sub, p + sub.size()))
          ++n;
        return Value(n);
      }
      size_t p = (name == "find"sv || name == "index"sv) ? str.find(sub) : str.rfind(sub);
      if (p == std::string::npos) {
        if (name == "index"sv || name == "rindex"sv) runtime_error("substring not found");
        return Value(static_cast<int64_t>(-1));
      }
      return Value(static_cast<int64_t>(utf8_length(std::string_view(str).substr(0, p))));
    });
  }
  if (name == "join"sv)
    return bound(name, self, [](I in, V s, A a) {
      const Value* it = a.get(0, "iterable");
      if (!it) runtime_error("join() takes exactly one argument (0 given)");
      std::string out;
      ValueList items = in.iterate(*it);
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string())
          runtime_error("sequence item " + std::to_string(i) + ": expected str instance, " +
                        items[i].type_name() + " found");
        if (i) out += s.str_ref();
        out += items[i].str_ref();
        check_string_size(out.size(), "join");
      }
      return Value(std::move(out));
    });
  if (name == "splitlines"sv)
    return bound(name, self, [](I, V s, A a) {
      ValueList out;
      for (auto& l : py_splitlines(s.str_ref(), arg_bool(a.get(0, "keepends"), false)))
        out.emplace_back(l);
      return Value::list(std::move(out));
    });
  if (name == "removeprefix"sv || name == "removesuffix"sv) {
    bool suffix = name == "removesuffix"sv;
    return bound(name, self, [suffix](I, V s, A a) {
      const std::string& p = arg_str(a.get(0, "prefix"), "removeprefix");
      const std::string& str = s.str_ref();
      if (!p.empty() && prefix_match(str, Value(p), suffix))
        return Value(suffix ? str.substr(0, str.size() - p.size()) : str.substr(p.size()));
      return Value(str);
    });
  }
  if (name == "partition"sv || name == "rpartition"sv) {
    bool right = name == "rpartition"sv;
    return bound(name, self, [right](I, V s, A a) {
      const std::string& sep = arg_str(a.get(0, "sep"), "partition");
      if (sep.empty()) runtime_error("empty separator");
      const std::string& str = s.str_ref();
      size_t p = right ? str.rfind(sep) : str.find(sep);
      if (p == std::string::npos)
        return right ? Value::tuple({Value(""), Value(""), Value(str)})
                     : Value::tuple({Value(str), Value(""), Value("")});
      return Value::tuple({Value(str.substr(0, p)), Value(sep), Value(str.substr(p + sep.size()))});
    });
  }
  auto pred = [&](auto fn, bool need_cased) {
    return bound(name, self, [fn, need_cased](I, V s, A) {
      std::u32string u = utf8_decode(s.str_ref());
      if (u.empty()) return Value(false);
      if (need_cased) return Value(fn(u));
      for (char32_t c : u)
        if (!fn(std::u32string(1, c))) return Value(false);
      return Value(true);
    });
  };
  if (name == "isdigit"sv || name == "isnumeric"sv)
    return pred([](const std::u32string& u) { return is_numeric_c(u[0]); }, false);
  if (name == "isdecimal"sv)
    return pred([](const std::u32string& u) { return is_decimal_c(u[0]); }, false);
  if (name == "isalpha"sv)
    return pred([](const std::u32string& u) { return is_alpha_c(u[0]); }, false);
  if (name == "isalnum"sv)
    return pred([](const std::u32string& u) { return is_alpha_c(u[0]) || is_numeric_c(u[0]); },
                false);
  if (name == "isspace"sv)
    return pred([](const std::u32string& u) { return is_python_space(u[0]); }, false);
  if (name == "isupper"sv || name == "islower"sv) {
    bool up = name == "isupper"sv;
    return pred(
        [up](const std::u32string& u) {
          bool any = false;
          for (char32_t c : u) {
            if (up ? is_lower_c(c) : is_upper_c(c)) return false;
            any = any || is_cased(c);
          }
          return any;
        },
        true);
  }
  if (name == "zfill"sv)
    return bound(name, self, [](I, V s, A a) {
      int64_t w = arg_int(a.get(0, "width"), 0, "zfill");
      check_string_size(uint64_t(std::max<int64_t>(w, 0)) * 4, "zfill");
      std::u32string u = utf8_decode(s.str_ref());
      if (static_cast<int64_t>(u.size()) >= w) return Value(s.str_ref());
      size_t pad = static_cast<size_t>(w) - u.size();
      size_t at = (!u.empty() && (u[0] == '+' || u[0] == '-')) ? 1 : 0;
      u.insert(at, pad, U'0');
      return Value(utf8_encode(u));
    });
  if (name == "center"sv || name == "ljust"sv || name == "rjust"sv) {
    return bound(name, self, [name](I, V s, A a) {
      int64_t w = arg_int(a.get(0, "width"), 0, name.c_str());
      check_string_size(uint64_t(std::max<int64_t>(w, 0)) * 4, name.c_str());
      const Value* f = a.get(1, "fillchar");
      char32_t fill = f ? utf8_decode(arg_str(f, name.c_str()))[0] : U' ';
      std::u32string u = utf8_decode(s.str_ref());
      int64_t n = static_cast<int64_t>(u.size());
      if (n >= w) return Value(s.str_ref());
      int64_t marg = w - n;
      int64_t left = name == "ljust"sv ? 0 : name == "rjust"sv ? marg : marg / 2 + (marg & w & 1);
      std::u32string out(static_cast<size_t>(left), fill);
      out += u;
      out.append(static_cast<size_t>(marg - left), fill);
      return Value(utf8_encode(out));
    });
  }
  if (name == "format"sv)
    return bound(name, self, [](I, V s, A a) {
      // Simple str.format: {} {0} {name} fields without format specs, {{ and }} escapes.
      const std::string& f = s.str_ref();
      std::string out;
      size_t auto_idx = 0;
      for (size_t i = 0; i < f.size(); ++i) {
        char c = f[i];
        if (c == '{' && i + 1 < f.size() && f[i + 1] == '{') {
          out += '{';
          ++i;
        } else if (c == '}' && i + 1 < f.size() && f[i + 1] == '}') {
          out += '}';
          ++i;
        } else if (c == '{') {
          size_t e = f.find('}', i);
          if (e == std::string::npos) runtime_error("Single '{' encountered in format string");
          std::string field = f.substr(i + 1, e - i - 1);
          if (field.find(':') != std::string::npos || field.find('!') != std::string::npos)
            runtime_error("str.format: format specifications are not supported");
          const Value* v = nullptr;
          if (field.empty()) {
            v = auto_idx < a.args.size() ? &a.args[auto_idx] : nullptr;
            ++auto_idx;
          } else if (isdigit(static_cast<unsigned char>(field[0]))) {
            size_t k = std::stoul(field);
            v = k < a.args.size() ? &a.args[k] : nullptr;
          } else {
            for (const auto& [kk, vv] : a.kwargs)
              if (kk == field) v = &vv;
          }
          if (!v) runtime_error("str.format: no value for field '{" + field + "}'");
          out += v->str();
          i = e;
        } else if (c == '}') {
          runtime_error("Single '}' encountered in format string");
        } else {
          out += c;
        }
      }
      return Value(std::move(out));
    });
  return Value();
}

Value dict_method(const Value& self, const std::string& name) {
  using A = const CallArgs&;
  using I = Interpreter&;
  using V = const Value&;
  if (name == "get"sv)
    return bound(name, self, [](I, V d, A a) {
      const Value* k = a.get(0, "key");
      if (!k) runtime_error("get expected at least 1 argument, got 0");
      const Value* v = d.dict_ref().find(*k);
      if (v) return *v;
      const Value* def = a.get(1, "default");
      return def ? *def : Value::none();
    });
  if (name == "keys"sv || name == "values"sv || name == "items"sv) {
    return bound(name, self, [name](I, V d, A) {
      ValueList out;
      for (const auto& [k, v] : d.dict_ref().items) {
        if (name == "keys"sv)
          out.push_back(k);
        else if (name == "values"sv)
          out.push_back(v);
        else
          out.push_back(Value::tuple({k, v}));
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "copy"sv) return bound(name, self, [](I, V d, A) { return d; });
  if (name == "clear"sv || name == "pop"sv || name == "popitem"sv || name == "setdefault"sv ||
      name == "update"sv || name == "fromkeys"sv)
    return unsafe(self, name);
  return Value();
}

Value list_method(const Value& self, const std::string& name) {
  using A = const CallArgs&;
  using I = Interpreter&;
  using V = const Value&;
  if (name == "count"sv)
    return bound(name, self, [](I, V l, A a) {
      const Value* x = a.get(0, "value");
      if (!x) runtime_error("count() takes exactly one argument (0 given)");
      int64_t n = 0;
      for (const auto& v : l.items()) n += v.equals(*x);
      return Value(n);
    });
  if (name == "index"sv)
    return bound(name, self, [](I, V l, A a) {
      const Value* x = a.get(0, "value");
      if (!x) runtime_error("index expected at least 1 argument, got 0");
      for (size_t i = 0; i < l.items().size(); ++i)
        if (l.items()[i].equals(*x)) return Value(static_cast<int64_t>(i));
      runtime_error(x->repr() + " is not in list");
    });
  if (name == "copy"sv && !self.is_tuple())
    return bound(name, self, [](I, V l, A) { return Value::list(l.items()); });
  static const std::set<std::string> kUnsafe = {"append", "clear",  "extend",  "insert",
                                                "pop",    "remove", "reverse", "sort"};
  if (!self.is_tuple() && kUnsafe.count(name)) return unsafe(self, name);
  return Value();
}

// ---- filters ---------------------------------------------------------------------------------

// getitem along a dotted attribute path ("a.b.0"), as jinja2's make_attrgetter.
Value get_path(Interpreter& in, Value item, const Value& attribute, const Value* default_value) {
  ValueList parts;
  if (attribute.is_string()) {
    Value dot(".");
    for (auto& p : py_split(attribute.str_ref(), &dot, -1, false)) {
      const std::string& s = p.str_ref();
      bool digits = !s.empty() &&
                    std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
      parts.push_back(digits ? Value(static_cast<int64_t>(std::stoll(s))) : p);
    }
  } else if (!attribute.is_none()) {
    parts.push_back(attribute);
  }
  for (const auto& p : parts) {
    item = in.getitem(item, p);
    if (default_value && !default_value->is_none() && item.is_undefined()) item = *default_value;
  }
  return item;
}

Value ignore_case(const Value& v) {
  return v.is_string() ? Value(py_lower(v.str_ref())) : v;
}

std::vector<std::string> splitlines_for_indent(const std::string& s) {
  return py_splitlines(s, false);
}

Value filter_tojson(const Value& v, const CallArgs& a) {
  JsonDumpOptions o;
  const Value* ensure_ascii = a.get(0, "ensure_ascii");
  const Value* indent = a.get(1, "indent");
  const Value* separators = a.get(2, "separators");
  const Value* sort_keys = a.get(3, "sort_keys");
  o.ensure_ascii = ensure_ascii && ensure_ascii->truthy();
  if (indent && !indent->is_none()) {
    o.has_indent = true;
    if (indent->is_string()) {
      o.indent = indent->str_ref();
    } else if (indent->is_int() || indent->is_bool()) {
      int64_t n = indent->to_int();
      o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, n)), ' ');
    } else {
      runtime_error("tojson: indent must be an integer or a string");
    }
    o.item_separator = ",";
  }
  if (separators && !separators->is_none()) {
    if (!separators->is_list() || separators->items().size() != 2 ||
        !separators->items()[0].is_string() || !separators->items()[1].is_string())
      runtime_error("tojson: separators must be a pair of strings");
    o.item_separator = separators->items()[0].str_ref();
    o.key_separator = separators->items()[1].str_ref();
  }
  o.sort_keys = sort_keys && sort_keys->truthy();
  try {
    return Value(python_json_dumps(v, o));
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& e) {
    runtime_error(e.what());
  }
}

Value py_round(const Value& v, int64_t precision, const std::string& method) {
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_number()) runtime_error("type " + v.type_name() + " doesn't define __round__ method");
  if (method == "common") {
    if (!v.is_float()) {
      if (precision >= 0) return Value(v.to_int());
      double m = std::pow(10.0, static_cast<double>(-precision));
      return Value(static_cast<int64_t>(std::nearbyint(static_cast<double>(v.to_int()) / m) * m));
    }
    double x = v.as_float();
    if (!std::isfinite(x)) return Value(x);
    if (precision > 300) return Value(x);
    if (precision < 0) {
      double m = std::pow(10.0, static_cast<double>(-precision));
      return Value(std::nearbyint(x / m) * m);
    }
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
    return Value(std::strtod(buf, nullptr));
  }
  if (method != "ceil" && method != "floor") runtime_error("method must be common, ceil or floor");
  double m = std::pow(10.0, static_cast<double>(precision));
  double x = v.to_double() * m;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / m);
}

Value py_sum(const ValueList& items, Value start) {
  Value acc = std::move(start);
  for (const auto& v : items) {
    if (acc.is_string()) runtime_error("sum() can't sum strings [use ''.join(seq) instead]");
    bool nums = acc.is_number() && v.is_number();
    if (nums && !acc.is_float() && !v.is_float()) {
      int64_t r;
      if (__builtin_add_overflow(acc.to_int(), v.to_int(), &r)) runtime_error("integer overflow");
      acc = Value(r);
    } else if (nums) {
      acc = Value(acc.to_double() + v.to_double());
    } else if (acc.is_list() && v.is_list() && acc.is_tuple() == v.is_tuple()) {
      ValueList out = acc.items();
      out.insert(out.end(), v.items().begin(), v.items().end());
      acc = acc.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    } else {
      if (v.is_undefined()) undefined_error(v);
      runtime_error("unsupported operand type(s) for +: '" + acc.type_name() + "' and '" +
                    v.type_name() + "'");
    }
  }
  return acc;
}

const std::set<std::string>& filter_names() {
  static const std::set<std::string> k = {
      "abs",     "attr",     "batch",  "capitalize", "center",     "count",      "d",
      "default", "dictsort", "e",      "escape",     "first",      "float",      "forceescape",
      "indent",  "int",      "items",  "join",       "last",       "length",     "list",
      "lower",   "map",      "max",    "min",        "reject",     "rejectattr", "replace",
      "reverse", "round",    "safe",   "select",     "selectattr", "sort",       "string",
      "sum",     "title",    "tojson", "trim",       "unique",     "upper",      "wordcount"};
  return k;
}

const std::set<std::string>& test_names() {
  static const std::set<std::string> k = {
      "boolean", "callable", "defined",  "divisibleby", "eq",       "equalto",     "escaped",
      "even",    "false",    "filter",   "float",       "ge",       "greaterthan", "gt",
      "in",      "integer",  "iterable", "le",          "lessthan", "lower",       "lt",
      "mapping", "ne",       "none",     "number",      "odd",      "sameas",      "sequence",
      "string",  "test",     "true",     "undefined",   "upper",    "==",          "!=",
      ">",       ">=",       "<",        "<="};
  return k;
}

}  // namespace

bool is_known_filter(const std::string& name) {
  return filter_names().count(name) > 0;
}
bool is_known_test(const std::string& name) {
  return test_names().count(name) > 0;
}

// ---- Interpreter: Python object protocol ------------------------------------------------------

Value Interpreter::call(const Value& callee, const CallArgs& args) {
  if (callee.is_undefined()) undefined_error(callee);
  if (!callee.is_callable()) runtime_error("'" + callee.type_name() + "' object is not callable");
  return callee.callable_ref().fn(*this, args);
}

Value Interpreter::getattr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      undefined_error(obj);
    case Value::Kind::kDict: {
      Value m = dict_method(obj, name);
      if (!m.is_undefined() || !m.undefined_message().empty()) return m;
      const Value* v = obj.dict_ref().find_str(name);
      if (v) return *v;
      return undefined_attr(obj, name);
    }
    case Value::Kind::kString: {
      Value m = string_method(obj, name);
      if (!m.is_undefined()) return m;
      return undefined_attr(obj, name);
    }
    case Value::Kind::kList: {
      Value m = list_method(obj, name);
      if (!m.is_undefined() || !m.undefined_message().empty()) return m;
      return undefined_attr(obj, name);
    }
    case Value::Kind::kObject: {
      auto v = obj.object_ref().get_attr(name);
      if (v) return *v;
      return undefined_attr(obj, name);
    }
    default:
      return undefined_attr(obj, name);
  }
}

Value Interpreter::getitem(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      undefined_error(obj);
    case Value::Kind::kDict: {
      const Value* v = obj.dict_ref().find(key);
      if (v) return *v;
      break;
    }
    case Value::Kind::kList:
    case Value::Kind::kString: {
      if (key.is_int() || key.is_bool()) {
        int64_t i = key.to_int();
        if (obj.is_list()) {
          int64_t n = static_cast<int64_t>(obj.items().size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
        } else {
          std::u32string u = utf8_decode(obj.str_ref());
          int64_t n = static_cast<int64_t>(u.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n)
            return Value(utf8_encode(std::u32string_view(u).substr(static_cast<size_t>(i), 1)));
        }
        return undefined_elem(obj, key);
      }
      break;
    }
    default:
      break;
  }
  if (key.is_string()) {
    if (obj.is_dict()) {
      Value m = dict_method(obj, key.str_ref());
      if (!m.is_undefined() || !m.undefined_message().empty()) return m;
    } else {
      Value a = getattr(obj, key.str_ref());
      return a;
    }
  }
  return undefined_elem(obj, key);
}

ValueList Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.items();
    case Value::Kind::kDict: {
      ValueList out;
      for (const auto& [k, x] : v.dict_ref().items) out.push_back(k);
      return out;
    }
    case Value::Kind::kString: {
      ValueList out;
      for (char32_t c : utf8_decode(v.str_ref()))
        out.emplace_back(utf8_encode(std::u32string(1, c)));
      return out;
    }
    default:
      runtime_error("'" + v.type_name() + "' object is not iterable");
  }
}

bool Interpreter::contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (item.is_undefined()) undefined_error(item);
    if (!item.is_string())
      runtime_error("'in <string>' requires string as left operand, not " + item.type_name());
    return container.str_ref().find(item.str_ref()) != std::string::npos;
  }
  if (container.is_dict()) return container.dict_ref().find(item) != nullptr;
  if (container.is_list()) {
    for (const auto& v : container.items())
      if (v.equals(item)) return true;
    return false;
  }
  if (container.is_undefined()) return false;
  runtime_error("argument of type '" + container.type_name() + "' is not iterable");
}

// ---- filters -----------------------------------------------------------------------------------

Value Interpreter::apply_filter(const std::string& name, const Value& v, const CallArgs& a) {
  auto seq = [&]() { return iterate(v); };
  auto soft_str = [&]() { return v.str(); };
  if (name == "tojson"sv) return filter_tojson(v, a);
  if (name == "trim"sv) return Value(py_strip(soft_str(), a.get(0, "chars"), true, true));
  if (name == "upper"sv) return Value(py_upper(soft_str()));
  if (name == "lower"sv) return Value(py_lower(soft_str()));
  if (name == "capitalize"sv) return Value(py_capitalize(soft_str()));
  if (name == "title"sv) return Value(jinja_title(soft_str()));
  if (name == "length"sv || name == "count"sv) {
    if (v.is_undefined()) return Value(static_cast<int64_t>(0));
    if (v.is_string()) return Value(static_cast<int64_t>(utf8_length(v.str_ref())));
    if (v.is_list()) return Value(static_cast<int64_t>(v.items().size()));
    if (v.is_dict()) return Value(static_cast<int64_t>(v.dict_ref().items.size()));
    runtime_error("object of type '" + v.type_name() + "' has no len()");
  }
  if (name == "first"sv) {
    ValueList s = seq();
    if (s.empty()) return Value::undefined("No first item, sequence was empty.");
    return s.front();
  }
  if (name == "last"sv) {
    if (!(v.is_list() || v.is_string() || v.is_dict() || v.is_undefined()))
      runtime_error("'" + v.type_name() + "' object is not reversible");
    ValueList s = seq();
    if (s.empty()) return Value::undefined("No last item, sequence was empty.");
    return s.back();
  }
  if (name == "join"sv) {
    const Value* d = a.get(0, "d");
    const Value* attribute = a.get(1, "attribute");
    std::string sep = d ? d->str() : "";
    std::string out;
    ValueList s = seq();
    for (size_t i = 0; i < s.size(); ++i) {
      if (i) out += sep;
      out +=
          (attribute && !attribute->is_none() ? get_path(*this, s[i], *attribute, nullptr) : s[i])
              .str();
      check_string_size(out.size(), "join");
    }
    return Value(std::move(out));
  }
  if (name == "default"sv || name == "d"sv) {
    const Value* def = a.get(0, "default_value");
    bool boolean = arg_bool(a.get(1, "boolean"), false);
    if (v.is_undefined() || (boolean && !v.truthy())) return def ? *def : Value("");
    return v;
  }
  if (name == "string"sv) return Value(soft_str());
  if (name == "safe"sv) return v.is_string() ? v : Value(soft_str());
  if (name == "e"sv || name == "escape"sv || name == "forceescape"sv)
    return Value(html_escape(soft_str()));
  if (name == "int"sv) {
    const Value* def = a.get(0, "default");
    int64_t base = arg_int(a.get(1, "base"), 10, "int");
    Value dflt = def ? *def : Value(static_cast<int64_t>(0));
    if (v.is_undefined()) undefined_error(v);
    if (v.is_int() || v.is_bool()) return Value(v.to_int());
    if (v.is_float()) {
      double d = v.as_float();
      if (!std::isfinite(d)) return dflt;
      return Value(static_cast<int64_t>(d));
    }
    if (v.is_string()) {
      int64_t i;
      if (parse_py_int(v.str_ref(), base, i)) return Value(i);
      double d;
      if (parse_py_float(v.str_ref(), d) && std::isfinite(d)) return Value(static_cast<int64_t>(d));
    }
    return dflt;
  }
  if (name == "float"sv) {
    const Value* def = a.get(0, "default");
    Value dflt = def ? *def : Value(0.0);
    if (v.is_undefined()) undefined_error(v);
    if (v.is_number()) return Value(v.to_double());
    double d;
    if (v.is_string() && parse_py_float(v.str_ref(), d)) return Value(d);
    return dflt;
  }
  if (name == "abs"sv) {
    if (v.is_undefined()) undefined_error(v);
    if (v.is_float()) return Value(std::fabs(v.as_float()));
    if (v.is_number()) return Value(v.to_int() < 0 ? -v.to_int() : v.to_int());
    runtime_error("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "list"sv) return Value::list(seq());
  if (name == "reverse"sv) {
    if (v.is_string()) {
      std::u32string u = utf8_decode(v.str_ref());
      std::reverse(u.begin(), u.end());
      return Value(utf8_encode(u));
    }
    ValueList s = seq();
    std::reverse(s.begin(), s.end());
    return Value::list(std::move(s));
  }
  if (name == "replace"sv) {
    const Value* old = a.get(0, "old");
    const Value* nw = a.get(1, "new");
    if (!old || !nw) runtime_error("replace filter needs 'old' and 'new'");
    return Value(
        py_replace(soft_str(), old->str(), nw->str(), arg_int(a.get(2, "count"), -1, "count")));
  }
  if (name == "items"sv) {
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict()) runtime_error("Can only get item pairs from a mapping.");
    ValueList out;
    for (const auto& [k, x] : v.dict_ref().items) out.push_back(Value::tuple({k, x}));
    return Value::list(std::move(out));
  }
  if (name == "dictsort"sv) {
    bool cs = arg_bool(a.get(0, "case_sensitive"), false);
    const Value* by = a.get(1, "by");
    bool rev = arg_bool(a.get(2, "reverse"), false);
    size_t pos = 0;
    if (by && !(by->is_string() && by->str_ref() == "key")) {
      if (by->is_string() && by->str_ref() == "value")
        pos = 1;
      else
        runtime_error("You can only sort by either \"key\" or \"value\"");
    }
    if (!v.is_dict()) runtime_error("dictsort: expected a mapping, got " + v.type_name());
    ValueList out;
    for (const auto& [k, x] : v.dict_ref().items) out.push_back(Value::tuple({k, x}));
    std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
      Value kx = x.items()[pos], ky = y.items()[pos];
      if (!cs) {
        kx = ignore_case(kx);
        ky = ignore_case(ky);
      }
      return rev ? py_less(ky, kx) : py_less(kx, ky);
    });
    return Value::list(std::move(out));
  }
  if (name == "sort"sv) {
    bool rev = arg_bool(a.get(0, "reverse"), false);
    bool cs = arg_bool(a.get(1, "case_sensitive"), false);
    const Value* attribute = a.get(2, "attribute");
    ValueList s = seq();
    std::vector<std::pair<Value, Value>> keyed;
    for (auto& x : s) {
      Value k = attribute && !attribute->is_none() ? get_path(*this, x, *attribute, nullptr) : x;
      keyed.emplace_back(cs ? k : ignore_case(k), x);
    }
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
      return rev ? py_less(y.first, x.first) : py_less(x.first, y.first);
    });
    ValueList out;
    for (auto& [k, x] : keyed) out.push_back(x);
    return Value::list(std::move(out));
  }
  if (name == "unique"sv) {
    bool cs = arg_bool(a.get(0, "case_sensitive"), false);
    const Value* attribute = a.get(1, "attribute");
    ValueList out, seen;
    for (auto& x : seq()) {
      Value k = attribute && !attribute->is_none() ? get_path(*this, x, *attribute, nullptr) : x;
      if (!cs) k = ignore_case(k);
      bool dup = false;
      for (const auto& s : seen) dup = dup || s.equals(k);
      if (!dup) {
        seen.push_back(k);
        out.push_back(x);
      }
    }
    return Value::list(std::move(out));
  }
  if (name == "min"sv || name == "max"sv) {
    bool cs = arg_bool(a.get(0, "case_sensitive"), false);
    const Value* attribute = a.get(1, "attribute");
    ValueList s = seq();
    if (s.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    size_t best = 0;
    Value best_key;
    for (size_t i = 0; i < s.size(); ++i) {
      Value k =
          attribute && !attribute->is_none() ? get_path(*this, s[i], *attribute, nullptr) : s[i];
      if (!cs) k = ignore_case(k);
      if (i == 0 || (name == "min"sv ? py_less(k, best_key) : py_less(best_key, k))) {
        best = i;
        best_key = k;
      }
    }
    return s[best];
  }
  if (name == "sum"sv) {
    const Value* attribute = a.get(0, "attribute");
    const Value* start = a.get(1, "start");
    ValueList s = seq();
    if (attribute && !attribute->is_none())
      for (auto& x : s) x = get_path(*this, x, *attribute, nullptr);
    return py_sum(s, start ? *start : Value(static_cast<int64_t>(0)));
  }
  if (name == "round"sv) {
    const Value* m = a.get(1, "method");
    return py_round(v, arg_int(a.get(0, "precision"), 0, "round"),
                    m ? arg_str(m, "round") : "common");
  }
  if (name == "indent"sv) {
    const Value* w = a.get(0, "width");
    std::string ind =
        w && w->is_string()
            ? w->str_ref()
            : std::string(static_cast<size_t>(std::clamp<int64_t>(arg_int(w, 4, "indent"), 0,
                                                                  int64_t(kMaxStringBytes) + 1)),
                          ' ');
    check_string_size(ind.size(), "indent");
    bool first = arg_bool(a.get(1, "first"), false);
    bool blank = arg_bool(a.get(2, "blank"), false);
    std::string s = soft_str() + "\n";
    std::vector<std::string> lines = splitlines_for_indent(s);
    check_string_size(s.size() + uint64_t(ind.size()) * (lines.size() + 1), "indent");
    std::string rv;
    if (blank) {
      for (size_t i = 0; i < lines.size(); ++i) {
        if (i) rv += "\n" + ind;
        rv += lines[i];
      }
    } else {
      rv = lines.empty() ? "" : lines[0];
      if (lines.size() > 1) {
        rv += "\n";
        for (size_t i = 1; i < lines.size(); ++i) {
          if (i > 1) rv += "\n";
          rv += lines[i].empty() ? lines[i] : ind + lines[i];
        }
      }
    }
    if (first) rv = ind + rv;
    return Value(std::move(rv));
  }
  if (name == "wordcount"sv) {
    std::u32string u = utf8_decode(soft_str());
    int64_t n = 0;
    bool in = false;
    for (char32_t c : u) {
      bool w = is_word_c(c);
      if (w && !in) ++n;
      in = w;
    }
    return Value(n);
  }
  if (name == "center"sv) {
    int64_t w = arg_int(a.get(0, "width"), 80, "center");
    CallArgs ca;
    ca.args.emplace_back(w);
    return call(string_method(Value(soft_str()), "center"), ca);
  }
  if (name == "batch"sv) {
    int64_t n = arg_int(a.get(0, "linecount"), 1, "batch");
    if (n <= 0) runtime_error("batch: linecount must be positive");
    if (uint64_t(n) > kMaxListItems)
      runtime_error("batch: linecount is more than " + std::to_string(kMaxListItems) +
                    " (the template limit)");
    const Value* fill = a.get(1, "fill_with");
    ValueList out, cur;
    for (auto& x : seq()) {
      if (static_cast<int64_t>(cur.size()) == n) {
        out.push_back(Value::list(std::move(cur)));
        cur.clear();
      }
      cur.push_back(x);
    }
    if (!cur.empty()) {
      if (fill && !fill->is_none())
        while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
      out.push_back(Value::list(std::move(cur)));
    }
    return Value::list(std::move(out));
  }
  if (name == "attr"sv) {
    // Attribute only (no item lookup): a dict's keys are not attributes.
    const std::string& n = arg_str(a.get(0, "name"), "attr");
    if (v.is_dict()) {
      Value m = dict_method(v, n);
      if (!m.is_undefined() || !m.undefined_message().empty()) return m;
      return undefined_attr(v, n);
    }
    return getattr(v, n);
  }
  if (name == "map"sv) {
    if (!v.truthy()) return Value::list({});
    ValueList out;
    if (a.args.empty()) {
      const Value* attribute = nullptr;
      const Value* def = nullptr;
      for (const auto& [k, x] : a.kwargs) {
        if (k == "attribute")
          attribute = &x;
        else if (k == "default")
          def = &x;
        else
          runtime_error("Unexpected keyword argument '" + k + "'");
      }
      if (!attribute) runtime_error("map requires a filter argument");
      for (auto& x : seq()) out.push_back(get_path(*this, x, *attribute, def));
    } else {
      std::string fname = arg_str(&a.args[0], "map");
      if (!is_known_filter(fname)) runtime_error("No filter named '" + fname + "'.");
      CallArgs rest;
      rest.args.assign(a.args.begin() + 1, a.args.end());
      rest.kwargs = a.kwargs;
      for (auto& x : seq()) out.push_back(apply_filter(fname, x, rest));
    }
    return Value::list(std::move(out));
  }
  if (name == "select"sv || name == "reject"sv || name == "selectattr"sv ||
      name == "rejectattr"sv) {
    bool attr = name == "selectattr"sv || name == "rejectattr"sv;
    bool want = name == "select"sv || name == "selectattr"sv;
    if (!v.truthy()) return Value::list({});
    size_t off = 0;
    Value attribute;
    if (attr) {
      if (a.args.empty()) runtime_error("Missing parameter for attribute name");
      attribute = a.args[0];
      off = 1;
    }
    std::string test;
    CallArgs targs;
    bool has_test = a.args.size() > off;
    if (has_test) {
      test = arg_str(&a.args[off], name.c_str());
      if (!is_known_test(test)) runtime_error("No test named '" + test + "'.");
      targs.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(off + 1), a.args.end());
      targs.kwargs = a.kwargs;
    }
    ValueList out;
    for (auto& x : seq()) {
      Value t = attr ? get_path(*this, x, attribute, nullptr) : x;
      bool r = has_test ? apply_test(test, t, targs) : t.truthy();
      if (r == want) out.push_back(x);
    }
    return Value::list(std::move(out));
  }
  runtime_error("No filter named '" + name + "'.");
}

// ---- tests -------------------------------------------------------------------------------------

bool Interpreter::apply_test(const std::string& name, const Value& v, const CallArgs& a) {
  auto arg = [&](size_t i, const char* n) -> const Value& {
    const Value* x = a.get(i, n);
    if (!x) runtime_error("test '" + name + "' needs an argument");
    return *x;
  };
  auto num_mod = [&](const Value& x, const Value& m) -> bool {
    if (x.is_undefined()) undefined_error(x);
    if (!x.is_number() || !m.is_number())
      runtime_error("unsupported operand type(s) for %: '" + x.type_name() + "' and '" +
                    m.type_name() + "'");
    if (!x.is_float() && !m.is_float()) {
      if (m.to_int() == 0) runtime_error("integer division or modulo by zero");
      int64_t r = x.to_int() % m.to_int();
      return r == 0;
    }
    if (m.to_double() == 0.0) runtime_error("float modulo");
    return std::fmod(x.to_double(), m.to_double()) == 0.0;
  };
  if (name == "defined"sv) return !v.is_undefined();
  if (name == "undefined"sv) return v.is_undefined();
  if (name == "none"sv) return v.is_none();
  if (name == "boolean"sv) return v.is_bool();
  if (name == "true"sv) return v.is_bool() && v.as_bool();
  if (name == "false"sv) return v.is_bool() && !v.as_bool();
  if (name == "integer"sv) return v.is_int();
  if (name == "float"sv) return v.is_float();
  if (name == "number"sv) return v.is_number();
  if (name == "string"sv) return v.is_string();
  if (name == "mapping"sv) return v.is_dict();
  if (name == "iterable"sv) return v.is_undefined() || v.is_list() || v.is_dict() || v.is_string();
  if (name == "sequence"sv) return v.is_undefined() || v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable"sv) return v.is_callable();
  if (name == "escaped"sv) return false;
  if (name == "lower"sv || name == "upper"sv) {
    std::u32string u = utf8_decode(v.str());
    bool any = false;
    for (char32_t c : u) {
      if (name == "lower"sv ? is_upper_c(c) : is_lower_c(c)) return false;
      any = any || is_cased(c);
    }
    return any;
  }
  if (name == "odd"sv || name == "even"sv) {
    if (v.is_undefined()) undefined_error(v);
    if (!v.is_number())
      runtime_error("unsupported operand type(s) for %: '" + v.type_name() + "' and 'int'");
    if (v.is_float()) {
      double m = std::fmod(v.as_float(), 2.0);
      if (m < 0) m += 2.0;
      return name == "odd"sv ? m == 1.0 : m == 0.0;
    }
    int64_t m = v.to_int() % 2;
    return name == "odd"sv ? m != 0 : m == 0;
  }
  if (name == "divisibleby"sv) return num_mod(v, arg(0, "num"));
  if (name == "in"sv) return contains(arg(0, "seq"), v);
  if (name == "sameas"sv) {
    const Value& o = arg(0, "other");
    if (v.is_none() || v.is_bool() || o.is_none() || o.is_bool())
      return v.kind() == o.kind() && v.equals(o);
    if (v.is_object() && o.is_object()) return v.object_ptr() == o.object_ptr();
    return false;
  }
  if (name == "filter"sv) return v.is_string() && is_known_filter(v.str_ref());
  if (name == "test"sv) return v.is_string() && is_known_test(v.str_ref());
  if (name == "=="sv || name == "eq"sv || name == "equalto"sv) return v.equals(arg(0, "other"));
  if (name == "!="sv || name == "ne"sv) return !v.equals(arg(0, "other"));
  const Value& o = arg(0, "other");
  if (v.is_undefined()) undefined_error(v);
  if (o.is_undefined()) undefined_error(o);
  if (name == "<"sv || name == "lt"sv || name == "lessthan"sv) return py_less(v, o);
  if (name == ">"sv || name == "gt"sv || name == "greaterthan"sv) return py_less(o, v);
  if (name == "<="sv || name == "le"sv) return !py_less(o, v);
  if (name == ">="sv || name == "ge"sv) return !py_less(v, o);
  runtime_error("No test named '" + name + "'.");
}

// ---- globals -----------------------------------------------------------------------------------

void install_globals(Frame& frame) {
  frame.set("range", Value::callable("range", [](Interpreter&, const CallArgs& a) {
              if (a.args.empty() || a.args.size() > 3)
                runtime_error("range expected 1 to 3 arguments");
              int64_t start = 0, stop, step = 1;
              if (a.args.size() == 1) {
                stop = arg_int(&a.args[0], 0, "range");
              } else {
                start = arg_int(&a.args[0], 0, "range");
                stop = arg_int(&a.args[1], 0, "range");
                if (a.args.size() == 3) step = arg_int(&a.args[2], 1, "range");
              }
              if (step == 0) runtime_error("range() arg 3 must not be zero");
              ValueList out;
              for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                if (out.size() >= 100000)
                  runtime_error(
                      "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
                out.emplace_back(i);
              }
              return Value::list(std::move(out));
            }));
  frame.set("dict", Value::callable("dict", [](Interpreter& in, const CallArgs& a) {
              Dict d;
              if (!a.args.empty()) {
                if (a.args[0].is_dict()) {
                  d = a.args[0].dict_ref();
                } else {
                  for (auto& pair : in.iterate(a.args[0])) {
                    ValueList kv = in.iterate(pair);
                    if (kv.size() != 2)
                      runtime_error("dictionary update sequence element has wrong length");
                    d.set(kv[0], kv[1]);
                  }
                }
              }
              for (const auto& [k, v] : a.kwargs) d.set(Value(k), v);
              return Value::dict(std::move(d));
            }));
  frame.set("namespace", Value::callable("namespace", [](Interpreter&, const CallArgs& a) {
              auto ns = std::make_shared<Namespace>();
              for (const auto& init : a.args) {
                if (!init.is_dict())
                  runtime_error("namespace() positional argument must be a mapping");
                for (const auto& [k, v] : init.dict_ref().items) ns->set_attr(k.str(), v);
              }
              for (const auto& [k, v] : a.kwargs) ns->set_attr(k, v);
              return Value(std::shared_ptr<Object>(ns));
            }));
  frame.set("raise_exception",
            Value::callable("raise_exception", [](Interpreter&, const CallArgs& a) -> Value {
              const Value* m = a.get(0, "message");
              throw TemplateError(TemplateError::Kind::kRaised, m ? m->str() : "", 0);
            }));
  frame.set("strftime_now", Value::callable("strftime_now", [](Interpreter& in, const CallArgs& a) {
              const Value* f = a.get(0, "format");
              if (!f || !f->is_string()) runtime_error("strftime_now() expects a format string");
              std::tm tm{};
              if (in.options().now) {
                tm = in.options().now();
              } else {
                std::time_t t = std::time(nullptr);
                localtime_r(&t, &tm);
              }
              char buf[512];
              size_t n = std::strftime(buf, sizeof buf, f->str_ref().c_str(), &tm);
              return Value(std::string(buf, n));
            }));
}

}  // namespace inferd::jinja
