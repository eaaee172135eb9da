// Regex -> GBNF (structured outputs' `regex`, JSON Schema's `pattern`) and choice -> GBNF, plus the
// GBNF text helpers (literals, character classes) the JSON Schema converter shares.
//
// Regex syntax: the subset common to ECMAScript and Python: literals; escapes \d \w \s \D \W \S
// (ECMAScript meanings: ASCII digits and word characters, ECMAScript's white space), \n \t \r \f \v
// \0 \xHH \uHHHH \u{H...} and escaped punctuation; classes [a-z...] and [^...] with ranges and
// escapes; `.` (any character except the line terminators \n \r U+2028 U+2029, as ECMAScript);
// groups ( ), (?: ), (?<name> ), (?P<name> ); alternation; quantifiers * + ? {m} {m,} {m,n}, each
// optionally lazy (`?` suffix: the same language); anchors ^ and $ only at the start and end of the
// pattern or of a top-level alternative. Backreferences, lookaround, word boundaries, Unicode
// property escapes, inline flags and possessive quantifiers are GrammarErrors naming them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace inferd::grammar {

// GBNF whose rule `root` matches exactly the strings the regex fully matches (anchors at the ends
// are allowed and change nothing). Other rules (none today) would be named with `prefix`.
std::string regex_to_gbnf(std::string_view pattern, std::string_view root = "root",
                          std::string_view prefix = "");

// GBNF whose rule `root` matches exactly one of the strings (raw text, no quoting).
std::string choice_to_gbnf(const std::vector<std::string>& choices, std::string_view root = "root",
                           std::string_view prefix = "");

// ---- shared with the JSON Schema converter ----

// Inclusive code point ranges, sorted and disjoint after normalize_ranges.
using CodepointRanges = std::vector<std::pair<uint32_t, uint32_t>>;
void normalize_ranges(CodepointRanges& ranges);
CodepointRanges complement_ranges(const CodepointRanges& ranges);  // within U+0000..U+10FFFF
CodepointRanges subtract_ranges(const CodepointRanges& a, const CodepointRanges& b);

// A GBNF string literal of UTF-8 text, quotes included ("a\"b").
std::string gbnf_literal(std::string_view utf8);
// A GBNF character class of the ranges, as positive ranges ([a-z\x5F]); empty ranges: "".
std::string gbnf_class(const CodepointRanges& ranges);

// The code points a JSON string may hold unescaped: everything but '"', '\', U+0000..U+001F and the
// surrogates.
const CodepointRanges& json_raw_chars();

enum class RegexTarget {
  kRaw,         // the expression matches the text itself
  kJsonString,  // the expression matches the text as it appears inside a JSON string (without
                // the quotes): '"' and '\' escaped, \n \r \t \b \f short escapes; other control
                // characters are never produced
};

// The regex as one GBNF expression (no rule definitions). `search`: JSON Schema's semantics, where
// a pattern matches anywhere unless anchored: an alternative without ^ (or $) gets
// `any_char_expr*` before (after) it; without `search`, the pattern must match the whole text.
std::string regex_to_gbnf_expr(std::string_view pattern, RegexTarget target, bool search,
                               std::string_view any_char_expr = "");

}  // namespace inferd::grammar
