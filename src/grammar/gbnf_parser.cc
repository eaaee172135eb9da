// GBNF (llama.cpp's grammar dialect) parser, lowering straight to the normalised grammar
// (grammar_ir.h): literals and classes become UTF-8 byte sets, groups and repetitions become
// helper rules (right recursion; bounded counts as chains of optional helpers).
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/utf8.h"
#include "grammar/grammar.h"
#include "grammar/grammar_ir.h"

namespace inferd::grammar {
namespace {

constexpr int kMaxRepeat = 10000;
// Most copies of something that can match the empty text: each way of spreading the text over
// the copies is another parse, so a matcher follows O(copies) stacks at every byte and a mask
// costs O(copies^2) (fuzz_gbnf: item{512,} with a nullable item took 3.7 s for one mask over
// Llama 3's vocabulary; 16 copies take ~30 ms cold).
constexpr int kMaxNullableRepeat = 16;
constexpr int kMaxNesting = 256;
constexpr size_t kMaxElements = size_t{1} << 22;

using Seq = std::vector<GElement>;
using Alts = std::vector<Seq>;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Grammar run(std::string_view root) {
    skip_ws();
    if (at_end()) fail("expected a rule 'name ::= ...' (the grammar is empty)");
    while (!at_end()) {
      const size_t name_at = i_;
      std::string name = parse_name("a rule name");
      skip_ws();
      if (s_.compare(i_, 3, "::=") != 0) fail("expected '::=' after rule name '" + name + "'");
      i_ += 3;
      const int32_t id = rule_id(name, name_at);
      if (defined_[static_cast<size_t>(id)]) {
        fail_at(name_at, "rule '" + name + "' is defined twice");
      }
      defined_[static_cast<size_t>(id)] = true;
      Alts alts = parse_alternatives(false);
      g_.rules[static_cast<size_t>(id)].alts = std::move(alts);
      skip_ws();
    }
    size_t elements = 0;
    for (const GRule& r : g_.rules) {
      for (const Seq& alt : r.alts) elements += alt.size() + 1;
    }
    if (elements > kMaxElements) {
      throw GrammarError("grammar: too large once repetitions are expanded (" +
                         std::to_string(elements) + " elements, at most " +
                         std::to_string(kMaxElements) + ")");
    }
    for (size_t r = 0; r < g_.rules.size(); ++r) {
      if (!defined_[r]) {
        fail_at(first_use_[r], "undefined rule '" + g_.rules[r].name + "'");
      }
    }
    auto it = ids_.find(std::string(root));
    if (it == ids_.end()) {
      throw GrammarError("grammar: no root rule '" + std::string(root) + "' (expected a rule '" +
                         std::string(root) + " ::= ...')");
    }
    g_.root = it->second;
    check_nullable_repeats();
    check_grammar(g_);
    return std::move(g_);
  }

