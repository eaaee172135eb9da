// Statements of the jinja parser (parser.h): the tags for, if / elif / else, set (and set blocks),
// macro, call, filter, with, break, continue, generation and print, and assignment targets.
#include <set>
#include <string>
#include <vector>

#include "jinja/parser.h"

namespace inferd::jinja {

StmtList Parser::parse_statements(const std::vector<std::string>& end_tokens, bool drop_needle) {
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

void Parser::parse_statement(StmtList& out) {
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

StmtPtr Parser::parse_for() {
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

StmtPtr Parser::parse_if() {
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

StmtPtr Parser::parse_set() {
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

void Parser::parse_signature(Stmt& s) {
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

StmtPtr Parser::parse_macro() {
  int line = cur().line;
  next();
  auto s = make_stmt(StmtKind::kMacro, line);
  s->name = expect_name();
  parse_signature(*s);
  s->body = parse_statements({"endmacro"}, true);
  return s;
}

StmtPtr Parser::parse_call_block() {
  int line = cur().line;
  next();
  auto s = make_stmt(StmtKind::kCallBlock, line);
  if (is_op("(")) parse_signature(*s);
  s->expr = parse_expression(true);
  if (s->expr->kind != ExprKind::kCall) fail("expected call", line);
  s->body = parse_statements({"endcall"}, true);
  return s;
}

ExprPtr Parser::parse_assign_target(bool with_tuple, bool name_only,
                                    const std::vector<std::string>& extra_end,
                                    bool with_namespace) {
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

}  // namespace inferd::jinja
