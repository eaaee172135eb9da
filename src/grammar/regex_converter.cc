// Regex -> GBNF: a recursive-descent parser of the ECMAScript/Python subset (regex_converter.h)
// into a small tree, then the tree written out as one GBNF expression, raw or as JSON string
// content.
#include "grammar/regex_converter.h"

#include <algorithm>
#include <cctype>
#include <memory>

#include "core/utf8.h"
#include "grammar/grammar.h"

namespace inferd::grammar {

namespace {

constexpr uint32_t kMaxCodepoint = 0x10FFFF;
constexpr int kMaxRepeat = 10000;  // the GBNF parser's limit

std::string hex(uint32_t v, int width) {
  static const char* digits = "0123456789ABCDEF";
  std::string s(width, '0');
  for (int i = width - 1; i >= 0; --i, v >>= 4) s[i] = digits[v & 15];
  return s;
}

// One code point of a class, escaped so that GBNF's class syntax cannot misread it.
std::string class_char(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7F || cp == '-' || cp == '^' || cp == ']' || cp == '[' || cp == '\\' ||
      cp == '"')
    return "\\x" + hex(cp, 2);
  if (cp < 0x7F) return std::string(1, static_cast<char>(cp));
  if (cp < 0x10000) return "\\u" + hex(cp, 4);
  std::string s;
  append_utf8(s, cp);
  return s;
}

// ---- the tree ----

struct Node {
  enum Kind { kEmpty, kChars, kConcat, kAlt, kRepeat, kStart, kEnd } kind = kEmpty;
  CodepointRanges chars;
  std::vector<std::unique_ptr<Node>> kids;
  int min = 0, max = 0;  // kRepeat; max -1: unbounded
};
using NodePtr = std::unique_ptr<Node>;

NodePtr make(Node::Kind k) {
  auto n = std::make_unique<Node>();
  n->kind = k;
  return n;
}
NodePtr make_chars(CodepointRanges r) {
  auto n = make(Node::kChars);
  normalize_ranges(r);
  n->chars = std::move(r);
  return n;
}

CodepointRanges digit_ranges() {
  return {{'0', '9'}};
}
CodepointRanges word_ranges() {
  return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
}
CodepointRanges space_ranges() {
  // ECMAScript's WhiteSpace and LineTerminator.
  CodepointRanges r = {{0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680},
                       {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                       {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
  return r;
}
CodepointRanges dot_ranges() {
  return complement_ranges({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}});
}

class Parser {
 public:
  explicit Parser(std::string_view p) : p_(p) {}

  NodePtr parse() {
    NodePtr n = parse_alt();
    if (pos_ < p_.size()) fail("unbalanced ')'");
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw GrammarError("regex '" + std::string(p_) + "': " + what + " at offset " +
                       std::to_string(pos_));
  }

  bool at_end() const { return pos_ >= p_.size(); }
  char peek() const { return at_end() ? '\0' : p_[pos_]; }
  bool lookahead(std::string_view s) const { return p_.substr(pos_, s.size()) == s; }

  uint32_t next_codepoint() {
    auto b = static_cast<unsigned char>(p_[pos_]);
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || pos_ + len > p_.size()) fail("invalid UTF-8");
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (int i = 1; i < len; ++i) {
      auto c = static_cast<unsigned char>(p_[pos_ + i]);
      if ((c >> 6) != 2) fail("invalid UTF-8");
      cp = (cp << 6) | (c & 0x3F);
    }
    pos_ += len;
    return cp;
  }

  NodePtr parse_alt() {
    std::vector<NodePtr> alts;
    alts.push_back(parse_concat());
    while (peek() == '|' && !at_end()) {
      ++pos_;
      alts.push_back(parse_concat());
    }
    if (alts.size() == 1) return std::move(alts[0]);
    auto n = make(Node::kAlt);
    n->kids = std::move(alts);
    return n;
  }

  NodePtr parse_concat() {
    auto n = make(Node::kConcat);
    while (!at_end() && peek() != '|' && peek() != ')') {
      NodePtr atom = parse_atom();
      atom = parse_quantifiers(std::move(atom));
      n->kids.push_back(std::move(atom));
    }
    return n;
  }

  // {m}, {m,}, {m,n} at pos_; false (pos_ unchanged) when it is not one (then '{' is a literal).
  bool parse_braces(int& lo, int& hi) {
    size_t i = pos_ + 1;
    auto number = [&](int& out) {
      size_t start = i;
      long v = 0;
      while (i < p_.size() && p_[i] >= '0' && p_[i] <= '9') {
        v = v * 10 + (p_[i] - '0');
        if (v > kMaxRepeat) v = kMaxRepeat + 1;
        ++i;
      }
      out = static_cast<int>(v);
      return i > start;
    };
    if (!number(lo)) return false;
    hi = lo;
    if (i < p_.size() && p_[i] == ',') {
      ++i;
      if (!number(hi)) hi = -1;
    }
    if (i >= p_.size() || p_[i] != '}') return false;
    pos_ = i + 1;
    if (lo > kMaxRepeat || hi > kMaxRepeat) fail("repeat count over " + std::to_string(kMaxRepeat));
    if (hi != -1 && hi < lo)
      fail("repeat {" + std::to_string(lo) + "," + std::to_string(hi) + "} has max below min");
    return true;
  }

  NodePtr parse_quantifiers(NodePtr atom) {
    while (!at_end()) {
      int lo, hi;
      char c = peek();
      if (c == '*') {
        lo = 0, hi = -1, ++pos_;
      } else if (c == '+') {
        lo = 1, hi = -1, ++pos_;
      } else if (c == '?') {
        lo = 0, hi = 1, ++pos_;
      } else if (c == '{') {
        if (!parse_braces(lo, hi)) return atom;
      } else {
        return atom;
      }
      if (atom->kind == Node::kStart || atom->kind == Node::kEnd) fail("quantifier on an anchor");
      if (atom->kind == Node::kRepeat) fail("nested quantifier (repeat the group instead)");
      if (peek() == '?')
        ++pos_;  // lazy: the same language
      else if (peek() == '+')
        fail("possessive quantifier '+' is not supported");
      auto r = make(Node::kRepeat);
      r->min = lo;
      r->max = hi;
      r->kids.push_back(std::move(atom));
      atom = std::move(r);
    }
    return atom;
  }

  NodePtr parse_atom() {
    char c = peek();
    switch (c) {
      case '(': {
        ++pos_;
        if (lookahead("?:")) {
          pos_ += 2;
        } else if (lookahead("?=") || lookahead("?!")) {
          fail("lookahead '(" + std::string(p_.substr(pos_, 2)) + "' is not supported");
        } else if (lookahead("?<=") || lookahead("?<!")) {
          fail("lookbehind '(" + std::string(p_.substr(pos_, 3)) + "' is not supported");
        } else if (lookahead("?P<") || lookahead("?<")) {
          size_t close = p_.find('>', pos_);
          if (close == std::string_view::npos) fail("unterminated group name");
          pos_ = close + 1;
        } else if (lookahead("?P=")) {
          fail("backreference '(?P=' is not supported");
        } else if (lookahead("?")) {
          fail("inline flags or group syntax '(?" + std::string(p_.substr(pos_ + 1, 1)) +
               "' is not supported");
        }
        NodePtr inner = parse_alt();
        if (peek() != ')' || at_end()) fail("missing ')'");
        ++pos_;
        return inner;
      }
      case '[':
        return parse_class();
      case '.':
        ++pos_;
        return make_chars(dot_ranges());
      case '^':
        ++pos_;
        return make(Node::kStart);
      case '$':
        ++pos_;
        return make(Node::kEnd);
      case '\\': {
        CodepointRanges r;
        parse_escape(r, /*in_class=*/false);
        return make_chars(std::move(r));
      }
      case '*':
      case '+':
      case '?':
        fail(std::string("nothing to repeat before '") + c + "'");
      case '{': {
        int lo, hi;
        size_t save = pos_;
        if (parse_braces(lo, hi)) {
          pos_ = save;
          fail("nothing to repeat before '{'");
        }
        ++pos_;
        return make_chars({{'{', '{'}});
      }
      default: {
        uint32_t cp = next_codepoint();
        return make_chars({{cp, cp}});
      }
    }
  }

  uint32_t hex_digits(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      if (at_end() || !std::isxdigit(static_cast<unsigned char>(peek())))
        fail("expected " + std::to_string(n) + " hex digits");
      char c = p_[pos_++];
      v = v * 16 +
          static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(c))
                                    ? c - '0'
                                    : (std::tolower(static_cast<unsigned char>(c)) - 'a' + 10));
    }
    return v;
  }

  // After a backslash: adds the escape's code points to `out`.
  void parse_escape(CodepointRanges& out, bool in_class) {
    ++pos_;  // the backslash
    if (at_end()) fail("pattern ends with '\\'");
    char c = p_[pos_++];
    auto add = [&](uint32_t cp) { out.emplace_back(cp, cp); };
    auto add_all = [&](const CodepointRanges& r) { out.insert(out.end(), r.begin(), r.end()); };
    switch (c) {
      case 'd':
        return add_all(digit_ranges());
      case 'D':
        return add_all(complement_ranges(digit_ranges()));
      case 'w':
        return add_all(word_ranges());
      case 'W':
        return add_all(complement_ranges(word_ranges()));
      case 's': {
        auto s = space_ranges();
        normalize_ranges(s);
        return add_all(s);
      }
      case 'S': {
        auto s = space_ranges();
        normalize_ranges(s);
        return add_all(complement_ranges(s));
      }
      case 'n':
        return add('\n');
      case 't':
        return add('\t');
      case 'r':
        return add('\r');
      case 'f':
        return add('\f');
      case 'v':
        return add('\v');
      case '0':
        if (!at_end() && std::isdigit(static_cast<unsigned char>(peek())))
          fail("octal escapes are not supported");
        return add(0);
      case 'x':
        return add(hex_digits(2));
      case 'u': {
        if (peek() == '{') {
          ++pos_;
          uint32_t v = 0;
          int n = 0;
          while (!at_end() && peek() != '}') {
            v = v * 16 + hex_digits(1);
            if (++n > 6 || v > kMaxCodepoint) fail("\\u{...} beyond U+10FFFF");
          }
          if (at_end() || n == 0) fail("unterminated \\u{...}");
          ++pos_;
          return add(v);
        }
        uint32_t v = hex_digits(4);
        // A surrogate pair written as two escapes is one code point.
        if (v >= 0xD800 && v <= 0xDBFF && lookahead("\\u")) {
          size_t save = pos_;
          pos_ += 2;
          uint32_t lo = hex_digits(4);
          if (lo >= 0xDC00 && lo <= 0xDFFF)
            return add(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00));
          pos_ = save;
        }
        if (v >= 0xD800 && v <= 0xDFFF) fail("lone surrogate \\u" + hex(v, 4));
        return add(v);
      }
      case 'b':
        if (in_class) return add('\b');
        fail("word boundary '\\b' is not supported");
      case 'B':
        fail("word boundary '\\B' is not supported");
      case 'A':
      case 'Z':
      case 'z':
      case 'G':
        fail(std::string("anchor '\\") + c + "' is not supported (use ^ and $)");
      case 'k':
        fail("backreference '\\k' is not supported");
      case 'p':
      case 'P':
        fail(std::string("Unicode property escape '\\") + c + "' is not supported");
      case 'c':
        fail("control escape '\\c' is not supported");
      default:
        if (c >= '1' && c <= '9') fail(std::string("backreference '\\") + c + "' is not supported");
        if (std::isalnum(static_cast<unsigned char>(c)))
          fail(std::string("unknown escape '\\") + c + "'");
        --pos_;
        add(next_codepoint());  // escaped punctuation or any other character: itself
    }
  }

  NodePtr parse_class() {
    ++pos_;  // '['
    bool negate = false;
    if (peek() == '^') negate = true, ++pos_;
    CodepointRanges r;
    bool first = true;
    while (true) {
      if (at_end()) fail("missing ']'");
      if (peek() == ']' && !first) {
        ++pos_;
        break;
      }
      if (peek() == ']' && first) {  // ECMAScript: [] matches nothing, [^] anything
        ++pos_;
        if (!negate) fail("empty class '[]' matches nothing");
        return make_chars({{0, kMaxCodepoint}});
      }
      first = false;
      if (lookahead("[:")) fail("POSIX class '[:' is not supported");
      // One item: a single code point (possibly the start of a range) or an escape set.
      CodepointRanges item;
      if (peek() == '\\')
        parse_escape(item, /*in_class=*/true);
      else
        item.emplace_back(next_codepoint(), 0), item.back().second = item.back().first;
      bool single = item.size() == 1 && item[0].first == item[0].second;
      if (single && peek() == '-' && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        ++pos_;  // '-'
        CodepointRanges hi_item;
        if (peek() == '\\')
          parse_escape(hi_item, /*in_class=*/true);
        else
          hi_item.emplace_back(next_codepoint(), 0), hi_item.back().second = hi_item.back().first;
        if (hi_item.size() != 1 || hi_item[0].first != hi_item[0].second)
          fail("class range ends in a class escape");
        if (hi_item[0].first < item[0].first) fail("class range out of order");
        r.emplace_back(item[0].first, hi_item[0].first);
        continue;
      }
      r.insert(r.end(), item.begin(), item.end());
    }
    normalize_ranges(r);
    if (negate) r = complement_ranges(r);
    if (r.empty()) fail("class matches no character");
    return make_chars(std::move(r));
  }

  std::string_view p_;
  size_t pos_ = 0;
};

