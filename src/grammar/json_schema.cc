// JSON Schema -> GBNF (json_schema.h): the public entry points, the walk over a schema's
// keywords (types, const / enum, anyOf / oneOf; json_schema_converter.h lists the other parts),
// the keyword tables and the GBNF text helpers the parts share.
#include "grammar/json_schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/json_schema_converter.h"
#include "grammar/regex_converter.h"

namespace inferd::grammar::json_schema_detail {

namespace {

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

std::string where(const std::string& path) {
  return path.empty() ? "(root)" : path;
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

}  // namespace

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

[[noreturn]] void fail_at(const std::string& path, const std::string& what) {
  throw GrammarError("JSON Schema at " + where(path) + ": " + what);
}

std::string alternation(const std::vector<std::string>& alts) {
  if (alts.size() == 1) return alts[0];
  std::string s = "(";
  for (size_t k = 0; k < alts.size(); ++k) s += (k ? " | " : " ") + alts[k];
  return s + " )";
}

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

Converter::Converter(const Json& doc, const JsonSchemaOptions& options) : doc_(doc), opt_(options) {
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

std::string Converter::run() {
  std::string e = visit(doc_, "");
  std::string out = opt_.root + " ::= " + e + "\n";
  for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
  return out;
}

std::string Converter::json_object() {
  std::string out = opt_.root + " ::= " + prim("object") + "\n";
  for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
  return out;
}

std::string Converter::new_name(const std::string& base) {
  std::string b;
  for (char c : base) b += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '-';
  if (b.empty()) b = "x";
  std::string n = opt_.prefix + b;
  for (int i = 2; names_.count(n); ++i) n = opt_.prefix + b + "-" + std::to_string(i);
  names_.insert(n);
  return n;
}

size_t Converter::reserve(const std::string& name) {
  rules_.emplace_back(name, "");
  return rules_.size() - 1;
}

std::string Converter::add_rule(const std::string& base, const std::string& body) {
  std::string n = new_name(base);
  rules_.emplace_back(n, body);
  return n;
}

std::string Converter::visit(const Json& s, const std::string& path) {
  if (s.is_boolean()) {
    if (s.get<bool>()) return prim("value");
    fail_at(path, "schema 'false' matches nothing");
  }
  if (!s.is_object()) fail_at(path, "expected a schema (an object or a boolean), got " + s.dump());
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
    return visit(merge_all_of(s, path), path);  // an allOf inside a part is merged there
  }
  if (s.contains("anyOf") || s.contains("oneOf")) return any_of_expr(s, path);
  std::vector<std::string> types = declared_types(s, path);
  if (s.contains("const")) return const_expr(s, types, path);
  if (s.contains("enum")) return enum_expr(s, types, path);
  if (types.empty()) {
    types = implied_types(s);
    if (types.empty()) return prim("value");
  }
  return typed_expr(s, types, path);
}

std::string Converter::any_of_expr(const Json& s, const std::string& path) {
  const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
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

std::vector<std::string> Converter::declared_types(const Json& s, const std::string& path) {
  std::vector<std::string> types;
  if (!s.contains("type")) return types;
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
    if (ty != "object" && ty != "array" && ty != "string" && ty != "number" && ty != "integer" &&
        ty != "boolean" && ty != "null")
      fail_at(path, "unknown type '" + ty +
                        "': expected object, array, string, number, integer, boolean or null");
  return types;
}

std::vector<std::string> Converter::implied_types(const Json& s) {
  std::vector<std::string> types;
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
  return types;
}

std::string Converter::const_expr(const Json& s, const std::vector<std::string>& types,
                                  const std::string& path) {
  if (!types.empty() && std::none_of(types.begin(), types.end(), [&](const std::string& t) {
        return type_matches(s["const"], t);
      }))
    fail_at(path, "'const' " + s["const"].dump() + " does not have the schema's type");
  return gbnf_literal(s["const"].dump());
}

std::string Converter::enum_expr(const Json& s, const std::vector<std::string>& types,
                                 const std::string& path) {
  const Json& e = s["enum"];
  if (!e.is_array() || e.empty()) fail_at(path, "'enum' must be a non-empty array");
  std::vector<std::string> alts;
  for (const auto& v : e) {
    if (!types.empty() && std::none_of(types.begin(), types.end(),
                                       [&](const std::string& t) { return type_matches(v, t); }))
      continue;
    alts.push_back(gbnf_literal(v.dump()));
  }
  if (alts.empty()) fail_at(path, "no 'enum' value has the schema's type");
  return alternation(alts);
}

std::string Converter::typed_expr(const Json& s, const std::vector<std::string>& types,
                                  const std::string& path) {
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

bool Converter::has_validation(const Json& s, std::initializer_list<const char*> except) {
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (is_annotation(it.key())) continue;
    bool skip = false;
    for (const char* e : except) skip |= it.key() == e;
    if (!skip) return true;
  }
  return false;
}

}  // namespace inferd::grammar::json_schema_detail

namespace inferd::grammar {

using json_schema_detail::Converter;

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
