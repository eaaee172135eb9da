// Jinja2 lexer with the settings transformers uses for chat templates: trim_blocks=True,
// lstrip_blocks=True, keep_trailing_newline=False, default delimiters. It reproduces jinja2's
// whitespace control exactly ({%- -%} {{- -}} {#- -#}, "+" to disable trimming, raw blocks).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace inferd::jinja {

enum class TokenType {
  kData,        // template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,    // value is the unescaped string
  kInteger,   // value is the literal text without '_'
  kFloat,     // value is the literal text without '_'
  kOperator,  // value is the operator text
  kEof,
};

struct Token {
  TokenType type;
  std::string value;
  int line;
};

// Tokenizes `source`; throws TemplateError on lexical errors.
std::vector<Token> tokenize(std::string_view source);

// Python's str.isspace() for one code point.
bool is_python_space(char32_t c);

}  // namespace inferd::jinja
