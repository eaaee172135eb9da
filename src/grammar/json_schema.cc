// JSON Schema -> GBNF: walks the schema once, writing one rule per object, array and $ref target
// and sharing the primitive rules (ws, string, number, any value, formats); see json_schema.h for
// what is covered and which subset of the valid documents the grammar produces.
#include "grammar/json_schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "core/utf8.h"
#include "grammar/grammar.h"
#include "grammar/regex_converter.h"

namespace inferd::grammar {

namespace {

using Json = nlohmann::ordered_json;

// Integers and numbers without a bound on one side stop at +-kCap (15 digits).
constexpr int64_t kCap = 999'999'999'999'999;
// Bounds beyond this are refused (the digit-range construction works in int64).
constexpr double kMaxBound = 1e17;
// The GBNF parser's largest repetition count.
constexpr int64_t kMaxCount = 10000;

// Keywords that change what is valid and are not supported.
const std::set<std::string>& unsupported_keywords() {
  static const std::set<std::string> k = {"patternProperties",
                                          "propertyNames",
                                          "minProperties",
                                          "maxProperties",
                                          "dependentRequired",
                                          "dependentSchemas",
                                          "dependencies",
                                          "if",
                                          "then",
                                          "else",
                                          "not",
                                          "contains",
                                          "minContains",
                                          "maxContains",
                                          "unevaluatedProperties",
                                          "unevaluatedItems",
                                          "multipleOf",
                                          "$dynamicRef",
                                          "$recursiveRef",
                                          "contentSchema"};
  return k;
}

// Keywords that say nothing about validity (plus $defs/definitions, which only hold schemas).
bool is_annotation(const std::string& k) {
  static const std::set<std::string> a = {"title",
                                          "description",
                                          "examples",
                                          "default",
                                          "$schema",
                                          "$id",
                                          "$comment",
                                          "deprecated",
                                          "readOnly",
                                          "writeOnly",
                                          "$defs",
                                          "definitions",
                                          "$anchor",
                                          "$vocabulary",
                                          "contentMediaType",
                                          "contentEncoding",
                                          "strict",
                                          "name",
                                          "$dynamicAnchor",
                                          "$recursiveAnchor",
                                          "nullable",
                                          "discriminator",
                                          "x-order"};
  return a.count(k) > 0 || k.rfind("x-", 0) == 0;
}

std::string escape_pointer(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string where(const std::string& path) {
  return path.empty() ? "(root)" : path;
}

[[noreturn]] void fail_at(const std::string& path, const std::string& what) {
  throw GrammarError("JSON Schema at " + where(path) + ": " + what);
}

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
    return "[" + std::string(1, a) + "-" + std::string(1, b) + "]";
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

std::string alternation(const std::vector<std::string>& alts) {
  if (alts.size() == 1) return alts[0];
  std::string s = "(";
  for (size_t k = 0; k < alts.size(); ++k) s += (k ? " | " : " ") + alts[k];
  return s + " )";
}

// e repeated lo..hi times (hi -1: unbounded); e must be atomic (a name, literal, class or group).
std::string repeat(const std::string& e, int64_t lo, int64_t hi) {
  if (hi == 0) return "\"\"";
  if (lo == 0 && hi == -1) return e + "*";
  if (lo == 1 && hi == -1) return e + "+";
  if (lo == 0 && hi == 1) return e + "?";
  if (lo == 1 && hi == 1) return e;
  if (hi == -1) return e + "{" + std::to_string(lo) + ",}";
  if (lo == hi) return e + "{" + std::to_string(lo) + "}";
  return e + "{" + std::to_string(lo) + "," + std::to_string(hi) + "}";
}

std::string group(const std::string& e) {
  return "( " + e + " )";
}

bool type_matches(const Json& v, const std::string& type) {
  if (type == "null") return v.is_null();
  if (type == "boolean") return v.is_boolean();
  if (type == "string") return v.is_string();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "number") return v.is_number();
  if (type == "integer")
    return v.is_number_integer() ||
           (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  return false;
}

class Converter {
 public:
  Converter(const Json& doc, const JsonSchemaOptions& options) : doc_(doc), opt_(options) {
    auto valid = [](const std::string& s) {
      return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      });
    };
    if (opt_.root.empty() || !valid(opt_.root))
      throw GrammarError("JSON Schema: root rule name '" + opt_.root +
                         "' must be letters, digits, '_' or '-'");
    if (!valid(opt_.prefix))
      throw GrammarError("JSON Schema: rule prefix '" + opt_.prefix +
                         "' must be letters, digits, '_' or '-'");
    names_.insert(opt_.root);
  }