// ---- writing GBNF ----

class Writer {
 public:
  explicit Writer(RegexTarget target) : target_(target) {}

  // An expression for the node; `atomic` is set when it needs no parentheses to be repeated.
  std::string write(const Node& n, bool& atomic) {
    switch (n.kind) {
      case Node::kEmpty:
        atomic = true;
        return "\"\"";
      case Node::kStart:
      case Node::kEnd:
        throw GrammarError(std::string("regex: anchor '") + (n.kind == Node::kStart ? "^" : "$") +
                           "' is only supported at the start or end of the pattern");
      case Node::kChars:
        return write_chars(n.chars, atomic);
      case Node::kConcat: {
        if (n.kids.empty()) {
          atomic = true;
          return "\"\"";
        }
        if (n.kids.size() == 1) return write(*n.kids[0], atomic);
        std::string s;
        for (const auto& k : n.kids) {
          bool a;
          std::string e = write(*k, a);
          if (e == "\"\"") continue;
          if (!s.empty()) s += ' ';
          s += e;
        }
        atomic = false;
        if (s.empty()) {
          atomic = true;
          return "\"\"";
        }
        return s;
      }
      case Node::kAlt: {
        std::vector<std::string> alts;  // each alternative once: a repeat only adds ambiguity
        for (const auto& kid : n.kids) {
          bool a;
          std::string e = write(*kid, a);
          if (std::find(alts.begin(), alts.end(), e) == alts.end()) alts.push_back(std::move(e));
        }
        std::string s = "(";
        for (size_t i = 0; i < alts.size(); ++i) s += (i ? " | " : " ") + alts[i];
        atomic = true;
        return s + " )";
      }
      case Node::kRepeat: {
        bool a;
        std::string e = write(*n.kids[0], a);
        if (n.max == 0 || e == "\"\"") {
          atomic = true;
          return "\"\"";
        }
        if (!a) e = "( " + e + " )";
        atomic = true;
        if (n.min == 0 && n.max == -1) return e + "*";
        if (n.min == 1 && n.max == -1) return e + "+";
        if (n.min == 0 && n.max == 1) return e + "?";
        if (n.min == 1 && n.max == 1) return e;
        if (n.max == -1) return e + "{" + std::to_string(n.min) + ",}";
        if (n.min == n.max) return e + "{" + std::to_string(n.min) + "}";
        return e + "{" + std::to_string(n.min) + "," + std::to_string(n.max) + "}";
      }
    }
    return "\"\"";
  }

