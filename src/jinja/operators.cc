// Python's operators for the jinja interpreter (operators.h): arithmetic with Python's integer
// and float rules, printf-style `%` formatting, sequence repetition, comparisons (py_less is
// Python's `<`), and slicing.
#include "jinja/operators.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

namespace inferd::jinja {

using namespace std::literals;

namespace {

std::string type_for_msg(const Value& v) {
  return v.type_name();
}

[[noreturn]] void unsupported(const char* op, const Value& a, const Value& b) {
  runtime_error(std::string("unsupported operand type(s) for ") + op + ": '" + type_for_msg(a) +
                "' and '" + type_for_msg(b) + "'");
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  int64_t m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0.0) {
    if ((b < 0) != (m < 0)) m += b;
  } else {
    m = std::copysign(0.0, b);
  }
  return m;
}

Value repeat_seq(const Value& seq, int64_t n) {
  if (n <= 0)
    return seq.is_string()  ? Value(std::string())
           : seq.is_tuple() ? Value::tuple({})
                            : Value::list({});
  if (seq.is_string()) {
    check_string_size(uint64_t(seq.str_ref().size()) * uint64_t(std::min<int64_t>(n, 1ll << 40)),
                      "'*'");
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str_ref();
    return Value(std::move(out));
  }
  if (!seq.items().empty() && uint64_t(n) > kMaxListItems / seq.items().size())
    runtime_error("'*' would build a list of more than " + std::to_string(kMaxListItems) +
                  " items (the template limit)");
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

// Python's printf-style `fmt % args` for the conversions templates use.
std::string printf_format(const std::string& fmt, const Value& args) {
  ValueList positional;
  const Dict* mapping = nullptr;
  if (args.is_tuple()) {
    positional = args.items();
  } else {
    positional.push_back(args);
    if (args.is_dict()) mapping = &args.dict_ref();
  }
  size_t next_arg = 0;
  bool used_mapping = false;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) runtime_error("incomplete format");
    if (fmt[i] == '%') {
      out.push_back('%');
      continue;
    }
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      size_t e = fmt.find(')', i);
      if (e == std::string::npos) runtime_error("incomplete format key");
      if (!mapping) runtime_error("format requires a mapping");
      arg = mapping->find_str(std::string_view(fmt).substr(i + 1, e - i - 1));
      if (!arg) runtime_error("'" + fmt.substr(i + 1, e - i - 1) + "'");
      used_mapping = true;
      i = e + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos)
      flags += fmt[i++];
    std::string width, precision;
    while (i < fmt.size() && isdigit(static_cast<unsigned char>(fmt[i]))) width += fmt[i++];
    if (width.size() > 6) runtime_error("format width " + width + " is too large");
    bool has_precision = false;
    if (i < fmt.size() && fmt[i] == '.') {
      has_precision = true;
      ++i;
      while (i < fmt.size() && isdigit(static_cast<unsigned char>(fmt[i]))) precision += fmt[i++];
      if (precision.size() > 6) runtime_error("format precision " + precision + " is too large");
    }
    if (i >= fmt.size()) runtime_error("incomplete format");
    char conv = fmt[i];
    if (!arg) {
      if (next_arg >= positional.size()) runtime_error("not enough arguments for format string");
      arg = &positional[next_arg++];
    }
    std::string piece;
    if (conv == 's' || conv == 'r' || conv == 'a') {
      std::u32string u = utf8_decode(conv == 's' ? arg->str() : arg->repr());
      if (has_precision)
        u = u.substr(0, static_cast<size_t>(precision.empty() ? 0 : std::stoul(precision)));
      size_t w = width.empty() ? 0 : std::stoul(width);
      std::u32string pad(u.size() < w ? w - u.size() : 0, U' ');
      piece = utf8_encode(flags.find('-') != std::string::npos ? u + pad : pad + u);
    } else if (std::string_view("diuxXoeEfFgGc").find(conv) != std::string_view::npos) {
      if (arg->is_undefined()) undefined_error(*arg);
      if (!arg->is_number())
        runtime_error(std::string("%") + conv + " format: a real number is required, not " +
                      arg->type_name());
      std::string spec = "%" + flags + width + (has_precision ? "." + precision : "");
      char buf[512];
      if (conv == 'c') {
        std::string ch;
        utf8_append(ch, static_cast<char32_t>(arg->to_double()));
        piece = ch;
      } else if (std::string_view("diuxXo").find(conv) != std::string_view::npos) {
        long long v = arg->is_float() ? static_cast<long long>(arg->as_float())
                                      : static_cast<long long>(arg->to_int());
        spec += std::string("ll") + (conv == 'i' || conv == 'u' ? 'd' : conv);
        std::snprintf(buf, sizeof buf, spec.c_str(), v);
        piece = buf;
      } else {
        spec += conv;
        std::snprintf(buf, sizeof buf, spec.c_str(), arg->to_double());
        piece = buf;
      }
    } else {
      runtime_error(std::string("unsupported format character '") + conv + "'");
    }
    out += piece;
  }
  if (!used_mapping && next_arg < positional.size() && !mapping)
    runtime_error("not all arguments converted during string formatting");
  return out;
}