  std::string run() {
    std::string e = visit(doc_, "");
    std::string out = opt_.root + " ::= " + e + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out;
  }

  std::string json_object() {
    std::string out = opt_.root + " ::= " + prim("object") + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out;
  }

 private:
  // ---- rules ----

  std::string new_name(const std::string& base) {
    std::string b;
    for (char c : base) b += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '-';
    if (b.empty()) b = "x";
    std::string n = opt_.prefix + b;
    for (int i = 2; names_.count(n); ++i) n = opt_.prefix + b + "-" + std::to_string(i);
    names_.insert(n);
    return n;
  }
  size_t reserve(const std::string& name) {
    rules_.emplace_back(name, "");
    return rules_.size() - 1;
  }
  std::string add_rule(const std::string& base, const std::string& body) {
    std::string n = new_name(base);
    rules_.emplace_back(n, body);
    return n;
  }

  // Shared rules, defined on first use.
  std::string prim(const std::string& kind) {
    auto it = prims_.find(kind);
    if (it != prims_.end()) return it->second;
    std::string n = new_name(kind);
    prims_[kind] = n;
    size_t idx = reserve(n);
    std::string body;
    if (kind == "ws") {
      body = "( \" \" | \"\\n\" [ \\t]{0,20} )?";
    } else if (kind == "char") {
      body = gbnf_class(json_raw_chars()) + " | \"\\\\\" ( [\\x22\\x5C/bfnrt] | \"u\" " +
             prim("hex-no-surrogate") + " )";
    } else if (kind == "hex-no-surrogate") {
      body = "[0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}";
    } else if (kind == "string") {
      body = "\"\\\"\" " + prim("char") + "* \"\\\"\"";
    } else if (kind == "integer") {
      body = "\"-\"? ( \"0\" | [1-9] [0-9]{0,14} )";
    } else if (kind == "number") {
      body =
          "\"-\"? ( \"0\" | [1-9] [0-9]{0,14} ) ( \".\" [0-9]{1,15} )? ( [eE] [+\\x2D]? [0-9]{1,2} "
          ")?";
    } else if (kind == "boolean") {
      body = "\"true\" | \"false\"";
    } else if (kind == "value") {
      body = prim("object") + " | " + prim("array") + " | " + prim("string") + " | " +
             prim("number") + " | " + prim("boolean") + " | \"null\"";
    } else if (kind == "object") {
      std::string ws = prim("ws");
      std::string kv = prim("string") + " " + ws + " \":\" " + ws + " " + prim("value") + " " + ws;
      body = "\"{\" " + ws + " ( " + kv + " ( \",\" " + ws + " " + kv + " )* )? \"}\"";
    } else if (kind == "array") {
      std::string ws = prim("ws");
      std::string v = prim("value") + " " + ws;
      body = "\"[\" " + ws + " ( " + v + " ( \",\" " + ws + " " + v + " )* )? \"]\"";
    } else if (kind == "date") {
      std::string d31 = "( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )";
      std::string d30 = "( \"0\" [1-9] | [12] [0-9] | \"30\" )";
      std::string d28 = "( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] )";
      body = "[0-9]{4} \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" " + d31 +
             " | ( \"0\" [469] | \"11\" ) \"-\" " + d30 + " | \"02-\" " + d28 + " ) | " +
             prim("leap-year") + " \"-02-29\"";
    } else if (kind == "leap-year") {
      // Divisible by 4 and not by 100, or by 400.
      std::string by4 = "\"0\" [48] | [2468] [048] | [13579] [26]";
      body = "[0-9]{2} ( " + by4 + " ) | ( " + by4 + " | \"00\" ) \"00\"";
    } else if (kind == "time") {
      body =
          "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,9} )? "
          "( [Zz] | [+\\x2D] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )";
    } else if (kind == "date-time") {
      body = prim("date") + " \"T\" " + prim("time");
    } else if (kind == "uuid") {
      body =
          "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" "
          "[0-9a-fA-F]{12}";
    } else if (kind == "email") {
      std::string atom = "[a-zA-Z0-9!#$%&'*+/=?\\x5E_`{|}~\\x2D]{1,32}";
      std::string label = "[a-zA-Z0-9] ( [a-zA-Z0-9\\x2D]{0,30} [a-zA-Z0-9] )?";
      body = atom + " ( \".\" " + atom + " ){0,3} \"@\" ( " + label + " \".\" ){1,3} " + label;
    } else if (kind == "ipv4") {
      std::string octet =
          "( \"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9] )";
      body = octet + " ( \".\" " + octet + " ){3}";
    } else {
      throw InternalError("json_schema: no primitive rule '" + kind + "'");
    }
    rules_[idx].second = body;
    return n;
  }

