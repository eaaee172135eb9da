// The Python methods of str, dict and list values that templates call (builtins.h): each lookup
// returns a bound callable, or Undefined when the value has no such method; the methods that would
// mutate a dict or list are refused as unsafe (jinja2's sandbox).
#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <string>

#include "jinja/builtins.h"
#include "jinja/lexer.h"

namespace inferd::jinja {

using namespace std::literals;

namespace {

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() +
                          "' object is unsafe.");
}

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

// Simple str.format: {} {0} {name} fields without format specs, {{ and }} escapes.
std::string py_format(const std::string& f, const CallArgs& a) {
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
  return out;
}

// strip / lstrip / rstrip, split / rsplit, startswith / endswith.
Value strip_split_method(const Value& self, const std::string& name) {
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
  return Value();
}

// upper, lower, title, capitalize, swapcase.
Value case_method(const Value& self, const std::string& name) {
  using A = const CallArgs&;
  using I = Interpreter&;
  using V = const Value&;
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
  return Value();
}

// replace, find / rfind / index / rindex / count.
Value search_method(const Value& self, const std::string& name) {
  using A = const CallArgs&;
  using I = Interpreter&;
  using V = const Value&;
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
  return Value();
}

// join, splitlines, removeprefix / removesuffix, partition / rpartition.
Value join_partition_method(const Value& self, const std::string& name) {
  using A = const CallArgs&;
  using I = Interpreter&;
  using V = const Value&;
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
  return Value();
}

// isdigit, isnumeric, isdecimal, isalpha, isalnum, isspace, isupper, islower.
Value predicate_method(const Value& self, const std::string& name) {
  using A = const CallArgs&;
  using I = Interpreter&;
  using V = const Value&;
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
  return Value();
}

// zfill, center / ljust / rjust, format.
Value layout_method(const Value& self, const std::string& name) {
  using A = const CallArgs&;
  using I = Interpreter&;
  using V = const Value&;
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
    return bound(name, self, [](I, V s, A a) { return Value(py_format(s.str_ref(), a)); });
  return Value();
}

}  // namespace

Value string_method(const Value& self, const std::string& name) {
  for (auto* group : {strip_split_method, case_method, search_method, join_partition_method,
                      predicate_method, layout_method}) {
    Value m = group(self, name);
    if (!m.is_undefined()) return m;
  }
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

}  // namespace inferd::jinja
