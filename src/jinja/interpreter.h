// The evaluator of parsed templates (internal to the jinja library).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "jinja/ast.h"
#include "jinja/template.h"
#include "jinja/value.h"

namespace inferd::jinja {

// A variable scope. for-loop iterations, macro calls and with-blocks get a child frame; if-blocks
// and set-blocks do not (as in jinja2).
class Frame {
 public:
  explicit Frame(std::shared_ptr<Frame> parent) : parent_(std::move(parent)) {}
  const Value* lookup(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent_.get()) {
      auto it = f->vars_.find(name);
      if (it != f->vars_.end()) return &it->second;
    }
    return nullptr;
  }
  void set(const std::string& name, Value v) { vars_[name] = std::move(v); }

 private:
  std::unordered_map<std::string, Value> vars_;
  std::shared_ptr<Frame> parent_;
};
using FramePtr = std::shared_ptr<Frame>;

// A runtime error without location; the interpreter adds the line of the expression.
[[noreturn]] void runtime_error(const std::string& msg);

// Bounds that keep the render of a hostile template finite in memory and time (jinja2's sandbox
// has only MAX_RANGE, which `range` keeps): every string built (output, `*`, `~`, `+`, padding,
// replace, join) and every list built by `*`, and the statements plus loop iterations of one
// render. Exceeding one is a runtime TemplateError naming the limit.
constexpr size_t kMaxStringBytes = size_t(32) << 20;
constexpr size_t kMaxListItems = 1'000'000;
constexpr int64_t kMaxRenderSteps = 5'000'000;
// Throws that error when a string of `bytes` bytes would be built by `what`.
void check_string_size(uint64_t bytes, const char* what);
// Raises the error an Undefined value carries (jinja2's UndefinedError).
[[noreturn]] void undefined_error(const Value& v);

class Interpreter {
 public:
  explicit Interpreter(const RenderOptions& options);

  std::string render(const StmtList& body, const Value& context);

  // Python semantics used by the builtins.
  Value call(const Value& callee, const CallArgs& args);
  Value getattr(const Value& obj, const std::string& name);
  Value getitem(const Value& obj, const Value& key);
  // Python's iter() materialised (dict: keys, str: characters, Undefined: empty).
  ValueList iterate(const Value& v);
  bool contains(const Value& container, const Value& item);
  Value apply_filter(const std::string& name, const Value& operand, const CallArgs& args);
  bool apply_test(const std::string& name, const Value& operand, const CallArgs& args);
  const RenderOptions& options() const { return options_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  Flow exec(const StmtList& body, const FramePtr& frame, std::string& out);
  Flow exec_stmt(const Stmt& s, const FramePtr& frame, std::string& out);
  void exec_for(const Stmt& s, const FramePtr& frame, std::string& out);
  void assign(const Expr& target, const Value& v, const FramePtr& frame);
  Value eval(const Expr& e, const FramePtr& frame);
  Value eval_inner(const Expr& e, const FramePtr& frame);
  CallArgs eval_args(const Expr& e, const FramePtr& frame);
  Value make_macro(const Stmt& s, const FramePtr& frame, const Stmt* caller_of);
  Value call_macro(const Stmt& s, const std::weak_ptr<Frame>& def_frame, const CallArgs& args,
                   const Value* caller);

  RenderOptions options_;
  FramePtr globals_;
  int depth_ = 0;
  int64_t steps_ = 0;  // statements and loop iterations so far (kMaxRenderSteps)
  void count_step();
};

// Defines range, dict, namespace, raise_exception, strftime_now, ... in `frame`.
void install_globals(Frame& frame);

// Python comparison a < b; raises TypeError-like errors for unorderable types.
bool py_less(const Value& a, const Value& b);

}  // namespace inferd::jinja