  // ---- schema walking ----

  const Json& resolve(const std::string& ref, const std::string& path) {
    if (ref.empty() || ref[0] != '#')
      fail_at(path, "unsupported $ref '" + ref +
                        "': only references into the same schema (#/...) are supported");
    std::string ptr = ref.substr(1);
    try {
      return doc_.at(Json::json_pointer(ptr));
    } catch (const nlohmann::json::exception&) {
      fail_at(path, "$ref '" + ref + "' points at nothing in the schema");
    }
  }

  std::string ref_rule(const std::string& ref, const std::string& path) {
    auto it = refs_.find(ref);
    if (it != refs_.end()) return it->second;
    const Json& target = resolve(ref, path);
    std::string base = ref == "#" ? "root-ref" : "ref-" + ref.substr(ref.rfind('/') + 1);
    std::string n = new_name(base);
    refs_[ref] = n;
    size_t idx = reserve(n);
    std::string body = visit(target, ref.substr(1));
    rules_[idx].second = body;
    return n;
  }

  // A schema with its top-level $ref replaced by the target merged with the siblings.
  Json inline_ref(const Json& s, const std::string& path, int depth = 0) {
    if (!s.is_object() || !s.contains("$ref")) return s;
    if (depth > 32) fail_at(path, "$ref chain too long (a $ref that refers to itself?)");
    Json target = inline_ref(resolve(s["$ref"].get<std::string>(), path), path, depth + 1);
    Json rest = s;
    rest.erase("$ref");
    return merge(target, rest, path);
  }

