#include "jinja/interpreter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace inferd::jinja {

using namespace std::literals;

namespace {

constexpr int kMaxCallDepth = 128;

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

class LoopObject : public Object {
 public:
  LoopObject(std::shared_ptr<const ValueList> items, size_t index0)
      : items_(std::move(items)), i_(index0) {}
  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(i_ + 1) + "/" + std::to_string(items_->size()) + ">";
  }
  std::optional<Value> get_attr(std::string_view name) const override {
    int64_t n = static_cast<int64_t>(items_->size());
    int64_t i = static_cast<int64_t>(i_);
    if (name == "index"sv) return Value(i + 1);
    if (name == "index0"sv) return Value(i);
    if (name == "revindex"sv) return Value(n - i);
    if (name == "revindex0"sv) return Value(n - i - 1);
    if (name == "first"sv) return Value(i == 0);
    if (name == "last"sv) return Value(i == n - 1);
    if (name == "length"sv) return Value(n);
    if (name == "depth"sv) return Value(1);
    if (name == "depth0"sv) return Value(0);
    if (name == "previtem"sv) {
      if (i == 0) return Value::undefined("there is no previous item");
      return (*items_)[i_ - 1];
    }
    if (name == "nextitem"sv) {
      if (i + 1 >= n) return Value::undefined("there is no next item");
      return (*items_)[i_ + 1];
    }
    if (name == "cycle"sv) {
      size_t idx = i_;
      return Value::callable("loop.cycle", [idx](Interpreter&, const CallArgs& a) -> Value {
        if (a.args.empty()) runtime_error("no items for cycling given");
        return a.args[idx % a.args.size()];
      });
    }
    return std::nullopt;
  }

 private:
  std::shared_ptr<const ValueList> items_;
  size_t i_;
};

}  // namespace

[[noreturn]] void runtime_error(const std::string& msg) {
  throw TemplateError(TemplateError::Kind::kRuntime, msg, 0);
}

[[noreturn]] void undefined_error(const Value& v) {
  runtime_error(v.undefined_message());
}

TemplateError::TemplateError(Kind kind, const std::string& message, int line)
    : Error(kind == Kind::kRaised ? message
            : line > 0            ? fmt::format("chat template {} error at line {}: {}",
                                     kind == Kind::kSyntax ? "syntax" : "render", line, message)
                                  : fmt::format("chat template {} error: {}",
                                     kind == Kind::kSyntax ? "syntax" : "render", message)),
      kind_(kind),
      message_(message),
      line_(line) {}

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

void check_string_size(uint64_t bytes, const char* what) {
  if (bytes > kMaxStringBytes)
    runtime_error(std::string(what) + " would build a string of " + std::to_string(bytes) +
                  " bytes, more than the template limit of " + std::to_string(kMaxStringBytes) +
                  " bytes");
}

Interpreter::Interpreter(const RenderOptions& options) : options_(options) {}

void Interpreter::count_step() {
  if (++steps_ > kMaxRenderSteps)
    runtime_error("the template ran more than " + std::to_string(kMaxRenderSteps) +
                  " statements and loop iterations (the template limit)");
}

std::string Interpreter::render(const StmtList& body, const Value& context) {
  globals_ = std::make_shared<Frame>(nullptr);
  install_globals(*globals_);
  auto root = std::make_shared<Frame>(globals_);
  if (context.is_dict()) {
    for (const auto& [k, v] : context.dict_ref().items)
      if (k.is_string()) root->set(k.str_ref(), v);
  }
  std::string out;
  exec(body, root, out);
  return out;
}

