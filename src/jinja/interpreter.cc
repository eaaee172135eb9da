// The interpreter of parsed templates (interpreter.h): statements (output, for with its loop
// object, if, set, with, macro and call blocks, break / continue), expressions and macro calls,
// under the render limits (call depth, steps, string and list sizes). Python's operators are in
// operators.cc, the object protocol in object_protocol.cc, the builtins in filters.cc,
// builtin_tests.cc, methods.cc and globals.cc.
#include "jinja/interpreter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "jinja/operators.h"

namespace inferd::jinja {

using namespace std::literals;

namespace {

constexpr int kMaxCallDepth = 128;

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
        return slice_value(obj, start, stop, step);
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
