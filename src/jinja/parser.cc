// Recursive-descent parser following jinja2/parser.py (same precedence and grammar).
#include <set>

#include "jinja/ast.h"
#include "jinja/lexer.h"
#include "jinja/template.h"

namespace inferd::jinja {
namespace {

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::kName:
      return t.value;
    case TokenType::kData:
      return "template data / text";
    case TokenType::kVarBegin:
      return "begin of print statement";
    case TokenType::kVarEnd:
      return "end of print statement";
    case TokenType::kBlockBegin:
      return "begin of statement block";
    case TokenType::kBlockEnd:
      return "end of statement block";
    case TokenType::kString:
      return "string";
    case TokenType::kInteger:
      return "integer";
    case TokenType::kFloat:
      return "float";
    case TokenType::kOperator:
      return t.value;
    case TokenType::kEof:
      return "end of template";
  }
  return "?";
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  StmtList parse() {
    StmtList body = subparse({});
    return body;
  }

 private:
  // Bounds the nesting of expressions and blocks so that hostile templates cannot overflow the
  // stack (of the parser here, of the evaluator later, which follows the same tree).
  static constexpr int kMaxDepth = 300;
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) p_.fail("template nesting is too deep");
    }
    ~DepthGuard() { --p_.depth_; }
    Parser& p_;
  };

  // ---- token stream ----
  const Token& cur() const { return toks_[pos_]; }
  const Token& look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
  void next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(const char* op) const {
    return cur().type == TokenType::kOperator && cur().value == op;
  }
  bool is_name(const char* n) const { return cur().type == TokenType::kName && cur().value == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }

  [[noreturn]] void fail(const std::string& msg, int line = -1) const {
    throw TemplateError(TemplateError::Kind::kSyntax, msg, line < 0 ? cur().line : line);
  }

  void expect_op(const char* op) {
    if (!is_op(op)) {
      if (cur().type == TokenType::kEof)
        fail(std::string("unexpected end of template, expected '") + op + "'.");
      fail(std::string("expected token '") + op + "', got '" + describe(cur()) + "'");
    }
    next();
  }
  void expect_type(TokenType t, const char* what) {
    if (cur().type != t) {
      if (cur().type == TokenType::kEof)
        fail(std::string("unexpected end of template, expected '") + what + "'.");
      fail(std::string("expected token '") + what + "', got '" + describe(cur()) + "'");
    }
    next();
  }
  std::string expect_name() {
    if (cur().type != TokenType::kName) {
      if (cur().type == TokenType::kEof) fail("unexpected end of template, expected 'name'.");
      fail("expected token 'name', got '" + describe(cur()) + "'");
    }
    std::string v = cur().value;
    next();
    return v;
  }
  void expect_keyword(const char* n) {
    if (!is_name(n)) {
      if (cur().type == TokenType::kEof)
        fail(std::string("unexpected end of template, expected '") + n + "'.");
      fail(std::string("expected token '") + n + "', got '" + describe(cur()) + "'");
    }
    next();
  }

  static ExprPtr make(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }
  static StmtPtr make_stmt(StmtKind k, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = line;
    return s;
  }

  // ---- statements ----
  bool at_end_token(const std::vector<std::string>& end_tokens) const {
    if (cur().type != TokenType::kName) return false;
    for (const auto& e : end_tokens)
      if (cur().value == e) return true;
    return false;
  }

  StmtList subparse(const std::vector<std::string>& end_tokens) {
    DepthGuard guard(*this);
    StmtList body;
    if (!end_tokens.empty()) end_stack_.push_back(end_tokens);
    while (cur().type != TokenType::kEof) {
      const Token& t = cur();
      if (t.type == TokenType::kData) {
        auto s = make_stmt(StmtKind::kData, t.line);
        s->text = t.value;
        body.push_back(std::move(s));
        next();
      } else if (t.type == TokenType::kVarBegin) {
        int line = t.line;
        next();
        auto s = make_stmt(StmtKind::kOutput, line);
        s->expr = parse_tuple(false, true, {}, false);
        expect_type(TokenType::kVarEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        next();
        if (!end_tokens.empty() && at_end_token(end_tokens)) {
          end_stack_.pop_back();
          return body;
        }
        parse_statement(body);
        expect_type(TokenType::kBlockEnd, "end of statement block");
      } else {
        fail("internal parsing error");
      }
    }
    if (!end_tokens.empty()) end_stack_.pop_back();
    return body;
  }

  void fail_unknown_or_eof(const std::string* name, int line) {
    std::vector<std::string> msg;
    std::string looking;
    std::set<std::string> expected;
    for (const auto& ends : end_stack_)
      for (const auto& e : ends) expected.insert(e);
    if (!end_stack_.empty()) {
      for (size_t i = 0; i < end_stack_.back().size(); ++i) {
        if (i) looking += " or ";
        looking += "'" + end_stack_.back()[i] + "'";
      }
    }
    std::string m =
        name ? "Encountered unknown tag '" + *name + "'." : "Unexpected end of template.";
    if (!looking.empty()) {
      if (name && expected.count(*name))
        m += " You probably made a nesting mistake. Jinja is expecting this tag, but currently "
             "looking for " +
             looking + ".";
      else
        m += " Jinja was looking for the following tags: " + looking + ".";
    }
    if (!tag_stack_.empty())
      m += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
    fail(m, line);
  }

  // Parses the statements up to one of end_tokens; leaves the end token current unless drop.
  StmtList parse_statements(const std::vector<std::string>& end_tokens, bool drop_needle) {
    skip_op(":");
    expect_type(TokenType::kBlockEnd, "end of statement block");
    StmtList body = subparse(end_tokens);
    if (cur().type == TokenType::kEof) {
      end_stack_.push_back(end_tokens);
      fail_unknown_or_eof(nullptr, cur().line);
    }
    if (drop_needle) next();
    return body;
  }

  void parse_statement(StmtList& out) {
    const Token& t = cur();
    if (t.type != TokenType::kName) fail("tag name expected", t.line);
    std::string tag = t.value;
    int line = t.line;
    static const std::set<std::string> kTags = {"for",      "if",         "set",  "macro",
                                                "call",     "filter",     "with", "break",
                                                "continue", "generation", "print"};
    if (!kTags.count(tag)) fail_unknown_or_eof(&tag, line);
    tag_stack_.push_back(tag);
    if (tag == "for") {
      out.push_back(parse_for());
    } else if (tag == "if") {
      out.push_back(parse_if());
    } else if (tag == "set") {
      out.push_back(parse_set());
    } else if (tag == "macro") {
      out.push_back(parse_macro());
    } else if (tag == "call") {
      out.push_back(parse_call_block());
    } else if (tag == "filter") {
      next();
      auto s = make_stmt(StmtKind::kFilterBlock, line);
      s->filter_test = parse_filter(nullptr, true);
      s->body = parse_statements({"endfilter"}, true);
      out.push_back(std::move(s));
    } else if (tag == "with") {
      next();
      auto s = make_stmt(StmtKind::kWith, line);
      while (cur().type != TokenType::kBlockEnd) {
        if (!s->targets.empty()) expect_op(",");
        s->targets.push_back(parse_assign_target(true, false, {}, false));
        expect_op("=");
        s->values.push_back(parse_expression(true));
      }
      s->body = parse_statements({"endwith"}, true);
      out.push_back(std::move(s));
    } else if (tag == "break" || tag == "continue") {
      next();
      out.push_back(make_stmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, line));
    } else if (tag == "generation") {
      next();
      auto s = make_stmt(StmtKind::kScope, line);
      s->body = parse_statements({"endgeneration"}, true);
      out.push_back(std::move(s));
    } else if (tag == "print") {
      next();
      auto s = make_stmt(StmtKind::kOutput, line);
      auto tup = make(ExprKind::kTuple, line);
      while (cur().type != TokenType::kBlockEnd) {
        if (!tup->children.empty()) expect_op(",");
        tup->children.push_back(parse_expression(true));
      }
      // {% print a %} prints a; several expressions print each in turn.
      for (auto& c : tup->children) {
        auto o = make_stmt(StmtKind::kOutput, line);
        o->expr = std::move(c);
        out.push_back(std::move(o));
      }
    }
    tag_stack_.pop_back();
  }

  StmtPtr parse_for() {
    int line = cur().line;
    expect_keyword("for");
    auto s = make_stmt(StmtKind::kFor, line);
    s->target = parse_assign_target(true, false, {"in"}, false);
    expect_keyword("in");
    s->expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s->filter_test = parse_expression(true);
    s->recursive = skip_name("recursive");
    s->body = parse_statements({"endfor", "else"}, false);
    std::string end = cur().value;
    next();
    if (end != "endfor") s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  StmtPtr parse_if() {
    int line = cur().line;
    expect_keyword("if");
    auto s = make_stmt(StmtKind::kIf, line);
    s->expr = parse_tuple(false, false, {}, false);
    s->body = parse_statements({"elif", "else", "endif"}, false);
    std::string end = cur().value;
    int eline = cur().line;
    next();
    if (end == "elif") {
      // Rewind: treat "elif" as a nested if in the else branch.
      auto nested = make_stmt(StmtKind::kIf, eline);
      nested->expr = parse_tuple(false, false, {}, false);
      nested->body = parse_statements({"elif", "else", "endif"}, false);
      Stmt* tail = nested.get();
      s->else_body.push_back(std::move(nested));
      while (true) {
        std::string e2 = cur().value;
        int l2 = cur().line;
        next();
        if (e2 == "elif") {
          auto n2 = make_stmt(StmtKind::kIf, l2);
          n2->expr = parse_tuple(false, false, {}, false);
          n2->body = parse_statements({"elif", "else", "endif"}, false);
          Stmt* nt = n2.get();
          tail->else_body.push_back(std::move(n2));
          tail = nt;
        } else if (e2 == "else") {
          tail->else_body = parse_statements({"endif"}, true);
          break;
        } else {
          break;
        }
      }
    } else if (end == "else") {
      s->else_body = parse_statements({"endif"}, true);
    }
    return s;
  }

  StmtPtr parse_set() {
    int line = cur().line;
    next();
    ExprPtr target = parse_assign_target(true, false, {}, true);
    if (skip_op("=")) {
      auto s = make_stmt(StmtKind::kSet, line);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {}, false);
      return s;
    }
    auto s = make_stmt(StmtKind::kSetBlock, line);
    s->target = std::move(target);
    if (is_op("|")) s->filter_test = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true);
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      s.params.push_back(expect_name());
      if (skip_op("=")) {
        s.defaults.push_back(parse_expression(true));
      } else if (!s.defaults.empty()) {
        fail("non-default argument follows default argument");
      }
    }
    expect_op(")");
  }

  StmtPtr parse_macro() {
    int line = cur().line;
    next();
    auto s = make_stmt(StmtKind::kMacro, line);
    s->name = expect_name();
    parse_signature(*s);
    s->body = parse_statements({"endmacro"}, true);
    return s;
  }

  StmtPtr parse_call_block() {
    int line = cur().line;
    next();
    auto s = make_stmt(StmtKind::kCallBlock, line);
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::kCall) fail("expected call", line);
    s->body = parse_statements({"endcall"}, true);
    return s;
  }

  // ---- assignment targets ----
  ExprPtr parse_assign_target(bool with_tuple, bool name_only,
                              const std::vector<std::string>& extra_end, bool with_namespace) {
    ExprPtr target;
    if (name_only) {
      int line = cur().line;
      target = make(ExprKind::kName, line);
      target->name = expect_name();
      return target;
    }
    if (with_tuple) {
      target = parse_tuple(true, true, extra_end, false, with_namespace);
    } else {
      target = parse_primary(with_namespace);
    }
    auto assignable = [](const Expr& e) {
      return e.kind == ExprKind::kName || e.kind == ExprKind::kNsRef;
    };
    bool ok = assignable(*target);
    if (target->kind == ExprKind::kTuple) {
      ok = true;
      for (auto& c : target->children) ok = ok && assignable(*c);
    }
    if (!ok) {
      std::string what = target->kind == ExprKind::kConst ? "const" : "expression";
      fail("can't assign to '" + what + "'", target->line);
    }
    return target;
  }

  // ---- expressions ----
  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
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

  ExprPtr parse_or() {
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

  ExprPtr parse_and() {
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

  ExprPtr parse_not() {
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

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr expr = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOperator &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
           cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
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

  ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, int line) {
    auto n = make(ExprKind::kBinary, line);
    n->name = op;
    n->op = op_code(op);
    n->children.push_back(std::move(l));
    n->children.push_back(std::move(r));
    return n;
  }

  ExprPtr parse_math1() {
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

  ExprPtr parse_concat() {
    int line = cur().line;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto n = make(ExprKind::kConcat, line);
    n->children.push_back(std::move(first));
    while (skip_op("~")) n->children.push_back(parse_math2());
    return n;
  }

  ExprPtr parse_math2() {
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

  ExprPtr parse_pow() {
    int line = cur().line;
    ExprPtr left = parse_unary(true);
    while (skip_op("**")) {
      left = binary("**", std::move(left), parse_unary(true), line);
      line = cur().line;
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
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

  ExprPtr parse_primary(bool with_namespace) {
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

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    if (cur().type == TokenType::kVarEnd || cur().type == TokenType::kBlockEnd || is_op(")"))
      return true;
    return at_end_token(extra_end);
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr,
                      const std::vector<std::string>& extra_end, bool explicit_parens,
                      bool with_namespace = false) {
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

  ExprPtr parse_postfix(ExprPtr node) {
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

  ExprPtr parse_filter_expr(ExprPtr node) {
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

  ExprPtr parse_subscript(ExprPtr node) {
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

  ExprPtr parse_subscribed() {
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

  void parse_call_args(Expr& n) {
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

  ExprPtr parse_call(ExprPtr node) {
    auto n = make(ExprKind::kCall, cur().line);
    n->children.push_back(std::move(node));
    parse_call_args(*n);
    return n;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
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

  ExprPtr parse_test(ExprPtr node) {
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
                cur().type == TokenType::kInteger || cur().type == TokenType::kFloat ||
                is_op("(") || is_op("[") || is_op("{")) &&
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

  std::vector<Token> toks_;
  size_t pos_ = 0;
  std::vector<std::vector<std::string>> end_stack_;
  std::vector<std::string> tag_stack_;
  int depth_ = 0;
};

}  // namespace

StmtList parse_template(std::string_view source) {
  return Parser(tokenize(source)).parse();
}

}  // namespace inferd::jinja
