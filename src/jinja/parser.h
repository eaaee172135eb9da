// The jinja parser (internal to the jinja library): recursive descent following jinja2/parser.py
// (same precedence and grammar), tokens in, the statement tree of ast.h out. The token stream and
// the block structure are in parser.cc, statements in parse_statements.cc, expressions in
// parse_expressions.cc.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/ast.h"
#include "jinja/lexer.h"
#include "jinja/template.h"

namespace inferd::jinja {

// A token as jinja2's syntax errors name it ("end of print statement", a name's text, ...).
std::string describe(const Token& t);

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

  void expect_op(const char* op);
  void expect_type(TokenType t, const char* what);
  std::string expect_name();
  void expect_keyword(const char* n);
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
  bool at_end_token(const std::vector<std::string>& end_tokens) const;
  StmtList subparse(const std::vector<std::string>& end_tokens);
  void fail_unknown_or_eof(const std::string* name, int line);

  // Parses the statements up to one of end_tokens; leaves the end token current unless drop.
  StmtList parse_statements(const std::vector<std::string>& end_tokens, bool drop_needle);
  void parse_statement(StmtList& out);
  StmtPtr parse_for();
  StmtPtr parse_if();
  StmtPtr parse_set();
  void parse_signature(Stmt& s);
  StmtPtr parse_macro();
  StmtPtr parse_call_block();

  // ---- assignment targets ----
  ExprPtr parse_assign_target(bool with_tuple, bool name_only,
                              const std::vector<std::string>& extra_end, bool with_namespace);

  // ---- expressions ----
  ExprPtr parse_expression(bool with_condexpr);
  ExprPtr parse_condexpr();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, int line);
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary(bool with_namespace);
  bool is_tuple_end(const std::vector<std::string>& extra_end) const;
  ExprPtr parse_tuple(bool simplified, bool with_condexpr,
                      const std::vector<std::string>& extra_end, bool explicit_parens,
                      bool with_namespace = false);
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node);
  ExprPtr parse_subscribed();
  void parse_call_args(Expr& n);
  ExprPtr parse_call(ExprPtr node);
  ExprPtr parse_filter(ExprPtr node, bool start_inline);
  ExprPtr parse_test(ExprPtr node);

  std::vector<Token> toks_;
  size_t pos_ = 0;
  std::vector<std::vector<std::string>> end_stack_;
  std::vector<std::string> tag_stack_;
  int depth_ = 0;
};

}  // namespace inferd::jinja
