// The jinja2 lexer (lexer.h): template data, comments and raw blocks, the whitespace control of
// trim_blocks / lstrip_blocks and {%- -%}, and the tokens of tags and expressions.
#include "jinja/lexer.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>

#include "jinja/template.h"
#include "jinja/value.h"

namespace inferd::jinja {

bool is_python_space(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

namespace {

[[noreturn]] void syntax_error(const std::string& msg, int line) {
  throw TemplateError(TemplateError::Kind::kSyntax, msg, line);
}

// Decodes the code point at s[i]; sets len to its byte length.
char32_t decode_at(std::string_view s, size_t i, size_t& len) {
  utf8proc_int32_t cp = 0;
  utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                        static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
  if (n <= 0) {
    len = 1;
    return 0xFFFD;
  }
  len = static_cast<size_t>(n);
  return static_cast<char32_t>(cp);
}

// Length in bytes of the run of Python whitespace starting at `pos`.
size_t space_run(std::string_view s, size_t pos) {
  size_t i = pos;
  while (i < s.size()) {
    size_t len = 0;
    char32_t c = decode_at(s, i, len);
    if (!is_python_space(c)) break;
    i += len;
  }
  return i - pos;
}

// Python's str.rstrip(): the byte length of `s` without trailing whitespace.
size_t rstrip_len(std::string_view s) {
  std::u32string u = utf8_decode(s);
  size_t n = u.size();
  while (n > 0 && is_python_space(u[n - 1])) --n;
  return utf8_encode(std::u32string_view(u).substr(0, n)).size();
}

// True when s is non-empty and all Python whitespace.
bool all_space(std::string_view s) {
  return !s.empty() && space_run(s, 0) == s.size();
}

int count_newlines(std::string_view s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_ident_char(char c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Python's "unicode-escape" decoding of a string literal body.
std::string unescape(std::string_view body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out.push_back(c);
      continue;
    }
    char e = body[++i];
    auto hex = [&](size_t digits) -> char32_t {
      char32_t v = 0;
      for (size_t k = 0; k < digits; ++k) {
        size_t p = i + 1 + k;
        if (p >= body.size()) syntax_error("truncated \\xXX escape in string literal", line);
        char h = body[p];
        v <<= 4;
        if (h >= '0' && h <= '9')
          v |= static_cast<char32_t>(h - '0');
        else if (h >= 'a' && h <= 'f')
          v |= static_cast<char32_t>(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
          v |= static_cast<char32_t>(h - 'A' + 10);
        else
          syntax_error("invalid hex escape in string literal", line);
      }
      i += digits;
      return v;
    };
    switch (e) {
      case '\n':
        break;  // line continuation
      case '\\':
        out.push_back('\\');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x':
        utf8_append(out, hex(2));
        break;
      case 'u':
        utf8_append(out, hex(4));
        break;
      case 'U':
        utf8_append(out, hex(8));
        break;
      default:
        if (e >= '0' && e <= '7') {
          char32_t v = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7';
               ++k)
            v = v * 8 + static_cast<char32_t>(body[++i] - '0');
          utf8_append(out, v);
        } else {
          out.push_back('\\');
          out.push_back(e);
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : s_(std::move(source)) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) lex_root();
    tokens_.push_back({TokenType::kEof, "", line_});
    return std::move(tokens_);
  }

 private:
  void emit(TokenType t, std::string v) { tokens_.push_back({t, std::move(v), line_}); }

  // One step of the "root" state: text up to the next tag, then the tag.
  void lex_root() {
    // Find the earliest "{{", "{%" or "{#".
    size_t p = pos_;
    size_t tag = std::string::npos;
    while ((p = s_.find('{', p)) != std::string::npos) {
      if (p + 1 < s_.size() && (s_[p + 1] == '{' || s_[p + 1] == '%' || s_[p + 1] == '#')) {
        tag = p;
        break;
      }
      ++p;
    }
    if (tag == std::string::npos) {
      std::string text = s_.substr(pos_);
      emit(TokenType::kData, text);
      line_ += count_newlines(text);
      pos_ = s_.size();
      return;
    }
    char kind = s_[tag + 1];
    size_t after = tag + 2;
    char sign = 0;
    if (after < s_.size() && (s_[after] == '-' || s_[after] == '+')) sign = s_[after++];

    // A raw block: {% raw %} ... {% endraw %}.
    size_t raw_end = 0;
    bool is_raw = kind == '%' && match_raw_begin(tag, raw_end);

    std::string text = s_.substr(pos_, tag - pos_);
    int text_newlines = count_newlines(text);
    if (sign == '-') {
      text.resize(rstrip_len(text));
    } else if (sign != '+' && kind != '{') {
      size_t l_pos = text.rfind('\n');
      l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
      if ((l_pos > 0 || line_starting_) && all_space(std::string_view(text).substr(l_pos)))
        text.resize(l_pos);
    }
    if (!text.empty()) emit(TokenType::kData, text);
    line_ += text_newlines;
    line_starting_ = false;

    if (is_raw) {
      line_ += count_newlines(std::string_view(s_).substr(tag, raw_end - tag));
      line_starting_ = raw_end > tag && s_[raw_end - 1] == '\n';
      pos_ = raw_end;
      lex_raw_body();
      return;
    }
    pos_ = after;
    if (kind == '#') {
      lex_comment();
    } else if (kind == '%') {
      emit(TokenType::kBlockBegin, "");
      lex_tag(true);
    } else {
      emit(TokenType::kVarBegin, "");
      lex_tag(false);
    }
  }

  // Matches `{%[-+]?\s*raw\s*(-%}\s*|%})` at `at`; sets end to the position after it.
  bool match_raw_begin(size_t at, size_t& end) {
    size_t p = at + 2;
    if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) ++p;
    p += space_run(s_, p);
    if (s_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    p += space_run(s_, p);
    if (s_.compare(p, 3, "-%}") == 0) {
      p += 3;
      p += space_run(s_, p);
    } else if (s_.compare(p, 2, "%}") == 0) {
      p += 2;
    } else {
      return false;
    }
    end = p;
    return true;
  }

  // The body of a raw block up to and including {% endraw %}.
  void lex_raw_body() {
    size_t p = pos_;
    while (true) {
      p = s_.find("{%", p);
      if (p == std::string::npos) syntax_error("Missing end of raw directive", line_);
      size_t q = p + 2;
      char sign = 0;
      if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) sign = s_[q++];
      q += space_run(s_, q);
      if (s_.compare(q, 6, "endraw") != 0) {
        ++p;
        continue;
      }
      q += 6;
      q += space_run(s_, q);
      size_t end;
      if (s_.compare(q, 3, "+%}") == 0) {
        end = q + 3;
      } else if (s_.compare(q, 3, "-%}") == 0) {
        end = q + 3;
        end += space_run(s_, end);
      } else if (s_.compare(q, 2, "%}") == 0) {
        end = q + 2;
        if (end < s_.size() && s_[end] == '\n') ++end;
      } else {
        ++p;
        continue;
      }
      std::string text = s_.substr(pos_, p - pos_);
      int nl = count_newlines(text);
      if (sign == '-') {
        text.resize(rstrip_len(text));
      } else if (sign != '+') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting_) && all_space(std::string_view(text).substr(l_pos)))
          text.resize(l_pos);
      }
      if (!text.empty()) emit(TokenType::kData, text);
      line_ += nl + count_newlines(std::string_view(s_).substr(p, end - p));
      line_starting_ = s_[end - 1] == '\n';
      pos_ = end;
      return;
    }
  }