// Python slice indices for a sequence of length n.
ValueList slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step_v) {
  auto to_i = [&](const Value& v) {
    if (v.is_int() || v.is_bool()) return v.to_int();
    runtime_error("slice indices must be integers or None or have an __index__ method");
  };
  int64_t step = step_v.is_none() || step_v.is_undefined() ? 1 : to_i(step_v);
  if (step == 0) runtime_error("slice step cannot be zero");
  int64_t lo, hi;
  if (step > 0) {
    lo = 0;
    hi = n;
  } else {
    lo = -1;
    hi = n - 1;
  }
  auto adjust = [&](const Value& v, int64_t def) {
    if (v.is_none() || v.is_undefined()) return def;
    int64_t i = to_i(v);
    if (i < 0) {
      i += n;
      if (i < lo) i = lo;
    } else if (i > hi) {
      i = hi;
    }
    return i;
  };
  int64_t b = adjust(start, step > 0 ? lo : hi);
  int64_t e = adjust(stop, step > 0 ? hi : lo);
  ValueList idx;
  if (step > 0) {
    for (int64_t i = b; i < e; i += step) idx.emplace_back(i);
  } else {
    for (int64_t i = b; i > e; i += step) idx.emplace_back(i);
  }
  return idx;
}

}  // namespace

