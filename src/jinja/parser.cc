// The jinja parser's token stream and block structure (parser.h): expectations with jinja2's
// messages, the body of a template or block up to its end tags, and the errors for unknown or
// unclosed tags.
#include <set>
#include <string>
#include <vector>

#include "jinja/parser.h"

namespace inferd::jinja {

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

void Parser::expect_op(const char* op) {
  if (!is_op(op)) {
    if (cur().type == TokenType::kEof)
      fail(std::string("unexpected end of template, expected '") + op + "'.");
    fail(std::string("expected token '") + op + "', got '" + describe(cur()) + "'");
  }
  next();
}

void Parser::expect_type(TokenType t, const char* what) {
  if (cur().type != t) {
    if (cur().type == TokenType::kEof)
      fail(std::string("unexpected end of template, expected '") + what + "'.");
    fail(std::string("expected token '") + what + "', got '" + describe(cur()) + "'");
  }
  next();
}

std::string Parser::expect_name() {
  if (cur().type != TokenType::kName) {
    if (cur().type == TokenType::kEof) fail("unexpected end of template, expected 'name'.");
    fail("expected token 'name', got '" + describe(cur()) + "'");
  }
  std::string v = cur().value;
  next();
  return v;
}

void Parser::expect_keyword(const char* n) {
  if (!is_name(n)) {
    if (cur().type == TokenType::kEof)
      fail(std::string("unexpected end of template, expected '") + n + "'.");
    fail(std::string("expected token '") + n + "', got '" + describe(cur()) + "'");
  }
  next();
}

bool Parser::at_end_token(const std::vector<std::string>& end_tokens) const {
  if (cur().type != TokenType::kName) return false;
  for (const auto& e : end_tokens)
    if (cur().value == e) return true;
  return false;
}

StmtList Parser::subparse(const std::vector<std::string>& end_tokens) {
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

void Parser::fail_unknown_or_eof(const std::string* name, int line) {
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
  std::string m = name ? "Encountered unknown tag '" + *name + "'." : "Unexpected end of template.";
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

StmtList parse_template(std::string_view source) {
  return Parser(tokenize(source)).parse();
}

}  // namespace inferd::jinja