 private:
  std::string write_chars(const CodepointRanges& r, bool& atomic) {
    atomic = true;
    if (target_ == RegexTarget::kRaw) {
      if (r.size() == 1 && r[0].first == r[0].second) {
        std::string s;
        append_utf8(s, r[0].first);
        return gbnf_literal(s);
      }
      return gbnf_class(r);
    }
    // Inside a JSON string: the raw code points, plus the escapes of those that must be escaped.
    std::vector<std::string> alts;
    CodepointRanges raw = subtract_ranges(r, complement_ranges(json_raw_chars()));
    if (raw.size() == 1 && raw[0].first == raw[0].second) {
      std::string s;
      append_utf8(s, raw[0].first);
      alts.push_back(gbnf_literal(s));
    } else if (!raw.empty()) {
      alts.push_back(gbnf_class(raw));
    }
    static const std::pair<uint32_t, const char*> kEscapes[] = {
        {'"', "\\\""}, {'\\', "\\\\"}, {'\b', "\\b"}, {'\f', "\\f"},
        {'\n', "\\n"}, {'\r', "\\r"},  {'\t', "\\t"}};
    for (auto [cp, esc] : kEscapes) {
      for (auto [lo, hi] : r)
        if (lo <= cp && cp <= hi) alts.push_back(gbnf_literal(esc));
    }
    if (alts.empty())
      throw GrammarError(
          "regex: a character set holds only control characters, which are not produced in a "
          "JSON string");
    if (alts.size() == 1) return alts[0];
    std::string s = "(";
    for (size_t i = 0; i < alts.size(); ++i) s += (i ? " | " : " ") + alts[i];
    return s + " )";
  }