  // allOf of two schemas as one schema, when that is a simple union of their keywords.
  Json merge(const Json& a0, const Json& b0, const std::string& path) {
    if (a0.is_boolean() && a0.get<bool>()) return b0;
    if (b0.is_boolean() && b0.get<bool>()) return a0;
    if (!a0.is_object() || !b0.is_object())
      fail_at(path, "allOf with a false schema matches nothing");
    Json a = inline_ref(a0, path), b = inline_ref(b0, path);
    // additionalProperties only sees its own part's properties: merging is simple when the part
    // with it names every property of the other part (and the other has none), or both agree.
    auto covers = [](const Json& with, const Json& other) {
      if (other.contains("additionalProperties")) return false;
      if (!other.contains("properties")) return true;
      const Json& mine = with.contains("properties") ? with["properties"] : Json::object();
      for (auto p = other["properties"].begin(); p != other["properties"].end(); ++p)
        if (!mine.contains(p.key())) return false;
      return true;
    };
    bool a_addl = a.contains("additionalProperties"), b_addl = b.contains("additionalProperties");
    if ((a_addl && b.contains("properties")) || (b_addl && a.contains("properties"))) {
      bool same = a_addl && b_addl && a["additionalProperties"] == b["additionalProperties"] &&
                  a.value("properties", Json()) == b.value("properties", Json());
      if (!same && !(a_addl && !b_addl && covers(a, b)) && !(b_addl && !a_addl && covers(b, a)))
        fail_at(path,
                "allOf cannot be merged: 'additionalProperties' in one part does not name every "
                "property of another");
    }
    for (auto it = b.begin(); it != b.end(); ++it) {
      const std::string& k = it.key();
      const Json& v = it.value();
      if (!a.contains(k)) {
        a[k] = v;
        continue;
      }
      Json& x = a[k];
      if (is_annotation(k) || x == v) continue;
      if (k == "type") {
        auto list = [](const Json& t) {
          std::set<std::string> s;
          if (t.is_string())
            s.insert(t.get<std::string>());
          else if (t.is_array())
            for (const auto& e : t) s.insert(e.get<std::string>());
          return s;
        };
        std::set<std::string> ta = list(x), tb = list(v), both;
        for (const auto& t : ta) {
          if (tb.count(t))
            both.insert(t);
          else if (t == "integer" && tb.count("number"))
            both.insert("integer");
          else if (t == "number" && tb.count("integer"))
            both.insert("integer");
        }
        if (both.empty()) fail_at(path, "allOf parts have no type in common");
        x = Json::array();
        for (const auto& t : both) x.push_back(t);
      } else if (k == "properties") {
        for (auto p = v.begin(); p != v.end(); ++p) {
          if (x.contains(p.key()))
            x[p.key()] = Json{{"allOf", Json::array({x[p.key()], p.value()})}};
          else
            x[p.key()] = p.value();
        }
      } else if (k == "required") {
        for (const auto& r : v)
          if (std::find(x.begin(), x.end(), r) == x.end()) x.push_back(r);
      } else if (k == "minimum" || k == "exclusiveMinimum" || k == "minLength" || k == "minItems") {
        if (x.is_number() && v.is_number())
          x = std::max(x.get<double>(), v.get<double>());
        else
          fail_at(path, "allOf cannot be merged: keyword '" + k + "' differs");
      } else if (k == "maximum" || k == "exclusiveMaximum" || k == "maxLength" || k == "maxItems") {
        if (x.is_number() && v.is_number())
          x = std::min(x.get<double>(), v.get<double>());
        else
          fail_at(path, "allOf cannot be merged: keyword '" + k + "' differs");
      } else if (k == "enum") {
        Json both = Json::array();
        for (const auto& e : x)
          if (std::find(v.begin(), v.end(), e) != v.end()) both.push_back(e);
        if (both.empty()) fail_at(path, "allOf parts have no enum value in common");
        x = both;
      } else if (k == "allOf") {
        for (const auto& e : v) x.push_back(e);
      } else {
        fail_at(path, "allOf cannot be merged: keyword '" + k + "' differs between its parts");
      }
    }
    return a;
  }

  // Whether the object has keywords other than annotations and those listed.
  static bool has_validation(const Json& s, std::initializer_list<const char*> except) {
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (is_annotation(it.key())) continue;
      bool skip = false;
      for (const char* e : except) skip |= it.key() == e;
      if (!skip) return true;
    }
    return false;
  }

