// Strings and numbers in the JSON Schema converter (json_schema_converter.h): string lengths,
// formats and patterns; integer and number ranges as exact digit-range expressions.
#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/json_schema_converter.h"
#include "grammar/regex_converter.h"

namespace inferd::grammar::json_schema_detail {

namespace {

// Same-length decimal strings lo <= hi: an expression matching exactly the numbers between.
std::string same_length_range(const std::string& lo, const std::string& hi) {
  if (lo.empty()) return "";
  if (lo == hi) return gbnf_literal(lo);
  size_t i = 0;
  while (lo[i] == hi[i]) ++i;
  std::string prefix = i ? gbnf_literal(lo.substr(0, i)) + " " : "";
  char dlo = lo[i], dhi = hi[i];
  std::string rlo = lo.substr(i + 1), rhi = hi.substr(i + 1);
  size_t rest = rlo.size();
  bool lo_zeros = rlo.find_first_not_of('0') == std::string::npos;
  bool hi_nines = rhi.find_first_not_of('9') == std::string::npos;
  char full_lo = lo_zeros ? dlo : static_cast<char>(dlo + 1);
  char full_hi = hi_nines ? dhi : static_cast<char>(dhi - 1);
  std::vector<std::string> alts;
  auto digit_class = [](char a, char b) {
    if (a == b) return gbnf_literal(std::string(1, a));
    std::string s = "[";
    s += a;
    s += '-';
    s += b;
    s += ']';
    return s;
  };
  auto rest_digits = [&]() {
    if (rest == 0) return std::string();
    if (rest == 1) return std::string(" [0-9]");
    return " [0-9]{" + std::to_string(rest) + "}";
  };
  if (!lo_zeros)
    alts.push_back(gbnf_literal(std::string(1, dlo)) + " " +
                   same_length_range(rlo, std::string(rest, '9')));
  if (full_lo <= full_hi) alts.push_back(digit_class(full_lo, full_hi) + rest_digits());
  if (!hi_nines)
    alts.push_back(gbnf_literal(std::string(1, dhi)) + " " +
                   same_length_range(std::string(rest, '0'), rhi));
  if (alts.size() == 1) return prefix + alts[0];
  std::string s = prefix + "(";
  for (size_t k = 0; k < alts.size(); ++k) s += (k ? " | " : " ") + alts[k];
  return s + " )";
}

int64_t pow10(size_t n) {
  int64_t v = 1;
  while (n--) v *= 10;
  return v;
}

// Non-negative integers in [lo, hi], no leading zeros.
std::string uint_range(int64_t lo, int64_t hi) {
  std::string slo = std::to_string(lo), shi = std::to_string(hi);
  std::vector<std::string> alts;
  for (size_t len = slo.size(); len <= shi.size(); ++len) {
    int64_t a = len == slo.size() ? lo : pow10(len - 1);
    int64_t b = len == shi.size() ? hi : pow10(len) - 1;
    alts.push_back(same_length_range(std::to_string(a), std::to_string(b)));
  }
  if (alts.size() == 1) return alts[0];
  std::string s = "(";
  for (size_t k = 0; k < alts.size(); ++k) s += (k ? " | " : " ") + alts[k];
  return s + " )";
}

}  // namespace

std::string Converter::string_expr(const Json& s, const std::string& path) {
  auto count = [&](const char* k) -> int64_t {
    if (!s.contains(k)) return -1;
    const Json& v = s[k];
    if (!v.is_number() || v.get<double>() < 0 || std::floor(v.get<double>()) != v.get<double>())
      fail_at(path, std::string("'") + k + "' must be a non-negative integer");
    return static_cast<int64_t>(std::min(v.get<double>(), 1e9));
  };
  int64_t min = count("minLength"), max = count("maxLength");
  // GBNF counts stop at kMaxCount: a larger maxLength produces at most kMaxCount characters.
  if (min > kMaxCount)
    fail_at(path, "minLength over " + std::to_string(kMaxCount) + " is not supported");
  if (max > kMaxCount) max = kMaxCount;
  bool lengths = min != -1 || max != -1;
  const std::string quote = "\"\\\"\"";
  if (s.contains("format")) {
    if (!s["format"].is_string()) fail_at(path, "'format' must be a string");
    std::string f = s["format"].get<std::string>();
    static const std::set<std::string> known = {"date", "time",  "date-time",
                                                "uuid", "email", "ipv4"};
    if (!known.count(f))
      fail_at(path, "unsupported format '" + f +
                        "': expected one of date, time, date-time, uuid, email, ipv4");
    if (lengths || s.contains("pattern"))
      fail_at(path, "'format' together with minLength, maxLength or pattern is not supported");
    return quote + " " + prim(f) + " " + quote;
  }
  if (s.contains("pattern")) {
    if (!s["pattern"].is_string()) fail_at(path, "'pattern' must be a string");
    if (lengths) fail_at(path, "'pattern' together with minLength or maxLength is not supported");
    std::string e;
    try {
      e = regex_to_gbnf_expr(s["pattern"].get<std::string>(), RegexTarget::kJsonString, true,
                             prim("char"));
    } catch (const GrammarError& err) {
      fail_at(path + "/pattern", err.what());
    }
    return quote + " " + e + " " + quote;
  }
  if (!lengths) return prim("string");
  if (min == -1) min = 0;
  if (max != -1 && max < min) fail_at(path, "maxLength is smaller than minLength");
  return quote + " " + repeat(prim("char"), min, max) + " " + quote;
}

bool Converter::bound(const Json& s, const char* k, const std::string& path, double& out) {
  if (!s.contains(k) || s[k].is_boolean()) return false;
  if (!s[k].is_number()) fail_at(path, std::string("'") + k + "' must be a number");
  out = s[k].get<double>();
  if (!(std::fabs(out) <= kMaxBound))
    fail_at(path, std::string("'") + k + "' " + s[k].dump() + " is beyond the supported +-1e17");
  return true;
}

std::string Converter::number_expr(const Json& s, const std::string& path, bool integer) {
  double v;
  // Lower bound: value and whether it is exclusive (draft 4's boolean form included).
  bool has_lo = false, ex_lo = false, has_hi = false, ex_hi = false;
  double lo = 0, hi = 0;
  if (bound(s, "minimum", path, v)) {
    has_lo = true, lo = v;
    ex_lo = s.contains("exclusiveMinimum") && s["exclusiveMinimum"] == true;
  }
  if (bound(s, "exclusiveMinimum", path, v) && (!has_lo || v >= lo))
    has_lo = true, lo = v, ex_lo = true;
  if (bound(s, "maximum", path, v)) {
    has_hi = true, hi = v;
    ex_hi = s.contains("exclusiveMaximum") && s["exclusiveMaximum"] == true;
  }
  if (bound(s, "exclusiveMaximum", path, v) && (!has_hi || v <= hi))
    has_hi = true, hi = v, ex_hi = true;
  if (!has_lo && !has_hi) return prim(integer ? "integer" : "number");
  // Integers: bounds to whole numbers, inclusive.
  int64_t a = 0, b = 0;
  if (has_lo) {
    double c = std::ceil(lo);
    if (c != lo) ex_lo = false;  // rounded inwards: strictly above lo already
    a = static_cast<int64_t>(c);
  }
  if (has_hi) {
    double f = std::floor(hi);
    if (f != hi) ex_hi = false;
    b = static_cast<int64_t>(f);
  }
  if (!has_lo) a = std::min<int64_t>(-kCap, b);
  if (!has_hi) b = std::max<int64_t>(kCap, a);
  if (integer) {
    if (ex_lo) ++a;
    if (ex_hi) --b;
    ex_lo = ex_hi = false;
  }
  if (a > b || (a == b && (ex_lo || ex_hi)))
    fail_at(path, "the numeric bounds leave no " + std::string(integer ? "integer" : "number") +
                      " (non-integer bounds of numbers are rounded inwards)");
  std::vector<std::string> alts;
  if (integer) {
    if (b >= 0) alts.push_back(uint_range(std::max<int64_t>(a, 0), b));
    if (a < 0) alts.push_back("\"-\" " + uint_range(std::max<int64_t>(1, -b), -a));
    return group(alternation(alts));
  }
  // Numbers: non-negative part [max(a,0), b] and negative part by magnitude [max(-b,0), -a].
  if (b >= 0) {
    bool exl = a >= 0 ? ex_lo : false;
    std::string m = magnitude_range(std::max<int64_t>(a, 0), exl, b, ex_hi);
    if (!m.empty()) alts.push_back(m);
  }
  if (a < 0) {
    bool exl = b < 0 ? ex_hi : false;
    std::string m = magnitude_range(std::max<int64_t>(-b, 0), exl, -a, ex_lo);
    if (!m.empty()) alts.push_back("\"-\" " + group(m));
  }
  if (alts.empty()) fail_at(path, "the numeric bounds leave no number");
  return group(alternation(alts));
}

std::string Converter::magnitude_range(int64_t lo, bool ex_lo, int64_t hi, bool ex_hi) {
  const std::string frac = "( \".\" [0-9]{1,15} )?";
  const std::string nonzero_frac = "\".\" [0-9]{0,14} [1-9]";
  if (lo == hi) return ex_lo || ex_hi ? "" : gbnf_literal(std::to_string(lo));
  std::vector<std::string> alts;
  if (lo + 1 <= hi - 1) alts.push_back(uint_range(lo + 1, hi - 1) + " " + frac);
  alts.push_back(gbnf_literal(std::to_string(lo)) + " " + (ex_lo ? nonzero_frac : frac));
  if (!ex_hi) alts.push_back(gbnf_literal(std::to_string(hi)));
  return alternation(alts);
}

}  // namespace inferd::grammar::json_schema_detail
