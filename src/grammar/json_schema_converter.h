// The JSON Schema -> GBNF converter behind json_schema.h (internal to src/grammar): one Converter
// walks a schema once, writing one rule per object, array and $ref target and sharing the
// primitive rules. Its parts: json_schema.cc (the walk: keywords, types, const / enum, anyOf /
// oneOf, and the GBNF text helpers), json_schema_combine.cc ($ref and allOf),
// json_schema_primitives.cc (the shared rules and string formats), json_schema_containers.cc
// (objects and arrays), json_schema_scalars.cc (string lengths and patterns, number ranges).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/json_schema.h"

namespace inferd::grammar::json_schema_detail {

using Json = nlohmann::ordered_json;

// Integers and numbers without a bound on one side stop at +-kCap (15 digits).
constexpr int64_t kCap = 999'999'999'999'999;
// Bounds beyond this are refused (the digit-range construction works in int64).
constexpr double kMaxBound = 1e17;
// The GBNF parser's largest repetition count.
constexpr int64_t kMaxCount = 10000;

// Keywords that say nothing about validity (plus $defs/definitions, which only hold schemas).
bool is_annotation(const std::string& k);
// A GrammarError naming the schema location `path` (a JSON pointer; "" is the root).
[[noreturn]] void fail_at(const std::string& path, const std::string& what);
// GBNF text: one of `alts` (grouped when more than one); `e` repeated lo..hi times (hi -1:
// unbounded; e must be atomic: a name, literal, class or group); `e` in parentheses.
std::string alternation(const std::vector<std::string>& alts);
std::string repeat(const std::string& e, int64_t lo, int64_t hi);
std::string group(const std::string& e);

class Converter {
 public:
  // Throws GrammarError when options.root or options.prefix are not valid rule names.
  Converter(const Json& doc, const JsonSchemaOptions& options);

  // The grammar of the whole schema: the root rule, then every rule it needs.
  std::string run();
  // The grammar of any JSON object (response_format json_object).
  std::string json_object();

 private:
  // ---- rules (json_schema.cc) ----
  // A fresh rule name from `base` (made of letters, digits and '-'), with the prefix.
  std::string new_name(const std::string& base);
  // Adds rule `name` with its body to be filled in (recursive rules refer to it first).
  size_t reserve(const std::string& name);
  std::string add_rule(const std::string& base, const std::string& body);
  // Shared rules, defined on first use (json_schema_primitives.cc).
  std::string prim(const std::string& kind);

  // ---- the walk (json_schema.cc) ----
  // The GBNF expression matching the JSON texts valid under schema `s` at `path`.
  std::string visit(const Json& s, const std::string& path);
  // anyOf / oneOf (treated alike): one alternative per subschema, each merged with the rest of
  // `s` when that has validation keywords.
  std::string any_of_expr(const Json& s, const std::string& path);
  // The types `type` names (empty when absent).
  std::vector<std::string> declared_types(const Json& s, const std::string& path);
  // The types the keywords of a schema without `type` imply (empty: any value).
  static std::vector<std::string> implied_types(const Json& s);
  std::string const_expr(const Json& s, const std::vector<std::string>& types,
                         const std::string& path);
  std::string enum_expr(const Json& s, const std::vector<std::string>& types,
                        const std::string& path);
  // One alternative per type.
  std::string typed_expr(const Json& s, const std::vector<std::string>& types,
                         const std::string& path);
  // Whether the object has keywords other than annotations and those listed.
  static bool has_validation(const Json& s, std::initializer_list<const char*> except);

  // ---- $ref and allOf (json_schema_combine.cc) ----
  const Json& resolve(const std::string& ref, const std::string& path);
  // The rule of a $ref target (written once, named after the target).
  std::string ref_rule(const std::string& ref, const std::string& path);
  // A schema with its top-level $ref replaced by the target merged with the siblings.
  Json inline_ref(const Json& s, const std::string& path, int depth = 0);
  // allOf of two schemas as one schema, when that is a simple union of their keywords.
  Json merge(const Json& a0, const Json& b0, const std::string& path);
  // `s` with its allOf parts merged into it.
  Json merge_all_of(const Json& s, const std::string& path);

  // ---- objects and arrays (json_schema_containers.cc) ----
  // A rule name base from the schema path (properties / $defs segments left out).
  std::string rule_base(const std::string& path, const char* fallback);
  // Rules matching the JSON string keys that are none of `names` (written without escapes).
  std::string other_key(const std::vector<std::string>& names, const std::string& base);
  static std::vector<uint32_t> decode(const std::string& s);
  std::string object_expr(const Json& s, const std::string& path);
  std::string array_expr(const Json& s, const std::string& path);

  // ---- strings and numbers (json_schema_scalars.cc) ----
  std::string string_expr(const Json& s, const std::string& path);
  // Reads a numeric bound keyword; false when absent.
  bool bound(const Json& s, const char* k, const std::string& path, double& out);
  std::string number_expr(const Json& s, const std::string& path, bool integer);
  // Decimal numbers (no sign, no exponent) x with lo <= x <= hi, strict where asked.
  static std::string magnitude_range(int64_t lo, bool ex_lo, int64_t hi, bool ex_hi);

  const Json& doc_;
  JsonSchemaOptions opt_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::set<std::string> names_;
  std::map<std::string, std::string> prims_;
  std::map<std::string, std::string> refs_;
};

}  // namespace inferd::grammar::json_schema_detail