 private:
  [[noreturn]] void fail_at(size_t at, const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < at && k < s_.size(); ++k) {
      if (s_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw GrammarError("grammar: line " + std::to_string(line) + ", column " + std::to_string(col) +
                       ": " + what);
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(i_, what); }

  // A repetition of more than kMaxNullableRepeat copies of a rule that can match the empty text
  // (known only once every rule is parsed) is refused, naming it.
  void check_nullable_repeats() const {
    if (big_repeats_.empty()) return;
    const std::vector<bool> nullable = nullable_rules(g_);
    for (const BigRepeat& r : big_repeats_) {
      if (!nullable[static_cast<size_t>(r.rule)]) continue;
      fail_at(r.at, "too ambiguous: this repetition makes " + std::to_string(r.copies) +
                        " copies of something that can match the empty text (at most " +
                        std::to_string(kMaxNullableRepeat) +
                        "): every split of the text among them is a parse; repeat a part that "
                        "cannot be empty, or use '*'");
    }
  }

  bool at_end() const { return i_ >= s_.size(); }

  // Spaces, newlines and comments.
  void skip_ws() {
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i_;
      } else if (c == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  std::string parse_name(const char* what) {
    const size_t b = i_;
    while (i_ < s_.size() && is_name_char(s_[i_])) ++i_;
    if (b == i_) fail(std::string("expected ") + what);
    return std::string(s_.substr(b, i_ - b));
  }

  // True when a name followed by '::=' starts at i_ (the next rule).
  bool at_rule_start() {
    const size_t save = i_;
    size_t k = i_;
    while (k < s_.size() && is_name_char(s_[k])) ++k;
    if (k == i_) return false;
    i_ = k;
    skip_ws();
    const bool yes = s_.compare(i_, 3, "::=") == 0;
    i_ = save;
    return yes;
  }

  int32_t rule_id(const std::string& name, size_t at) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    const auto id = static_cast<int32_t>(g_.rules.size());
    g_.rules.push_back({name, {}});
    defined_.push_back(false);
    first_use_.push_back(at);
    ids_.emplace(name, id);
    return id;
  }

  int32_t new_helper(Alts alts) {
    const auto id = static_cast<int32_t>(g_.rules.size());
    g_.rules.push_back({"_helper" + std::to_string(id), std::move(alts)});
    defined_.push_back(true);
    first_use_.push_back(i_);
    return id;
  }

  static GElement ref(int32_t r) {
    GElement e;
    e.kind = GElement::kRule;
    e.rule = r;
    return e;
  }
  static GElement byte(uint8_t b) {
    GElement e;
    e.bytes.set(b);
    return e;
  }

  Alts parse_alternatives(bool nested) {
    Alts alts;
    alts.push_back(parse_sequence(nested));
    for (;;) {
      skip_ws();
      if (i_ < s_.size() && s_[i_] == '|') {
        ++i_;
        alts.push_back(parse_sequence(nested));
      } else {
        break;
      }
    }
    return alts;
  }

  Seq parse_sequence(bool nested) {
    Seq seq;
    for (;;) {
      skip_ws();
      if (at_end()) break;
      const char c = s_[i_];
      if (c == '|') break;
      if (c == ')') {
        if (!nested) fail("unexpected ')' (no group is open)");
        break;
      }
      if (!nested && at_rule_start()) break;
      Seq unit = parse_primary();
      parse_postfix(unit);
      seq.insert(seq.end(), unit.begin(), unit.end());
    }
    return seq;
  }

  Seq parse_primary() {
    const char c = s_[i_];
    if (c == '"') return parse_literal();
    if (c == '[') return {class_element(parse_class())};
    if (c == '.') {
      ++i_;
      return {class_element({{0, 0x10FFFF}})};
    }
    if (c == '(') {
      const size_t open = i_;
      if (++depth_ > kMaxNesting) {
        fail("groups are nested too deeply (at most " + std::to_string(kMaxNesting) + " levels)");
      }
      ++i_;
      Alts alts = parse_alternatives(true);
      --depth_;
      skip_ws();
      if (at_end() || s_[i_] != ')') fail_at(open, "unclosed '(': expected ')'");
      ++i_;
      if (alts.size() == 1) return std::move(alts[0]);
      return {ref(new_helper(std::move(alts)))};
    }
    if (is_name_char(c)) {
      const size_t at = i_;
      std::string name = parse_name("a rule name");
      return {ref(rule_id(name, at))};
    }
    fail(std::string("expected a string \"...\", a class [...], '.', '(' or a rule name, got '") +
         c + "'");
  }

  uint32_t parse_hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      if (at_end()) fail("expected " + std::to_string(digits) + " hex digits in an escape");
      const char h = s_[i_];
      int d = -1;
      if (h >= '0' && h <= '9') d = h - '0';
      if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
      if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
      if (d < 0) fail("expected " + std::to_string(digits) + " hex digits in an escape");
      v = v * 16 + static_cast<uint32_t>(d);
      ++i_;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
      fail("escape names no Unicode character (code point " + std::to_string(v) + ")");
    }
    return v;
  }