Value binary_op(int op, const Value& a, const Value& b) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  bool nums = a.is_number() && b.is_number();
  bool ints = nums && !a.is_float() && !b.is_float();
  if (op == kOpAdd) {
    if (ints) {
      int64_t r = 0;
      if (__builtin_add_overflow(a.to_int(), b.to_int(), &r)) runtime_error("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.to_double() + b.to_double());
    if (a.is_string() && b.is_string()) {
      check_string_size(a.str_ref().size() + b.str_ref().size(), "'+'");
      return Value(a.str_ref() + b.str_ref());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      if (a.items().size() + b.items().size() > kMaxListItems)
        runtime_error("'+' would build a list of more than " + std::to_string(kMaxListItems) +
                      " items (the template limit)");
      ValueList out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return a.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
    if (a.is_string())
      runtime_error("can only concatenate str (not \"" + type_for_msg(b) + "\") to str");
    if (a.is_list())
      runtime_error("can only concatenate " + type_for_msg(a) + " (not \"" + type_for_msg(b) +
                    "\") to " + type_for_msg(a));
    unsupported("+", a, b);
  }
  if (op == kOpSub) {
    if (ints) {
      int64_t r = 0;
      if (__builtin_sub_overflow(a.to_int(), b.to_int(), &r)) runtime_error("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.to_double() - b.to_double());
    unsupported("-", a, b);
  }
  if (op == kOpMul) {
    if (ints) {
      int64_t r = 0;
      if (__builtin_mul_overflow(a.to_int(), b.to_int(), &r)) runtime_error("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.to_double() * b.to_double());
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()))
      return repeat_seq(a, b.to_int());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool()))
      return repeat_seq(b, a.to_int());
    if (a.is_string() || b.is_string() || a.is_list() || b.is_list())
      runtime_error("can't multiply sequence by non-int of type '" +
                    type_for_msg((a.is_string() || a.is_list()) ? b : a) + "'");
    unsupported("*", a, b);
  }
  if (op == kOpDiv) {
    if (!nums) unsupported("/", a, b);
    if (b.to_double() == 0.0) runtime_error(ints ? "division by zero" : "float division by zero");
    return Value(a.to_double() / b.to_double());
  }
  if (op == kOpFloorDiv) {
    if (!nums) unsupported("//", a, b);
    if (ints) {
      if (b.to_int() == 0) runtime_error("integer division or modulo by zero");
      return Value(floor_div(a.to_int(), b.to_int()));
    }
    if (b.to_double() == 0.0) runtime_error("float floor division by zero");
    double vx = a.to_double(), wx = b.to_double();
    double mod = std::fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod != 0.0) {
      if ((wx < 0) != (mod < 0)) div -= 1.0;
    }
    double floordiv;
    if (div != 0.0) {
      floordiv = std::floor(div);
      if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
      floordiv = std::copysign(0.0, vx / wx);
    }
    return Value(floordiv);
  }
  if (op == kOpMod) {
    if (ints) {
      if (b.to_int() == 0) runtime_error("integer division or modulo by zero");
      return Value(py_mod(a.to_int(), b.to_int()));
    }
    if (nums) {
      if (b.to_double() == 0.0) runtime_error("float modulo");
      return Value(py_fmod(a.to_double(), b.to_double()));
    }
    if (a.is_string()) return Value(printf_format(a.str_ref(), b));
    unsupported("%", a, b);
  }
  if (op == kOpPow) {
    if (ints && b.to_int() >= 0) {
      int64_t base = a.to_int(), e = b.to_int(), r = 1;
      for (int64_t i = 0; i < e; ++i) {
        if (__builtin_mul_overflow(r, base, &r)) runtime_error("integer overflow");
        if (r == 0 || r == 1) break;
      }
      return Value(r);
    }
    if (nums) {
      if (a.to_double() == 0.0 && b.to_double() < 0)
        runtime_error("0.0 cannot be raised to a negative power");
      return Value(std::pow(a.to_double(), b.to_double()));
    }
    unsupported("** or pow()", a, b);
  }
  runtime_error("unknown operator");
}

bool compare(int op, const Value& a, const Value& b, Interpreter& in) {
  if (op == kOpEq) return a.equals(b);
  if (op == kOpNe) return !a.equals(b);
  if (op == kOpIn) return in.contains(b, a);
  if (op == kOpNotIn) return !in.contains(b, a);
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  if (op == kOpLt) return py_less(a, b);
  if (op == kOpGt) return py_less(b, a);
  if (op == kOpLe)
    return !py_less(b, a) && (py_less(a, b) || a.equals(b) || (a.is_number() && b.is_number()));
  if (op == kOpGe)
    return !py_less(a, b) && (py_less(b, a) || a.equals(b) || (a.is_number() && b.is_number()));
  runtime_error("unknown comparison");
}

Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_string()) {
    std::u32string u = utf8_decode(obj.str_ref());
    ValueList idx = slice_indices(static_cast<int64_t>(u.size()), start, stop, step);
    std::u32string r;
    for (const auto& i : idx) r.push_back(u[static_cast<size_t>(i.as_int())]);
    return Value(utf8_encode(r));
  }
  if (obj.is_list()) {
    ValueList idx = slice_indices(static_cast<int64_t>(obj.items().size()), start, stop, step);
    ValueList r;
    for (const auto& i : idx) r.push_back(obj.items()[static_cast<size_t>(i.as_int())]);
    return obj.is_tuple() ? Value::tuple(std::move(r)) : Value::list(std::move(r));
  }
  runtime_error("'" + obj.type_name() + "' object is not subscriptable");
}

bool py_less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) return a.to_int() < b.to_int();
    return a.to_double() < b.to_double();
  }
  if (a.is_string() && b.is_string()) return a.str_ref() < b.str_ref();
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (x[i].equals(y[i])) continue;
      return py_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  runtime_error("'<' not supported between instances of '" + a.type_name() + "' and '" +
                b.type_name() + "'");
}

}  // namespace inferd::jinja
