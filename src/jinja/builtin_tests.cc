// The jinja2 tests (`x is defined`, `x is divisibleby 3`, ...) with the semantics of jinja2 3.1's
// tests.py.
#include <cmath>
#include <set>
#include <string>

#include "jinja/ast.h"
#include "jinja/builtins.h"

namespace inferd::jinja {

using namespace std::literals;

namespace {

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

bool is_known_test(const std::string& name) {
  return test_names().count(name) > 0;
}

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

}  // namespace inferd::jinja
