// A small XML well-formedness check for the SVG the reports write (tests only).
#pragma once

#include <cctype>
#include <string>
#include <vector>

namespace inferd::bench::testing {

// A small XML well-formedness check: balanced tags, quoted attributes, known entities.
inline bool well_formed_xml(const std::string& s, std::string* why) {
  std::vector<std::string> stack;
  size_t i = 0;
  bool root_seen = false;
  while (i < s.size()) {
    if (s[i] == '&') {
      const size_t semi = s.find(';', i);
      const std::string ent = semi == std::string::npos ? "" : s.substr(i, semi - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;") {
        *why = "bad entity at " + std::to_string(i);
        return false;
      }
      i = semi + 1;
      continue;
    }
    if (s[i] != '<') {
      if (s[i] == '>') {
        *why = "stray > at " + std::to_string(i);
        return false;
      }
      if (stack.empty() && !std::isspace(static_cast<unsigned char>(s[i]))) {
        *why = "text outside the root at " + std::to_string(i);
        return false;
      }
      ++i;
      continue;
    }
    const size_t end = s.find('>', i);
    if (end == std::string::npos) {
      *why = "unterminated tag";
      return false;
    }
    std::string tag = s.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.starts_with("?")) continue;  // declaration
    if (tag.starts_with("/")) {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) {
        *why = "mismatched </" + name + ">";
        return false;
      }
      stack.pop_back();
      continue;
    }
    const bool self_closing = tag.ends_with("/");
    if (self_closing) tag.pop_back();
    const std::string name = tag.substr(0, tag.find_first_of(" \n\t"));
    if (name.empty()) {
      *why = "empty tag name";
      return false;
    }
    // Attributes: name="value" pairs.
    size_t q = 0;
    for (char c : tag) q += c == '"';
    if (q % 2) {
      *why = "unbalanced quotes in <" + name + ">";
      return false;
    }
    if (stack.empty()) {
      if (root_seen) {
        *why = "two root elements";
        return false;
      }
      root_seen = true;
    }
    if (!self_closing) stack.push_back(name);
  }
  if (!stack.empty()) {
    *why = "unclosed <" + stack.back() + ">";
    return false;
  }
  return root_seen;
}

}  // namespace inferd::bench::testing
