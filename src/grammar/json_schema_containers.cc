// Objects and arrays in the JSON Schema converter (json_schema_converter.h): properties in the
// schema's order (required ones required, optional ones skippable), additional properties keyed by
// every other string, prefix items, item counts.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "grammar/json_schema_converter.h"
#include "grammar/regex_converter.h"

namespace inferd::grammar::json_schema_detail {

namespace {

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

}  // namespace

std::string Converter::rule_base(const std::string& path, const char* fallback) {
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

std::string Converter::other_key(const std::vector<std::string>& names, const std::string& base) {
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

std::vector<uint32_t> Converter::decode(const std::string& s) {
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

std::string Converter::object_expr(const Json& s, const std::string& path) {
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
    kvs.push_back(gbnf_literal(Json(key).dump()) + " " + ws + " \":\" " + ws + " " + v + " " + ws);
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

std::string Converter::array_expr(const Json& s, const std::string& path) {
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
    // Clamped before the cast (found by fuzz_json_schema: minItems 1.8e39 overflowed int64).
    return static_cast<int64_t>(std::min(v.get<double>(), 1e9));
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
        std::string more;
        if (hi != 1) {
          more = " ";
          more += repeat(sep_item, std::max<int64_t>(0, lo - 1), hi == -1 ? -1 : hi - 1);
        }
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

}  // namespace inferd::grammar::json_schema_detail
