// Syntax tree of a parsed template (mirrors jinja2.nodes for the supported subset).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace inferd::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

enum class ExprKind {
  kConst,     // constant
  kName,      // name
  kNsRef,     // name.attr as an assignment target (namespace attribute)
  kTuple,     // children
  kList,      // children
  kDict,      // pairs
  kGetattr,   // children[0] . name
  kGetitem,   // children[0] [ children[1] ]
  kSlice,     // children: start, stop, step (each may be null)
  kCall,      // children[0] ( args, kwargs, dyn_args, dyn_kwargs )
  kFilter,    // children[0] (may be null in filter blocks) | name(args)
  kTest,      // children[0] is name(args)
  kNeg,       // - children[0]
  kPos,       // + children[0]
  kNot,       // not children[0]
  kBinary,    // children[0] op children[1]; op in + - * / // % **
  kAnd,       // children[0] and children[1]
  kOr,        // children[0] or children[1]
  kConcat,    // children joined with ~
  kCompare,   // children[0] ops[i] children[i+1]
  kCondExpr,  // children: test, expr1, expr2 (expr2 may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  Value constant;
  std::string name;  // name, attribute, filter/test name, binary operator, ns attr
  std::vector<ExprPtr> children;
  std::vector<std::pair<ExprPtr, ExprPtr>> pairs;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;
  ExprPtr dyn_kwargs;
  std::vector<int> ops;  // kCompare: operator codes (== != < <= > >= in notin)
  int op = 0;            // kBinary: operator code (see op_code())
  std::string attr;      // kNsRef attribute
};

enum class StmtKind {
  kData,         // text
  kOutput,       // {{ expr }}
  kIf,           // test, body, else_body
  kFor,          // target, iter, filter_test, body, else_body
  kSet,          // target = expr
  kSetBlock,     // target, filter (may be null), body
  kMacro,        // name, params, defaults, body
  kCallBlock,    // expr (a call), params, defaults, body
  kFilterBlock,  // filter (kFilter chain with null innermost operand), body
  kWith,         // targets = values, body
  kBreak,
  kContinue,
  kScope,  // body in the current scope (generation blocks)
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;         // output expr, if test, set value, for iter, call-block call
  ExprPtr target;       // set/for target
  ExprPtr filter_test;  // for ... if test; set block filter; filter block filter
  StmtList body;
  StmtList else_body;
  bool recursive = false;
  std::string name;                 // macro name
  std::vector<std::string> params;  // macro/call-block parameters
  std::vector<ExprPtr> defaults;    // defaults of the last params
  std::vector<ExprPtr> targets;     // with
  std::vector<ExprPtr> values;      // with
};

// Operator codes of binary and comparison operators.
enum OpCode : int {
  kOpAdd = 1,
  kOpSub,
  kOpMul,
  kOpDiv,
  kOpFloorDiv,
  kOpMod,
  kOpPow,
  kOpEq,
  kOpNe,
  kOpLt,
  kOpLe,
  kOpGt,
  kOpGe,
  kOpIn,
  kOpNotIn
};
inline int op_code(std::string_view op) {
  static constexpr std::string_view kNames[] = {"",   "+",  "-", "*",  "/", "//", "%",  "**",
                                                "==", "!=", "<", "<=", ">", ">=", "in", "notin"};
  for (int i = 1; i < static_cast<int>(std::size(kNames)); ++i)
    if (kNames[i] == op) return i;
  return 0;
}

// Parses tokens into a statement list; throws TemplateError (kSyntax).
StmtList parse_template(std::string_view source);

// Names of the filters and tests the interpreter knows (checked at parse time, as jinja2 does).
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace inferd::jinja