  RegexTarget target_;
};

}  // namespace

void normalize_ranges(CodepointRanges& r) {
  std::sort(r.begin(), r.end());
  CodepointRanges out;
  for (auto [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1)
      out.back().second = std::max(out.back().second, hi);
    else
      out.emplace_back(lo, hi);
  }
  r = std::move(out);
}

CodepointRanges complement_ranges(const CodepointRanges& in) {
  CodepointRanges r = in;
  normalize_ranges(r);
  CodepointRanges out;
  uint32_t next = 0;
  for (auto [lo, hi] : r) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= kMaxCodepoint) out.emplace_back(next, kMaxCodepoint);
  return out;
}

CodepointRanges subtract_ranges(const CodepointRanges& a, const CodepointRanges& b) {
  CodepointRanges nb = complement_ranges(b), out;
  CodepointRanges na = a;
  normalize_ranges(na);
  for (auto [alo, ahi] : na)
    for (auto [blo, bhi] : nb) {
      uint32_t lo = std::max(alo, blo), hi = std::min(ahi, bhi);
      if (lo <= hi) out.emplace_back(lo, hi);
    }
  normalize_ranges(out);
  return out;
}

std::string gbnf_literal(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"')
      out += "\\\"";
    else if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c < 0x20 || c == 0x7F)
      out += "\\x" + hex(c, 2);
    else
      out += ch;
  }
  return out + "\"";
}