  void lex_comment() {
    size_t q = s_.find("#}", pos_);
    if (q == std::string::npos) syntax_error("Missing end of comment tag", line_);
    size_t end = q + 2;
    if (q > pos_ && s_[q - 1] == '-') {
      end += space_run(s_, end);
    } else if (q > pos_ && s_[q - 1] == '+') {
      // no trimming
    } else if (end < s_.size() && s_[end] == '\n') {
      ++end;  // trim_blocks
    }
    line_ += count_newlines(std::string_view(s_).substr(pos_, end - pos_));
    line_starting_ = s_[end - 1] == '\n';
    pos_ = end;
  }

  // Tokens inside {% %} (block) or {{ }} until the end delimiter.
  void lex_tag(bool block) {
    std::vector<char> balance;
    while (true) {
      if (pos_ >= s_.size()) return;  // the parser reports the missing end delimiter
      // End delimiter (only with balanced brackets).
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          if (s_.compare(pos_, 3, "+%}") == 0) {
            end = pos_ + 3;
          } else if (s_.compare(pos_, 3, "-%}") == 0) {
            end = pos_ + 3;
            end += space_run(s_, end);
          } else if (s_.compare(pos_, 2, "%}") == 0) {
            end = pos_ + 2;
            if (end < s_.size() && s_[end] == '\n') ++end;
          }
        } else {
          if (s_.compare(pos_, 3, "-}}") == 0) {
            end = pos_ + 3;
            end += space_run(s_, end);
          } else if (s_.compare(pos_, 2, "}}") == 0) {
            end = pos_ + 2;
          }
        }
        if (end) {
          emit(block ? TokenType::kBlockEnd : TokenType::kVarEnd, "");
          line_ += count_newlines(std::string_view(s_).substr(pos_, end - pos_));
          line_starting_ = s_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      // Whitespace.
      size_t ws = space_run(s_, pos_);
      if (ws) {
        line_ += count_newlines(std::string_view(s_).substr(pos_, ws));
        pos_ += ws;
        continue;
      }
      char c = s_[pos_];
      if (is_digit(c)) {
        lex_number();
        continue;
      }
      if (is_ident_start(c)) {
        size_t b = pos_;
        while (pos_ < s_.size() && is_ident_char(s_[pos_])) ++pos_;
        emit(TokenType::kName, s_.substr(b, pos_ - b));
        continue;
      }
      if (c == '\'' || c == '"') {
        lex_string(c);
        continue;
      }
      static constexpr std::array<std::string_view, 26> kOps = {
          "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
          "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};
      bool matched = false;
      for (std::string_view op : kOps) {
        if (s_.compare(pos_, op.size(), op) == 0) {
          char o = op[0];
          if (op.size() == 1 && (o == '(' || o == '[' || o == '{')) {
            balance.push_back(o == '(' ? ')' : o == '[' ? ']' : '}');
          } else if (op.size() == 1 && (o == ')' || o == ']' || o == '}')) {
            if (balance.empty()) syntax_error(std::string("unexpected '") + o + "'", line_);
            char expected = balance.back();
            balance.pop_back();
            if (expected != o)
              syntax_error(std::string("unexpected '") + o + "', expected '" + expected + "'",
                           line_);
          }
          emit(TokenType::kOperator, std::string(op));
          pos_ += op.size();
          matched = true;
          break;
        }
      }
      if (!matched) {
        size_t len = 0;
        char32_t cp = decode_at(s_, pos_, len);
        std::string ch;
        utf8_append(ch, cp);
        syntax_error("unexpected char " + python_str_repr(ch) + " at " + std::to_string(pos_),
                     line_);
      }
    }
  }

  void lex_number() {
    // float: digits ( (.digits)? e[+-]?digits | .digits ); integer otherwise.
    auto digits = [&](size_t p) {
      // (\d+_)*\d+ : returns end or p when no digits.
      size_t q = p;
      if (q >= s_.size() || !is_digit(s_[q])) return p;
      while (q < s_.size() && is_digit(s_[q])) {
        ++q;
        if (q + 1 < s_.size() && s_[q] == '_' && is_digit(s_[q + 1])) ++q;
      }
      return q;
    };
    size_t b = pos_;
    size_t intend = digits(b);
    size_t fend = 0;
    // Try fraction.
    size_t p = intend;
    size_t frac_end = p;
    if (p < s_.size() && s_[p] == '.') {
      size_t d = digits(p + 1);
      if (d > p + 1) frac_end = d;
    }
    size_t after_frac = frac_end;
    if (after_frac < s_.size() && (s_[after_frac] == 'e' || s_[after_frac] == 'E')) {
      size_t q = after_frac + 1;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
      size_t d = digits(q);
      if (d > q) fend = d;
    }
    if (!fend && frac_end > intend) fend = frac_end;
    auto strip = [](std::string t) {
      t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
      return t;
    };
    if (fend) {
      emit(TokenType::kFloat, strip(s_.substr(b, fend - b)));
      pos_ = fend;
      return;
    }
    // Integer: 0b/0o/0x prefixes, decimal, or zeros.
    if (s_[b] == '0' && b + 1 < s_.size() &&
        std::string_view("bBoOxX").find(s_[b + 1]) != std::string_view::npos) {
      char base = static_cast<char>(s_[b + 1] | 0x20);
      size_t q = b + 2;
      auto ok = [&](char ch) {
        // Lower-case letters only: `ch | 0x20` would also turn bytes 0x10-0x19 into '0'-'9'
        // (fuzz_chat_template: "0x\x13" reached std::stoll, which threw invalid_argument).
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
        if (base == 'b') return ch == '0' || ch == '1';
        if (base == 'o') return ch >= '0' && ch <= '7';
        return is_digit(ch) || (ch >= 'a' && ch <= 'f');
      };
      while (q < s_.size() && (ok(s_[q]) || (s_[q] == '_' && q + 1 < s_.size() && ok(s_[q + 1]))))
        ++q;
      if (q > b + 2) {
        std::string t = strip(s_.substr(b + 2, q - b - 2));
        int radix = base == 'b' ? 2 : base == 'o' ? 8 : 16;
        long long v = 0;
        try {
          v = std::stoll(t, nullptr, radix);
        } catch (const std::out_of_range&) {
          syntax_error("integer literal " + std::string(s_.substr(b, q - b)) + " is too large",
                       line_);
        }
        emit(TokenType::kInteger, std::to_string(v));
        pos_ = q;
        return;
      }
    }
    if (s_[b] == '0') {
      // 0(_?0)*
      size_t q = b + 1;
      while (q < s_.size() &&
             (s_[q] == '0' || (s_[q] == '_' && q + 1 < s_.size() && s_[q + 1] == '0')))
        ++q;
      emit(TokenType::kInteger, "0");
      pos_ = q;
      return;
    }
    emit(TokenType::kInteger, strip(s_.substr(b, intend - b)));
    pos_ = intend;
  }

  void lex_string(char quote) {
    size_t p = pos_ + 1;
    while (p < s_.size() && s_[p] != quote) {
      if (s_[p] == '\\') ++p;
      ++p;
    }
    if (p >= s_.size()) {
      size_t len = 0;
      char32_t cp = decode_at(s_, pos_, len);
      std::string ch;
      utf8_append(ch, cp);
      syntax_error("unexpected char " + python_str_repr(ch) + " at " + std::to_string(pos_), line_);
    }
    std::string_view body = std::string_view(s_).substr(pos_ + 1, p - pos_ - 1);
    emit(TokenType::kString, unescape(body, line_));
    line_ += count_newlines(body);
    pos_ = p + 1;
  }

  std::string s_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  // Normalise newlines to "\n" and drop one trailing newline (keep_trailing_newline=False).
  std::string s;
  s.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      s.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      s.push_back(source[i]);
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return Lexer(std::move(s)).run();
}

}  // namespace inferd::jinja