  // One character of a literal or class (escapes decoded), as a code point.
  uint32_t parse_char() {
    if (at_end()) fail("unexpected end of grammar inside a string or class");
    const auto c = static_cast<unsigned char>(s_[i_]);
    if (c == '\\') {
      ++i_;
      if (at_end()) fail("unexpected end of grammar after '\\'");
      const char e = s_[i_++];
      switch (e) {
        case 'n':
          return '\n';
        case 'r':
          return '\r';
        case 't':
          return '\t';
        case '\\':
          return '\\';
        case '"':
          return '"';
        case '\'':
          return '\'';
        case '[':
          return '[';
        case ']':
          return ']';
        case '-':
          return '-';
        case '^':
          return '^';
        case '/':
          return '/';
        case 'x':
          return parse_hex(2);
        case 'u':
          return parse_hex(4);
        case 'U':
          return parse_hex(8);
        default:
          --i_;
          fail(std::string("unknown escape '\\") + e +
               "' (expected \\n \\r \\t \\\\ \\\" \\' \\[ \\] \\xHH \\uHHHH \\UHHHHHHHH)");
      }
    }
    if (c < 0x80) {
      ++i_;
      return c;
    }
    int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (c >= 0xF8) n = 0;
    if (n == 0 || i_ + static_cast<size_t>(n) > s_.size()) fail("invalid UTF-8 in the grammar");
    uint32_t cp = c & (0xFF >> (n + 1));
    for (int k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s_[i_ + static_cast<size_t>(k)]);
      if ((d & 0xC0) != 0x80) fail("invalid UTF-8 in the grammar");
      cp = (cp << 6) | (d & 0x3F);
    }
    i_ += static_cast<size_t>(n);
    return cp;
  }

  Seq parse_literal() {
    const size_t open = i_;
    ++i_;
    std::string bytes;
    for (;;) {
      if (at_end()) fail_at(open, "unterminated string: expected '\"'");
      if (s_[i_] == '"') {
        ++i_;
        break;
      }
      append_utf8(bytes, parse_char());
    }
    Seq seq;
    for (char b : bytes) seq.push_back(byte(static_cast<uint8_t>(b)));
    return seq;
  }

  std::vector<std::pair<uint32_t, uint32_t>> parse_class() {
    const size_t open = i_;
    ++i_;
    bool negated = false;
    if (i_ < s_.size() && s_[i_] == '^') {
      negated = true;
      ++i_;
    }
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    for (;;) {
      if (at_end()) fail_at(open, "unterminated character class: expected ']'");
      if (s_[i_] == ']') {
        ++i_;
        break;
      }
      const uint32_t lo = parse_char();
      uint32_t hi = lo;
      if (i_ + 1 < s_.size() && s_[i_] == '-' && s_[i_ + 1] != ']') {
        ++i_;
        hi = parse_char();
        if (hi < lo) fail("character range is reversed (end before start)");
      }
      ranges.emplace_back(lo, hi);
    }
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<uint32_t, uint32_t>> merged;
    for (auto r : ranges) {
      if (!merged.empty() && r.first <= merged.back().second + 1) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    if (negated) {
      std::vector<std::pair<uint32_t, uint32_t>> comp;
      uint32_t next = 0;
      for (auto r : merged) {
        if (r.first > next) comp.emplace_back(next, r.first - 1);
        next = r.second + 1;
      }
      if (next <= 0x10FFFF) comp.emplace_back(next, 0x10FFFF);
      merged = std::move(comp);
    }
    std::vector<ByteRangeSeq> seqs;
    for (auto r : merged) utf8_sequences(r.first, r.second, seqs);
    if (seqs.empty()) fail_at(open, "character class matches no character");
    return merged;
  }

  // A class as one byte-set element (ASCII only) or a reference to a (shared) helper rule.
  GElement class_element(const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
    std::string key;
    for (auto r : ranges) key += std::to_string(r.first) + "-" + std::to_string(r.second) + ",";
    auto it = class_rules_.find(key);
    if (it != class_rules_.end()) return ref(it->second);
    std::vector<ByteRangeSeq> seqs;
    for (auto r : ranges) utf8_sequences(r.first, r.second, seqs);
    GElement single;
    bool has_single = false;
    Alts alts;
    for (const ByteRangeSeq& q : seqs) {
      if (q.size() == 1) {
        single.bytes.set_range(q[0].first, q[0].second);
        has_single = true;
        continue;
      }
      Seq seq;
      for (auto br : q) {
        GElement e;
        e.bytes.set_range(br.first, br.second);
        seq.push_back(e);
      }
      alts.push_back(std::move(seq));
    }
    if (alts.empty()) return single;
    if (has_single) alts.insert(alts.begin(), Seq{single});
    const int32_t id = new_helper(std::move(alts));
    class_rules_.emplace(key, id);
    return ref(id);
  }

  int parse_count() {
    const size_t b = i_;
    long v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      v = v * 10 + (s_[i_] - '0');
      if (v > kMaxRepeat) {
        fail_at(b, "repetition count is too large (at most " + std::to_string(kMaxRepeat) + ")");
      }
      ++i_;
    }
    if (b == i_) fail("expected a number in '{m,n}'");
    return static_cast<int>(v);
  }

  void parse_postfix(Seq& unit) {
    for (;;) {
      if (at_end()) return;
      const char c = s_[i_];
      int lo = 0, hi = -1;  // hi -1: unbounded
      rep_at_ = i_;
      if (c == '*') {
        ++i_;
      } else if (c == '+') {
        ++i_;
        lo = 1;
      } else if (c == '?') {
        ++i_;
        hi = 1;
      } else if (c == '{') {
        const size_t open = i_;
        ++i_;
        skip_ws();
        lo = parse_count();
        skip_ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          skip_ws();
          hi = (i_ < s_.size() && s_[i_] == '}') ? -1 : parse_count();
          skip_ws();
        } else {
          hi = lo;
        }
        if (at_end() || s_[i_] != '}') fail_at(open, "unclosed '{': expected '}'");
        ++i_;
        if (hi >= 0 && hi < lo) {
          fail_at(open, "repetition {" + std::to_string(lo) + "," + std::to_string(hi) +
                            "}: the maximum is smaller than the minimum");
        }
      } else {
        return;
      }
      unit = repeat(std::move(unit), lo, hi);
    }
  }

  // What a helper rule made by repeat() matches: its element x, from 0 to `hi` times (-1: any).
  struct Rep {
    GElement x;
    int hi;
  };

  static bool same(const GElement& a, const GElement& b) {
    return a.kind == b.kind &&
           (a.kind == GElement::kRule ? a.rule == b.rule : a.bytes.w == b.bytes.w);
  }

  // `unit` as repeat() made it from one element: x{lo,hi} (x* x? x{0,n} as one helper, x+ as x
  // and the helper of x*). False for anything else.
  bool as_repetition(const Seq& unit, GElement& x, int& lo, int& hi) const {
    auto rep_of = [&](const GElement& e) -> const Rep* {
      if (e.kind != GElement::kRule) return nullptr;
      const auto it = reps_.find(e.rule);
      return it == reps_.end() ? nullptr : &it->second;
    };
    if (unit.size() == 1) {
      if (const Rep* r = rep_of(unit[0])) {
        x = r->x, lo = 0, hi = r->hi;
        return true;
      }
    } else if (unit.size() == 2) {
      const Rep* r = rep_of(unit[1]);
      if (r && r->hi < 0 && same(unit[0], r->x)) {
        x = r->x, lo = 1, hi = -1;
        return true;
      }
    }
    return false;
  }

  Seq repeat(Seq unit, int lo, int hi) {
    // A repetition of a repetition (x*+, (x+)*, (x?){2,5}, ...) is one repetition of x: nested,
    // every way of splitting the text among the levels would be another parse, and a matcher
    // would follow 2^depth stacks (found by fuzz_gbnf: [^]*+++...+ took minutes to compile).
    GElement base;
    int a = 0, b = 0;
    if (as_repetition(unit, base, a, b)) {
      if (b < 0) return repeat(Seq{base}, lo * a, -1);  // (x*){lo,hi} = x*, (x+){lo,hi} = x{lo,}
      if (b == 1) return repeat(Seq{base}, 0, hi);      // (x?){lo,hi} = x{0,hi}
    }
    // The repeated thing as one element; a byte set repeated many times gets its own rule so its
    // token table is computed once and shared by every copy.
    GElement x;
    const int most = hi < 0 ? lo : hi;
    if (unit.size() == 1 && (unit[0].kind == GElement::kRule || most <= 4)) {
      x = unit[0];
    } else {
      x = ref(new_helper({std::move(unit)}));
    }
    if (x.kind == GElement::kRule && most > kMaxNullableRepeat) {
      big_repeats_.push_back({x.rule, most, rep_at_});
    }
    Seq out;
    for (int k = 0; k < lo; ++k) out.push_back(x);
    if (hi < 0) {
      const int32_t star = new_helper({});
      g_.rules[static_cast<size_t>(star)].alts = {{x, ref(star)}, {}};
      out.push_back(ref(star));
      reps_[star] = {x, -1};
    } else if (hi > lo) {
      int32_t prev = new_helper({{x}, {}});
      for (int k = 1; k < hi - lo; ++k) prev = new_helper({{x, ref(prev)}, {}});
      out.push_back(ref(prev));
      reps_[prev] = {x, hi - lo};
    }
    return out;
  }

  std::string_view s_;
  size_t i_ = 0;
  int depth_ = 0;
  Grammar g_;
  std::map<std::string, int32_t> ids_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  std::map<std::string, int32_t> class_rules_;
  std::map<int32_t, Rep> reps_;  // the helpers repeat() made
  // Repetitions of a rule with more than kMaxNullableRepeat copies (checked once parsed).
  struct BigRepeat {
    int32_t rule;
    int copies;
    size_t at;
  };
  std::vector<BigRepeat> big_repeats_;
  size_t rep_at_ = 0;  // where the repetition operator being parsed starts
};

}  // namespace

Grammar parse_gbnf(std::string_view text, std::string_view root) {
  return Parser(text).run(root);
}

}  // namespace inferd::grammar
