// Expressions of the jinja parser (parser.h), by precedence as in jinja2/parser.py: conditional,
// or / and / not, comparisons, arithmetic and concatenation, unary, primaries (literals, names,
// lists, dicts, tuples), then subscripts, attribute access, calls, filters and tests.
#include <set>
#include <string>
#include <vector>

#include "jinja/parser.h"

namespace inferd::jinja {

ExprPtr Parser::parse_expression(bool with_condexpr) {
  return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr Parser::parse_condexpr() {
  int line = cur().line;
  ExprPtr expr1 = parse_or();
  while (skip_name("if")) {
    ExprPtr expr2 = parse_or();
    ExprPtr expr3;
    if (skip_name("else")) expr3 = parse_condexpr();
    auto c = make(ExprKind::kCondExpr, line);
    c->children.push_back(std::move(expr2));
    c->children.push_back(std::move(expr1));
    c->children.push_back(std::move(expr3));
    expr1 = std::move(c);
    line = cur().line;
  }
  return expr1;
}

ExprPtr Parser::parse_or() {
  int line = cur().line;
  ExprPtr left = parse_and();
  while (skip_name("or")) {
    auto n = make(ExprKind::kOr, line);
    n->children.push_back(std::move(left));
    n->children.push_back(parse_and());
    left = std::move(n);
  }
  return left;
}

ExprPtr Parser::parse_and() {
  int line = cur().line;
  ExprPtr left = parse_not();
  while (skip_name("and")) {
    auto n = make(ExprKind::kAnd, line);
    n->children.push_back(std::move(left));
    n->children.push_back(parse_not());
    left = std::move(n);
  }
  return left;
}

ExprPtr Parser::parse_not() {
  DepthGuard guard(*this);
  if (is_name("not")) {
    int line = cur().line;
    next();
    auto n = make(ExprKind::kNot, line);
    n->children.push_back(parse_not());
    return n;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  int line = cur().line;
  ExprPtr expr = parse_math1();
  ExprPtr cmp;
  while (true) {
    std::string op;
    if (cur().type == TokenType::kOperator &&
        (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == "<=" ||
         cur().value == ">" || cur().value == ">=")) {
      op = cur().value;
      next();
    } else if (skip_name("in")) {
      op = "in";
    } else if (is_name("not") && look().type == TokenType::kName && look().value == "in") {
      next();
      next();
      op = "notin";
    } else {
      break;
    }
    if (!cmp) {
      cmp = make(ExprKind::kCompare, line);
      cmp->children.push_back(std::move(expr));
    }
    cmp->ops.push_back(op_code(op));
    cmp->children.push_back(parse_math1());
  }
  return cmp ? std::move(cmp) : std::move(expr);
}

ExprPtr Parser::binary(const std::string& op, ExprPtr l, ExprPtr r, int line) {
  auto n = make(ExprKind::kBinary, line);
  n->name = op;
  n->op = op_code(op);
  n->children.push_back(std::move(l));
  n->children.push_back(std::move(r));
  return n;
}

ExprPtr Parser::parse_math1() {
  int line = cur().line;
  ExprPtr left = parse_concat();
  while (is_op("+") || is_op("-")) {
    std::string op = cur().value;
    next();
    left = binary(op, std::move(left), parse_concat(), line);
    line = cur().line;
  }
  return left;
}

ExprPtr Parser::parse_concat() {
  int line = cur().line;
  ExprPtr first = parse_math2();
  if (!is_op("~")) return first;
  auto n = make(ExprKind::kConcat, line);
  n->children.push_back(std::move(first));
  while (skip_op("~")) n->children.push_back(parse_math2());
  return n;
}

ExprPtr Parser::parse_math2() {
  int line = cur().line;
  ExprPtr left = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    std::string op = cur().value;
    next();
    left = binary(op, std::move(left), parse_pow(), line);
    line = cur().line;
  }
  return left;
}

ExprPtr Parser::parse_pow() {
  int line = cur().line;
  ExprPtr left = parse_unary(true);
  while (skip_op("**")) {
    left = binary("**", std::move(left), parse_unary(true), line);
    line = cur().line;
  }
  return left;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  DepthGuard guard(*this);
  int line = cur().line;
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    bool neg = is_op("-");
    next();
    node = make(neg ? ExprKind::kNeg : ExprKind::kPos, line);
    node->children.push_back(parse_unary(false));
  } else {
    node = parse_primary(false);
  }
  node = parse_postfix(std::move(node));
  if (with_filter) node = parse_filter_expr(std::move(node));
  return node;
}

ExprPtr Parser::parse_primary(bool with_namespace) {
  const Token& t = cur();
  int line = t.line;
  if (t.type == TokenType::kName) {
    std::string v = t.value;
    next();
    if (v == "true" || v == "false" || v == "True" || v == "False") {
      auto c = make(ExprKind::kConst, line);
      c->constant = Value(v == "true" || v == "True");
      return c;
    }
    if (v == "none" || v == "None") {
      auto c = make(ExprKind::kConst, line);
      c->constant = Value::none();
      return c;
    }
    if (with_namespace && is_op(".")) {
      next();
      auto n = make(ExprKind::kNsRef, line);
      n->name = v;
      n->attr = expect_name();
      return n;
    }
    auto n = make(ExprKind::kName, line);
    n->name = v;
    return n;
  }
  if (t.type == TokenType::kString) {
    std::string buf;
    while (cur().type == TokenType::kString) {
      buf += cur().value;
      next();
    }
    auto c = make(ExprKind::kConst, line);
    c->constant = Value(std::move(buf));
    return c;
  }
  if (t.type == TokenType::kInteger) {
    auto c = make(ExprKind::kConst, line);
    try {
      c->constant = Value(static_cast<int64_t>(std::stoll(t.value)));
    } catch (const std::out_of_range&) {
      fail("integer literal " + t.value + " is too large", line);
    }
    next();
    return c;
  }
  if (t.type == TokenType::kFloat) {
    auto c = make(ExprKind::kConst, line);
    c->constant = Value(std::strtod(t.value.c_str(), nullptr));
    next();
    return c;
  }
  if (is_op("(")) {
    next();
    ExprPtr n = parse_tuple(false, true, {}, true);
    expect_op(")");
    return n;
  }
  if (is_op("[")) {
    next();
    auto n = make(ExprKind::kList, line);
    while (!is_op("]")) {
      if (!n->children.empty()) expect_op(",");
      if (is_op("]")) break;
      n->children.push_back(parse_expression(true));
    }
    expect_op("]");
    return n;
  }
  if (is_op("{")) {
    next();
    auto n = make(ExprKind::kDict, line);
    while (!is_op("}")) {
      if (!n->pairs.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr k = parse_expression(true);
      expect_op(":");
      ExprPtr v = parse_expression(true);
      n->pairs.emplace_back(std::move(k), std::move(v));
    }
    expect_op("}");
    return n;
  }
  fail("unexpected '" + describe(t) + "'", line);
}

bool Parser::is_tuple_end(const std::vector<std::string>& extra_end) const {
  if (cur().type == TokenType::kVarEnd || cur().type == TokenType::kBlockEnd || is_op(")"))
    return true;
  return at_end_token(extra_end);
}

ExprPtr Parser::parse_tuple(bool simplified, bool with_condexpr,
                            const std::vector<std::string>& extra_end, bool explicit_parens,
                            bool with_namespace) {
  int line = cur().line;
  std::vector<ExprPtr> args;
  bool is_tuple = false;
  while (true) {
    if (!args.empty()) expect_op(",");
    if (is_tuple_end(extra_end)) break;
    args.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
    if (is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
    line = cur().line;
  }
  if (!is_tuple) {
    if (!args.empty()) return std::move(args[0]);
    if (!explicit_parens) fail("Expected an expression, got '" + describe(cur()) + "'");
  }
  auto n = make(ExprKind::kTuple, line);
  n->children = std::move(args);
  return n;
}

ExprPtr Parser::parse_postfix(ExprPtr node) {
  while (true) {
    if (is_op(".") || is_op("[")) {
      node = parse_subscript(std::move(node));
    } else if (is_op("(")) {
      node = parse_call(std::move(node));
    } else {
      break;
    }
  }
  return node;
}

ExprPtr Parser::parse_filter_expr(ExprPtr node) {
  while (true) {
    if (is_op("|")) {
      node = parse_filter(std::move(node), false);
    } else if (is_name("is")) {
      node = parse_test(std::move(node));
    } else if (is_op("(")) {
      node = parse_call(std::move(node));
    } else {
      break;
    }
  }
  return node;
}

ExprPtr Parser::parse_subscript(ExprPtr node) {
  const Token t = cur();
  next();
  if (t.value == ".") {
    const Token a = cur();
    next();
    if (a.type == TokenType::kName) {
      auto n = make(ExprKind::kGetattr, t.line);
      n->name = a.value;
      n->children.push_back(std::move(node));
      return n;
    }
    if (a.type != TokenType::kInteger) fail("expected name or number", a.line);
    auto n = make(ExprKind::kGetitem, t.line);
    auto c = make(ExprKind::kConst, a.line);
    try {
      c->constant = Value(static_cast<int64_t>(std::stoll(a.value)));
    } catch (const std::out_of_range&) {
      fail("integer literal " + a.value + " is too large", a.line);
    }
    n->children.push_back(std::move(node));
    n->children.push_back(std::move(c));
    return n;
  }
  // '['
  std::vector<ExprPtr> args;
  while (!is_op("]")) {
    if (!args.empty()) expect_op(",");
    args.push_back(parse_subscribed());
  }
  expect_op("]");
  auto n = make(ExprKind::kGetitem, t.line);
  n->children.push_back(std::move(node));
  if (args.size() == 1) {
    n->children.push_back(std::move(args[0]));
  } else {
    auto tup = make(ExprKind::kTuple, t.line);
    tup->children = std::move(args);
    n->children.push_back(std::move(tup));
  }
  return n;
}

ExprPtr Parser::parse_subscribed() {
  int line = cur().line;
  std::vector<ExprPtr> args;
  if (is_op(":")) {
    next();
    args.push_back(nullptr);
  } else {
    ExprPtr node = parse_expression(true);
    if (!is_op(":")) return node;
    next();
    args.push_back(std::move(node));
  }
  if (is_op(":")) {
    args.push_back(nullptr);
  } else if (!is_op("]") && !is_op(",")) {
    args.push_back(parse_expression(true));
  } else {
    args.push_back(nullptr);
  }
  if (is_op(":")) {
    next();
    if (!is_op("]") && !is_op(",")) {
      args.push_back(parse_expression(true));
    } else {
      args.push_back(nullptr);
    }
  } else {
    args.push_back(nullptr);
  }
  auto n = make(ExprKind::kSlice, line);
  n->children = std::move(args);
  return n;
}

void Parser::parse_call_args(Expr& n) {
  int line = cur().line;
  expect_op("(");
  bool require_comma = false;
  auto ensure = [&](bool ok) {
    if (!ok) fail("invalid syntax for function call expression", line);
  };
  while (!is_op(")")) {
    if (require_comma) {
      expect_op(",");
      if (is_op(")")) break;
    }
    if (is_op("*")) {
      ensure(!n.dyn_args && !n.dyn_kwargs);
      next();
      n.dyn_args = parse_expression(true);
    } else if (is_op("**")) {
      ensure(!n.dyn_kwargs);
      next();
      n.dyn_kwargs = parse_expression(true);
    } else if (cur().type == TokenType::kName && look().type == TokenType::kOperator &&
               look().value == "=") {
      ensure(!n.dyn_kwargs);
      std::string key = cur().value;
      next();
      next();
      n.kwargs.emplace_back(key, parse_expression(true));
    } else {
      ensure(!n.dyn_args && !n.dyn_kwargs && n.kwargs.empty());
      n.args.push_back(parse_expression(true));
    }
    require_comma = true;
  }
  expect_op(")");
}

ExprPtr Parser::parse_call(ExprPtr node) {
  auto n = make(ExprKind::kCall, cur().line);
  n->children.push_back(std::move(node));
  parse_call_args(*n);
  return n;
}

ExprPtr Parser::parse_filter(ExprPtr node, bool start_inline) {
  while (is_op("|") || start_inline) {
    if (!start_inline) next();
    int line = cur().line;
    std::string name = expect_name();
    while (skip_op(".")) {
      name += '.';
      name += expect_name();
    }
    if (!is_known_filter(name)) fail("No filter named '" + name + "'.", line);
    auto n = make(ExprKind::kFilter, line);
    n->name = name;
    n->children.push_back(std::move(node));
    if (is_op("(")) parse_call_args(*n);
    node = std::move(n);
    start_inline = false;
  }
  return node;
}

ExprPtr Parser::parse_test(ExprPtr node) {
  int line = cur().line;
  next();  // 'is'
  bool negated = skip_name("not");
  std::string name = expect_name();
  while (skip_op(".")) {
    name += '.';
    name += expect_name();
  }
  if (!is_known_test(name)) fail("No test named '" + name + "'.", line);
  auto n = make(ExprKind::kTest, line);
  n->name = name;
  n->children.push_back(std::move(node));
  if (is_op("(")) {
    parse_call_args(*n);
  } else if ((cur().type == TokenType::kName || cur().type == TokenType::kString ||
              cur().type == TokenType::kInteger || cur().type == TokenType::kFloat || is_op("(") ||
              is_op("[") || is_op("{")) &&
             !(is_name("else") || is_name("or") || is_name("and"))) {
    if (is_name("is")) fail("You cannot chain multiple tests with is");
    ExprPtr arg = parse_primary(false);
    arg = parse_postfix(std::move(arg));
    n->args.push_back(std::move(arg));
  }
  if (negated) {
    auto no = make(ExprKind::kNot, line);
    no->children.push_back(std::move(n));
    return no;
  }
  return n;
}

}  // namespace inferd::jinja