std::string gbnf_class(const CodepointRanges& in) {
  CodepointRanges r = in;
  normalize_ranges(r);
  if (r.empty()) return "";
  std::string out = "[";
  for (auto [lo, hi] : r) {
    out += class_char(lo);
    if (hi == lo + 1) {
      out += class_char(hi);
    } else if (hi > lo) {
      out += '-';
      out += class_char(hi);
    }
  }
  return out + "]";
}

const CodepointRanges& json_raw_chars() {
  static const CodepointRanges r = subtract_ranges(
      {{0, kMaxCodepoint}}, {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}, {0xD800, 0xDFFF}});
  return r;
}

std::string regex_to_gbnf_expr(std::string_view pattern, RegexTarget target, bool search,
                               std::string_view any_char_expr) {
  NodePtr tree = Parser(pattern).parse();
  // Top-level alternatives, each with its own anchors.
  std::vector<NodePtr> alts;
  if (tree->kind == Node::kAlt)
    alts = std::move(tree->kids);
  else
    alts.push_back(std::move(tree));
  Writer w(target);
  std::vector<std::string> out;
  for (auto& alt : alts) {
    bool start = false, end = false;
    if (alt->kind == Node::kStart) {
      start = true;
      alt = make(Node::kEmpty);
    } else if (alt->kind == Node::kEnd) {
      end = true;
      alt = make(Node::kEmpty);
    } else if (alt->kind == Node::kConcat) {
      auto& k = alt->kids;
      if (!k.empty() && k.front()->kind == Node::kStart) start = true, k.erase(k.begin());
      if (!k.empty() && k.back()->kind == Node::kEnd) end = true, k.pop_back();
    }
    bool atomic;
    std::string e = w.write(*alt, atomic);
    if (search) {
      std::string any = "( " + std::string(any_char_expr) + " )*";
      if (!start) e = e == "\"\"" ? any : any + " " + e;
      if (!end && !(e == any)) e += " " + any;
    }
    // The same alternative twice adds nothing but ambiguity (found by fuzz_regex: hundreds of
    // empty alternatives, each a copy of "any text", passed the matcher's bound on live parses).
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
  // Searching, an unanchored empty alternative matches every string: it is the whole pattern.
  const std::string any = "( " + std::string(any_char_expr) + " )*";
  if (search && std::find(out.begin(), out.end(), any) != out.end()) return any;
  if (out.size() == 1) return out[0];
  std::string s = "(";
  for (size_t i = 0; i < out.size(); ++i) s += (i ? " | " : " ") + out[i];
  return s + " )";
}

std::string regex_to_gbnf(std::string_view pattern, std::string_view root,
                          std::string_view /*prefix*/) {
  return std::string(root) + " ::= " + regex_to_gbnf_expr(pattern, RegexTarget::kRaw, false) + "\n";
}

namespace {

// The offset of the first byte of `s` that does not start or continue a UTF-8 character as GBNF
// reads it, or npos (found by fuzz_regex: a choice with a stray byte became GBNF that does not
// parse, reported as "line 1, column 37: invalid UTF-8 in the grammar").
size_t invalid_utf8_at(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80    ? 1
                     : c >= 0xF8 ? 0
                     : c >= 0xF0 ? 4
                     : c >= 0xE0 ? 3
                     : c >= 0xC0 ? 2
                                 : 0;
    if (n == 0 || i + n > s.size()) return i;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return i;
    i += n;
  }
  return std::string_view::npos;
}

}  // namespace

std::string choice_to_gbnf(const std::vector<std::string>& choices, std::string_view root,
                           std::string_view /*prefix*/) {
  if (choices.empty()) throw GrammarError("choice: expected at least one string, got none");
  std::string s = std::string(root) + " ::=";
  for (size_t i = 0; i < choices.size(); ++i) {
    if (const size_t at = invalid_utf8_at(choices[i]); at != std::string_view::npos) {
      throw GrammarError("choice: choice " + std::to_string(i) + " is not valid UTF-8 (byte " +
                         std::to_string(at) + ")");
    }
    if (choices[i].empty())
      s += (i ? " | " : " ") + std::string("\"\"");
    else
      s += (i ? " | " : " ") + gbnf_literal(choices[i]);
  }
  return s + "\n";
}

}  // namespace inferd::grammar