  std::string visit(const Json& s, const std::string& path) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return prim("value");
      fail_at(path, "schema 'false' matches nothing");
    }
    if (!s.is_object())
      fail_at(path, "expected a schema (an object or a boolean), got " + s.dump());
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      if (unsupported_keywords().count(k))
        throw GrammarError("unsupported JSON Schema keyword '" + k + "' at " + where(path));
      if (k == "uniqueItems" && it.value() != false)
        throw GrammarError("unsupported JSON Schema keyword 'uniqueItems' at " + where(path));
    }
    if (s.contains("$ref")) {
      if (!s["$ref"].is_string()) fail_at(path, "'$ref' must be a string");
      std::string ref = s["$ref"].get<std::string>();
      if (!has_validation(s, {"$ref"})) return ref_rule(ref, path);
      return visit(inline_ref(s, path), path);
    }
    if (s.contains("allOf")) {
      const Json& all = s["allOf"];
      if (!all.is_array() || all.empty()) fail_at(path, "'allOf' must be a non-empty array");
      Json merged = s;
      merged.erase("allOf");
      for (size_t i = 0; i < all.size(); ++i)
        merged = merge(merged, all[i], path + "/allOf/" + std::to_string(i));
      return visit(merged, path);  // an allOf inside a part is merged there
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      if (s.contains("anyOf") && s.contains("oneOf"))
        fail_at(path, "'anyOf' together with 'oneOf' is not supported");
      const Json& alts = s[key];
      if (!alts.is_array() || alts.empty())
        fail_at(path, std::string("'") + key + "' must be a non-empty array");
      Json parent = s;
      parent.erase(key);
      bool plain = !has_validation(parent, {});
      std::vector<std::string> exprs;
      for (size_t i = 0; i < alts.size(); ++i) {
        std::string p = path + "/" + key + "/" + std::to_string(i);
        if (alts[i].is_boolean() && !alts[i].get<bool>()) continue;
        exprs.push_back(plain ? visit(alts[i], p) : visit(merge(parent, alts[i], p), p));
      }
      if (exprs.empty()) fail_at(path, std::string("every alternative of '") + key + "' is false");
      return alternation(exprs);
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const Json& t = s["type"];
      if (t.is_string())
        types.push_back(t.get<std::string>());
      else if (t.is_array() && !t.empty())
        for (const auto& e : t) {
          if (!e.is_string()) fail_at(path, "'type' must be a string or an array of strings");
          types.push_back(e.get<std::string>());
        }
      else
        fail_at(path, "'type' must be a string or a non-empty array of strings");
      for (const auto& ty : types)
        if (ty != "object" && ty != "array" && ty != "string" && ty != "number" &&
            ty != "integer" && ty != "boolean" && ty != "null")
          fail_at(path, "unknown type '" + ty +
                            "': expected object, array, string, number, integer, boolean or null");
    }
    if (s.contains("const")) {
      if (!types.empty() && std::none_of(types.begin(), types.end(), [&](const std::string& t) {
            return type_matches(s["const"], t);
          }))
        fail_at(path, "'const' " + s["const"].dump() + " does not have the schema's type");
      return gbnf_literal(s["const"].dump());
    }
    if (s.contains("enum")) {
      const Json& e = s["enum"];
      if (!e.is_array() || e.empty()) fail_at(path, "'enum' must be a non-empty array");
      std::vector<std::string> alts;
      for (const auto& v : e) {
        if (!types.empty() && std::none_of(types.begin(), types.end(), [&](const std::string& t) {
              return type_matches(v, t);
            }))
          continue;
        alts.push_back(gbnf_literal(v.dump()));
      }
      if (alts.empty()) fail_at(path, "no 'enum' value has the schema's type");
      return alternation(alts);
    }
    if (types.empty()) {
      auto any = [&](std::initializer_list<const char*> keys) {
        for (const char* k : keys)
          if (s.contains(k)) return true;
        return false;
      };
      if (any({"properties", "additionalProperties", "required"})) types.push_back("object");
      if (any({"items", "prefixItems", "minItems", "maxItems", "additionalItems"}))
        types.push_back("array");
      if (any({"minLength", "maxLength", "pattern", "format"})) types.push_back("string");
      if (any({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}))
        types.push_back("number");
      if (types.empty()) return prim("value");
    }
    bool has_number = std::find(types.begin(), types.end(), "number") != types.end();
    std::vector<std::string> alts;
    for (const auto& t : types) {
      if (t == "object")
        alts.push_back(object_expr(s, path));
      else if (t == "array")
        alts.push_back(array_expr(s, path));
      else if (t == "string")
        alts.push_back(string_expr(s, path));
      else if (t == "number")
        alts.push_back(number_expr(s, path, false));
      else if (t == "integer" && !has_number)
        alts.push_back(number_expr(s, path, true));
      else if (t == "boolean")
        alts.push_back(prim("boolean"));
      else if (t == "null")
        alts.push_back("\"null\"");
    }
    return alternation(alts);
  }

  std::string rule_base(const std::string& path, const char* fallback) {
    if (path.empty()) return std::string("root-") + fallback;
    std::string b;
    size_t i = 0;
    while (i < path.size()) {
      size_t j = path.find('/', i + 1);
      std::string seg = path.substr(i + 1, j == std::string::npos ? std::string::npos : j - i - 1);
      if (seg != "properties" && seg != "$defs" && seg != "definitions" && !seg.empty())
        b += (b.empty() ? "" : "-") + seg;
      if (j == std::string::npos) break;
      i = j;
    }
    return b.empty() ? fallback : b;
  }

  // Rules matching the JSON string keys that are none of `names` (written without escapes).
  std::string other_key(const std::vector<std::string>& names, const std::string& base) {
    struct TrieNode {
      bool terminal = false;
      std::map<uint32_t, int> kids;
    };
    std::vector<TrieNode> trie(1);
    for (const auto& n : names) {
      int cur = 0;
      for (uint32_t cp : decode(n)) {
        auto it = trie[cur].kids.find(cp);
        if (it == trie[cur].kids.end()) {
          trie.emplace_back();
          int id = static_cast<int>(trie.size()) - 1;
          trie[cur].kids[cp] = id;
          cur = id;
        } else {
          cur = it->second;
        }
      }
      trie[cur].terminal = true;
    }
    std::string raw_any = gbnf_class(json_raw_chars()) + "*";
    std::vector<std::string> rule_names(trie.size());
    std::vector<size_t> idx(trie.size());
    for (size_t i = 0; i < trie.size(); ++i) {
      rule_names[i] = new_name(base + "-key");
      idx[i] = reserve(rule_names[i]);
    }
    for (size_t i = 0; i < trie.size(); ++i) {
      std::vector<std::string> alts;
      CodepointRanges used;
      for (auto [cp, kid] : trie[i].kids) {
        std::string s;
        append_utf8(s, cp);
        alts.push_back(gbnf_literal(s) + " " + rule_names[kid]);
        used.emplace_back(cp, cp);
      }
      CodepointRanges other = subtract_ranges(json_raw_chars(), used);
      if (!other.empty()) alts.push_back(gbnf_class(other) + " " + raw_any);
      std::string body = alternation(alts);
      if (!trie[i].terminal) body = group(body) + "?";
      rules_[idx[i]].second = body;
    }
    return "\"\\\"\" " + rule_names[0] + " \"\\\"\"";
  }

  static std::vector<uint32_t> decode(const std::string& s) {
    std::vector<uint32_t> out;
    for (size_t i = 0; i < s.size();) {
      auto b = static_cast<unsigned char>(s[i]);
      int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : 4;
      uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
      for (int k = 1; k < len && i + k < s.size(); ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      out.push_back(cp);
      i += len;
    }
    return out;
  }

  std::string object_expr(const Json& s, const std::string& path) {
    std::string ws = prim("ws");
    std::vector<std::pair<std::string, const Json*>> props;
    static const Json kTrue = true;
    if (s.contains("properties")) {
      const Json& p = s["properties"];
      if (!p.is_object()) fail_at(path, "'properties' must be an object");
      for (auto it = p.begin(); it != p.end(); ++it) props.emplace_back(it.key(), &it.value());
    }
    std::set<std::string> required;
    if (s.contains("required")) {
      const Json& r = s["required"];
      if (!r.is_array()) fail_at(path, "'required' must be an array of strings");
      for (const auto& e : r) {
        if (!e.is_string()) fail_at(path, "'required' must be an array of strings");
        required.insert(e.get<std::string>());
      }
    }
    const Json* addl = &kTrue;
    static const Json kFalse = false;
    if (s.contains("additionalProperties"))
      addl = &s["additionalProperties"];
    else if (opt_.strict)
      addl = &kFalse;
    bool addl_allowed = !(addl->is_boolean() && !addl->get<bool>());
    for (const auto& r : required) {
      bool known =
          std::any_of(props.begin(), props.end(), [&](const auto& p) { return p.first == r; });
      if (known) continue;
      if (!addl_allowed)
        fail_at(path, "required property '" + r +
                          "' is not in 'properties' and additionalProperties is false");
      props.emplace_back(r, addl);
    }
    std::string base = rule_base(path, "object");
    std::string name = new_name(base);
    size_t idx = reserve(name);

    std::vector<std::string> kvs;
    std::vector<bool> req;
    std::vector<std::string> names;
    for (const auto& [key, schema] : props) {
      std::string v = visit(*schema, path + "/properties/" + escape_pointer(key));
      kvs.push_back(gbnf_literal(Json(key).dump()) + " " + ws + " \":\" " + ws + " " + v + " " +
                    ws);
      req.push_back(required.count(key) > 0);
      names.push_back(key);
    }
    std::string add_kv;
    if (addl_allowed) {
      std::string key = names.empty() ? prim("string") : other_key(names, base);
      std::string v = visit(*addl, path + "/additionalProperties");
      add_kv = key + " " + ws + " \":\" " + ws + " " + v + " " + ws;
    }
    size_t n = kvs.size();
    // tails[i]: the members from index i on, each after a comma (something came before).
    std::vector<std::string> tails(n + 1);
    tails[n] = addl_allowed ? "( \",\" " + ws + " " + add_kv + " )*" : "";
    for (size_t i = n; i-- > 1;) {
      std::string piece = "\",\" " + ws + " " + kvs[i];
      piece = req[i] ? piece : group(piece) + "?";
      std::string body = tails[i + 1].empty() ? piece : piece + " " + tails[i + 1];
      tails[i] = add_rule(base + "-tail", body);
    }
    size_t first_req = n;
    for (size_t i = 0; i < n; ++i)
      if (req[i]) {
        first_req = i;
        break;
      }
    std::vector<std::string> alts;
    for (size_t j = 0; j < n && j <= first_req; ++j)
      alts.push_back(tails[j + 1].empty() ? kvs[j] : kvs[j] + " " + tails[j + 1]);
    if (first_req == n && addl_allowed)
      alts.push_back(tails[n].empty() ? add_kv : add_kv + " " + tails[n]);
    std::string members;
    if (!alts.empty())
      members = first_req == n ? group(alternation(alts)) + "? " : alternation(alts) + " ";
    rules_[idx].second = "\"{\" " + ws + " " + members + "\"}\"";
    return name;
  }

  std::string array_expr(const Json& s, const std::string& path) {
    std::string ws = prim("ws");
    std::vector<std::string> prefix;
    const Json* rest = nullptr;
    static const Json kTrue = true;
    std::string rest_path;
    if (s.contains("prefixItems")) {
      const Json& p = s["prefixItems"];
      if (!p.is_array()) fail_at(path, "'prefixItems' must be an array of schemas");
      for (size_t i = 0; i < p.size(); ++i)
        prefix.push_back(visit(p[i], path + "/prefixItems/" + std::to_string(i)));
      rest = s.contains("items") ? &s["items"] : &kTrue;
      rest_path = path + "/items";
    } else if (s.contains("items") && s["items"].is_array()) {
      const Json& p = s["items"];
      for (size_t i = 0; i < p.size(); ++i)
        prefix.push_back(visit(p[i], path + "/items/" + std::to_string(i)));
      rest = s.contains("additionalItems") ? &s["additionalItems"] : &kTrue;
      rest_path = path + "/additionalItems";
    } else {
      rest = s.contains("items") ? &s["items"] : &kTrue;
      rest_path = path + "/items";
    }
    auto count = [&](const char* k, int64_t dflt) {
      if (!s.contains(k)) return dflt;
      const Json& v = s[k];
      if (!v.is_number() || v.get<double>() < 0 || std::floor(v.get<double>()) != v.get<double>())
        fail_at(path, std::string("'") + k + "' must be a non-negative integer");
      return static_cast<int64_t>(v.get<double>());
    };
    int64_t min = count("minItems", 0), max = count("maxItems", -1);
    if (min > kMaxCount)
      fail_at(path, "minItems over " + std::to_string(kMaxCount) + " is not supported");
    if (max > kMaxCount) max = kMaxCount;  // GBNF counts stop there: at most that many items
    int64_t k = static_cast<int64_t>(prefix.size());
    bool rest_allowed = !(rest->is_boolean() && !rest->get<bool>());
    if (!rest_allowed) max = max == -1 ? k : std::min(max, k);
    if (max != -1 && max < min) fail_at(path, "minItems is larger than the items allowed");
    std::string name = new_name(rule_base(path, "array"));
    size_t idx = reserve(name);
    std::string item = rest_allowed && (max == -1 || max > k) ? visit(*rest, rest_path) : "";
    // Elements from index i on; i > 0 means a comma comes first.
    std::string tail;
    {
      int64_t lo = std::max<int64_t>(0, min - k);
      int64_t hi = max == -1 ? -1 : std::max<int64_t>(0, max - k);
      if (hi != 0 && !item.empty()) {
        std::string sep_item = group("\",\" " + ws + " " + item + " " + ws);
        if (k > 0) {
          tail = repeat(sep_item, lo, hi);
        } else {
          std::string first = item + " " + ws;
          std::string more = hi == 1 ? ""
                                     : " " + repeat(sep_item, std::max<int64_t>(0, lo - 1),
                                                    hi == -1 ? -1 : hi - 1);
          tail = lo >= 1 ? first + more : group(first + more) + "?";
        }
      }
    }
    for (int64_t i = std::min<int64_t>(k, max == -1 ? k : max); i-- > 0;) {
      std::string piece =
          (i ? "\",\" " + ws + " " : std::string()) + prefix[static_cast<size_t>(i)] + " " + ws;
      std::string e = tail.empty() ? piece : piece + " " + tail;
      tail = i >= min ? group(e) + "?" : e;
    }
    rules_[idx].second = "\"[\" " + ws + " " + (tail.empty() ? "" : tail + " ") + "\"]\"";
    return name;
  }

  std::string string_expr(const Json& s, const std::string& path) {
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

  // Reads a numeric bound keyword; false when absent.
  bool bound(const Json& s, const char* k, const std::string& path, double& out) {
    if (!s.contains(k) || s[k].is_boolean()) return false;
    if (!s[k].is_number()) fail_at(path, std::string("'") + k + "' must be a number");
    out = s[k].get<double>();
    if (!(std::fabs(out) <= kMaxBound))
      fail_at(path, std::string("'") + k + "' " + s[k].dump() + " is beyond the supported +-1e17");
    return true;
  }

  std::string number_expr(const Json& s, const std::string& path, bool integer) {
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

  // Decimal numbers (no sign, no exponent) x with lo <= x <= hi, strict where asked.
  static std::string magnitude_range(int64_t lo, bool ex_lo, int64_t hi, bool ex_hi) {
    const std::string frac = "( \".\" [0-9]{1,15} )?";
    const std::string nonzero_frac = "\".\" [0-9]{0,14} [1-9]";
    if (lo == hi) return ex_lo || ex_hi ? "" : gbnf_literal(std::to_string(lo));
    std::vector<std::string> alts;
    if (lo + 1 <= hi - 1) alts.push_back(uint_range(lo + 1, hi - 1) + " " + frac);
    alts.push_back(gbnf_literal(std::to_string(lo)) + " " + (ex_lo ? nonzero_frac : frac));
    if (!ex_hi) alts.push_back(gbnf_literal(std::to_string(hi)));
    return alternation(alts);
  }

  const Json& doc_;
  JsonSchemaOptions opt_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::set<std::string> names_;
  std::map<std::string, std::string> prims_;
  std::map<std::string, std::string> refs_;
};

}  // namespace

std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema,
                                const JsonSchemaOptions& options) {
  return Converter(schema, options).run();
}

std::string json_schema_to_gbnf(const nlohmann::json& schema, const JsonSchemaOptions& options) {
  return json_schema_to_gbnf(nlohmann::ordered_json::parse(schema.dump()), options);
}

std::string json_schema_text_to_gbnf(std::string_view schema_text,
                                     const JsonSchemaOptions& options) {
  nlohmann::ordered_json schema;
  try {
    schema = nlohmann::ordered_json::parse(schema_text);
  } catch (const nlohmann::json::exception& e) {
    throw GrammarError(std::string("JSON Schema is not valid JSON: ") + e.what());
  }
  return json_schema_to_gbnf(schema, options);
}

std::string json_object_gbnf(std::string_view root, std::string_view prefix) {
  static const nlohmann::ordered_json kEmpty = nlohmann::ordered_json::object();
  JsonSchemaOptions o;
  o.root = std::string(root);
  o.prefix = std::string(prefix);
  return Converter(kEmpty, o).json_object();
}

}  // namespace inferd::grammar
