// JSON Schema $ref and allOf (json_schema_converter.h): references into the same schema become a
// rule of their own (or are inlined when the referring schema adds keywords), and allOf parts are
// merged into one schema when that is a simple union of their keywords.
#include <algorithm>
#include <set>
#include <string>

#include "grammar/json_schema_converter.h"

namespace inferd::grammar::json_schema_detail {

const Json& Converter::resolve(const std::string& ref, const std::string& path) {
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

std::string Converter::ref_rule(const std::string& ref, const std::string& path) {
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

Json Converter::inline_ref(const Json& s, const std::string& path, int depth) {
  if (!s.is_object() || !s.contains("$ref")) return s;
  if (depth > 32) fail_at(path, "$ref chain too long (a $ref that refers to itself?)");
  Json target = inline_ref(resolve(s["$ref"].get<std::string>(), path), path, depth + 1);
  Json rest = s;
  rest.erase("$ref");
  return merge(target, rest, path);
}

Json Converter::merge(const Json& a0, const Json& b0, const std::string& path) {
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

Json Converter::merge_all_of(const Json& s, const std::string& path) {
  const Json& all = s["allOf"];
  if (!all.is_array() || all.empty()) fail_at(path, "'allOf' must be a non-empty array");
  Json merged = s;
  merged.erase("allOf");
  for (size_t i = 0; i < all.size(); ++i)
    merged = merge(merged, all[i], path + "/allOf/" + std::to_string(i));
  return merged;
}

}  // namespace inferd::grammar::json_schema_detail