Interpreter::Flow Interpreter::exec(const StmtList& body, const FramePtr& frame, std::string& out) {
  for (const auto& s : body) {
    Flow f = exec_stmt(*s, frame, out);
    // Any output buffer (the render's, a set block's, a macro's) stays within the string limit.
    if (out.size() > kMaxStringBytes) check_string_size(out.size(), "the template output");
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, const FramePtr& frame, std::string& out) {
  try {
    count_step();
    switch (s.kind) {
      case StmtKind::kData:
        out += s.text;
        return Flow::kNormal;
      case StmtKind::kOutput:
        out += eval(*s.expr, frame).str();
        return Flow::kNormal;
      case StmtKind::kIf:
        if (eval(*s.expr, frame).truthy()) return exec(s.body, frame, out);
        return exec(s.else_body, frame, out);
      case StmtKind::kFor:
        exec_for(s, frame, out);
        return Flow::kNormal;
      case StmtKind::kSet:
        assign(*s.target, eval(*s.expr, frame), frame);
        return Flow::kNormal;
      case StmtKind::kSetBlock: {
        std::string buf;
        exec(s.body, std::make_shared<Frame>(frame), buf);
        Value v(std::move(buf));
        if (s.filter_test) {
          // Apply the filter chain with the body as the innermost operand.
          std::vector<const Expr*> chain;
          for (const Expr* f = s.filter_test.get(); f;
               f = f->children.empty() ? nullptr : f->children[0].get())
            chain.push_back(f);
          for (auto it = chain.rbegin(); it != chain.rend(); ++it)
            v = apply_filter((*it)->name, v, eval_args(**it, frame));
        }
        assign(*s.target, v, frame);
        return Flow::kNormal;
      }
      case StmtKind::kFilterBlock: {
        std::string buf;
        exec(s.body, std::make_shared<Frame>(frame), buf);
        Value v(std::move(buf));
        std::vector<const Expr*> chain;
        for (const Expr* f = s.filter_test.get(); f;
             f = f->children.empty() ? nullptr : f->children[0].get())
          chain.push_back(f);
        for (auto it = chain.rbegin(); it != chain.rend(); ++it)
          v = apply_filter((*it)->name, v, eval_args(**it, frame));
        out += v.str();
        return Flow::kNormal;
      }
      case StmtKind::kMacro:
        frame->set(s.name, make_macro(s, frame, nullptr));
        return Flow::kNormal;
      case StmtKind::kCallBlock: {
        // `caller` renders the call block's body in the calling scope.
        const Stmt* block = &s;
        FramePtr call_frame = frame;
        Value caller = Value::callable(
            "caller", [this, block, call_frame](Interpreter&, const CallArgs& a) -> Value {
              auto f = std::make_shared<Frame>(call_frame);
              for (size_t i = 0; i < block->params.size(); ++i) {
                const Value* v = a.get(i, block->params[i]);
                size_t first_default = block->params.size() - block->defaults.size();
                if (v) {
                  f->set(block->params[i], *v);
                } else if (i >= first_default) {
                  f->set(block->params[i], eval(*block->defaults[i - first_default], f));
                } else {
                  f->set(block->params[i],
                         Value::undefined("parameter '" + block->params[i] + "' was not provided"));
                }
              }
              std::string buf;
              exec(block->body, f, buf);
              return Value(std::move(buf));
            });
        const Expr& call_expr = *s.expr;
        Value callee = eval(*call_expr.children[0], frame);
        CallArgs args = eval_args(call_expr, frame);
        args.kwargs.emplace_back("caller", caller);
        out += this->call(callee, args).str();
        return Flow::kNormal;
      }
      case StmtKind::kWith: {
        auto f = std::make_shared<Frame>(frame);
        std::vector<Value> vals;
        for (const auto& v : s.values) vals.push_back(eval(*v, frame));
        for (size_t i = 0; i < s.targets.size(); ++i) assign(*s.targets[i], vals[i], f);
        return exec(s.body, f, out);
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kScope:  // a call block in jinja2: its own scope
        return exec(s.body, std::make_shared<Frame>(frame), out);
    }
  } catch (const TemplateError& e) {
    if (e.line() == 0 && e.kind() != TemplateError::Kind::kSyntax)
      throw TemplateError(e.kind(), e.message(), s.line);
    throw;
  }
  return Flow::kNormal;
}

void Interpreter::exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
  if (s.recursive) runtime_error("recursive for loops are not supported");
  Value seq = eval(*s.expr, frame);
  ValueList all = iterate(seq);
  auto items = std::make_shared<ValueList>();
  if (s.filter_test) {
    for (auto& v : all) {
      auto f = std::make_shared<Frame>(frame);
      assign(*s.target, v, f);
      if (eval(*s.filter_test, f).truthy()) items->push_back(std::move(v));
    }
  } else {
    *items = std::move(all);
  }
  std::shared_ptr<const ValueList> citems = items;
  for (size_t i = 0; i < citems->size(); ++i) {
    count_step();
    auto f = std::make_shared<Frame>(frame);
    f->set("loop", Value(std::shared_ptr<Object>(std::make_shared<LoopObject>(citems, i))));
    assign(*s.target, (*citems)[i], f);
    Flow fl = exec(s.body, f, out);
    if (fl == Flow::kBreak) break;
  }
  if (citems->empty()) exec(s.else_body, frame, out);
}

void Interpreter::assign(const Expr& target, const Value& v, const FramePtr& frame) {
  if (target.kind == ExprKind::kName) {
    frame->set(target.name, v);
    return;
  }
  if (target.kind == ExprKind::kNsRef) {
    const Value* ns = frame->lookup(target.name);
    if (!ns || !ns->is_object() || ns->object_ref().type_name() != "Namespace")
      runtime_error("cannot assign attribute on non-namespace object");
    ns->object_ref().set_attr(target.attr, v);
    return;
  }
  if (target.kind == ExprKind::kTuple) {
    ValueList vals = iterate(v);
    if (vals.size() != target.children.size())
      runtime_error(vals.size() > target.children.size()
                        ? "too many values to unpack (expected " +
                              std::to_string(target.children.size()) + ")"
                        : "not enough values to unpack (expected " +
                              std::to_string(target.children.size()) + ", got " +
                              std::to_string(vals.size()) + ")");
    for (size_t i = 0; i < vals.size(); ++i) assign(*target.children[i], vals[i], frame);
    return;
  }
  runtime_error("invalid assignment target");
}

CallArgs Interpreter::eval_args(const Expr& e, const FramePtr& frame) {
  CallArgs a;
  for (const auto& x : e.args) a.args.push_back(eval(*x, frame));
  for (const auto& [k, x] : e.kwargs) a.kwargs.emplace_back(k, eval(*x, frame));
  if (e.dyn_args) {
    for (auto& v : iterate(eval(*e.dyn_args, frame))) a.args.push_back(std::move(v));
  }
  if (e.dyn_kwargs) {
    Value d = eval(*e.dyn_kwargs, frame);
    if (!d.is_dict()) runtime_error("argument after ** must be a mapping, not " + d.type_name());
    for (const auto& [k, v] : d.dict_ref().items) {
      if (!k.is_string()) runtime_error("keywords must be strings");
      a.kwargs.emplace_back(k.str_ref(), v);
    }
  }
  return a;
}

Value Interpreter::eval(const Expr& e, const FramePtr& frame) {
  try {
    Value v = eval_inner(e, frame);
    if (v.is_string() && v.str_ref().size() > kMaxStringBytes)
      check_string_size(v.str_ref().size(), "an expression");
    return v;
  } catch (const TemplateError& err) {
    if (err.line() == 0 && err.kind() != TemplateError::Kind::kSyntax)
      throw TemplateError(err.kind(), err.message(), e.line);
    throw;
  }
}

Value Interpreter::eval_inner(const Expr& e, const FramePtr& frame) {
  switch (e.kind) {
    case ExprKind::kConst:
      return e.constant;
    case ExprKind::kName: {
      const Value* v = frame->lookup(e.name);
      if (!v) return Value::undefined("'" + e.name + "' is undefined");
      return *v;
    }
    case ExprKind::kNsRef:
      runtime_error("namespace reference used as a value");
    case ExprKind::kTuple:
    case ExprKind::kList: {
      ValueList items;
      items.reserve(e.children.size());
      for (const auto& c : e.children) items.push_back(eval(*c, frame));
      return e.kind == ExprKind::kTuple ? Value::tuple(std::move(items))
                                        : Value::list(std::move(items));
    }
    case ExprKind::kDict: {
      Dict d;
      for (const auto& [k, v] : e.pairs) d.set(eval(*k, frame), eval(*v, frame));
      return Value::dict(std::move(d));
    }
    case ExprKind::kGetattr:
      return getattr(eval(*e.children[0], frame), e.name);
    case ExprKind::kGetitem: {
      Value obj = eval(*e.children[0], frame);
      const Expr& k = *e.children[1];
      if (k.kind == ExprKind::kSlice) {
        if (obj.is_undefined()) undefined_error(obj);
        auto part = [&](size_t i) {
          return k.children[i] ? eval(*k.children[i], frame) : Value::none();
        };
        Value start = part(0), stop = part(1), step = part(2);
        if (obj.is_string()) {
          std::u32string u = utf8_decode(obj.str_ref());
          ValueList idx = slice_indices(static_cast<int64_t>(u.size()), start, stop, step);
          std::u32string r;
          for (const auto& i : idx) r.push_back(u[static_cast<size_t>(i.as_int())]);
          return Value(utf8_encode(r));
        }
        if (obj.is_list()) {
          ValueList idx =
              slice_indices(static_cast<int64_t>(obj.items().size()), start, stop, step);
          ValueList r;
          for (const auto& i : idx) r.push_back(obj.items()[static_cast<size_t>(i.as_int())]);
          return obj.is_tuple() ? Value::tuple(std::move(r)) : Value::list(std::move(r));
        }
        runtime_error("'" + obj.type_name() + "' object is not subscriptable");
      }
      return getitem(obj, eval(k, frame));
    }
    case ExprKind::kSlice:
      runtime_error("slice used outside of a subscript");
    case ExprKind::kCall: {
      Value callee = eval(*e.children[0], frame);
      CallArgs args = eval_args(e, frame);
      return call(callee, args);
    }
    case ExprKind::kFilter: {
      Value operand = e.children[0] ? eval(*e.children[0], frame) : Value();
      return apply_filter(e.name, operand, eval_args(e, frame));
    }
    case ExprKind::kTest: {
      Value operand = eval(*e.children[0], frame);
      return Value(apply_test(e.name, operand, eval_args(e, frame)));
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      Value v = eval(*e.children[0], frame);
      if (v.is_undefined()) undefined_error(v);
      if (!v.is_number())
        runtime_error(std::string("bad operand type for unary ") +
                      (e.kind == ExprKind::kNeg ? "-" : "+") + ": '" + v.type_name() + "'");
      if (e.kind == ExprKind::kPos) return v.is_float() ? v : Value(v.to_int());
      if (v.is_float()) return Value(-v.as_float());
      if (v.to_int() == std::numeric_limits<int64_t>::min()) runtime_error("integer overflow");
      return Value(-v.to_int());
    }
    case ExprKind::kNot:
      return Value(!eval(*e.children[0], frame).truthy());
    case ExprKind::kBinary:
      return binary_op(e.op, eval(*e.children[0], frame), eval(*e.children[1], frame));
    case ExprKind::kAnd: {
      Value l = eval(*e.children[0], frame);
      if (!l.truthy()) return l;
      return eval(*e.children[1], frame);
    }
    case ExprKind::kOr: {
      Value l = eval(*e.children[0], frame);
      if (l.truthy()) return l;
      return eval(*e.children[1], frame);
    }
    case ExprKind::kConcat: {
      std::string out;
      for (const auto& c : e.children) {
        out += eval(*c, frame).str();
        check_string_size(out.size(), "'~'");
      }
      return Value(std::move(out));
    }
    case ExprKind::kCompare: {
      Value left = eval(*e.children[0], frame);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.children[i + 1], frame);
        if (!compare(e.ops[i], left, right, *this)) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case ExprKind::kCondExpr: {
      if (eval(*e.children[0], frame).truthy()) return eval(*e.children[1], frame);
      if (e.children[2]) return eval(*e.children[2], frame);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  runtime_error("unsupported expression");
}

Value Interpreter::make_macro(const Stmt& s, const FramePtr& frame, const Stmt*) {
  const Stmt* def = &s;
  std::weak_ptr<Frame> weak = frame;
  return Value::callable(s.name, [this, def, weak](Interpreter&, const CallArgs& a) -> Value {
    return call_macro(*def, weak, a, nullptr);
  });
}

Value Interpreter::call_macro(const Stmt& s, const std::weak_ptr<Frame>& def_frame,
                              const CallArgs& a, const Value*) {
  if (depth_ >= kMaxCallDepth) runtime_error("maximum macro recursion depth exceeded");
  FramePtr parent = def_frame.lock();
  if (!parent) parent = globals_;
  auto f = std::make_shared<Frame>(parent);
  size_t first_default = s.params.size() - s.defaults.size();
  ValueList varargs;
  for (size_t i = 0; i < a.args.size(); ++i) {
    if (i < s.params.size())
      f->set(s.params[i], a.args[i]);
    else
      varargs.push_back(a.args[i]);
  }
  Dict kwargs;
  bool has_caller = false;
  for (const auto& [k, v] : a.kwargs) {
    bool is_param = false;
    for (size_t i = 0; i < s.params.size(); ++i) {
      if (s.params[i] == k) {
        if (i < a.args.size())
          runtime_error("macro '" + s.name + "' got multiple values for argument '" + k + "'");
        f->set(k, v);
        is_param = true;
      }
    }
    if (k == "caller") {
      f->set("caller", v);
      has_caller = true;
    } else if (!is_param) {
      kwargs.set(Value(k), v);
    }
  }
  (void)has_caller;
  for (size_t i = a.args.size(); i < s.params.size(); ++i) {
    bool given = false;
    for (const auto& kv : a.kwargs) given = given || kv.first == s.params[i];
    if (given) continue;
    if (i >= first_default)
      f->set(s.params[i], eval(*s.defaults[i - first_default], f));
    else
      f->set(s.params[i], Value::undefined("parameter '" + s.params[i] + "' was not provided"));
  }
  f->set("varargs", Value::tuple(std::move(varargs)));
  f->set("kwargs", Value::dict(std::move(kwargs)));
  ++depth_;
  std::string out;
  try {
    exec(s.body, f, out);
  } catch (...) {
    --depth_;
    throw;
  }
  --depth_;
  return Value(std::move(out));
}

}  // namespace inferd::jinja
