// Patterns and split behaviors read from tokenizer.json (see split_pattern.h).
#include "tokenizer/split_pattern.h"

#include "core/error.h"

namespace inferd::tok {

using nlohmann::json;

Pattern Pattern::from_json(const json& j) {
  Pattern p;
  if (j.is_object() && j.contains("Regex")) {
    p.regex_ = std::make_shared<Regex>(j.at("Regex").get<std::string>());
  } else if (j.is_object() && j.contains("String")) {
    p.literal_ = j.at("String").get<std::string>();
    if (p.literal_.empty()) p.regex_ = std::make_shared<Regex>("");
  } else {
    fail("tokenizer.json: a pattern must be {{\"Regex\": ...}} or {{\"String\": ...}}, got {}",
         j.dump());
  }
  return p;
}

Pattern Pattern::from_predicate(bool (*pred)(uint32_t)) {
  Pattern p;
  p.pred_ = pred;
  return p;
}

Pattern Pattern::from_char(uint32_t c) {
  Pattern p;
  p.char_ = c;
  return p;
}

Pattern Pattern::from_regex(const std::string& re) {
  Pattern p;
  p.regex_ = std::make_shared<Regex>(re);
  return p;
}

std::string Pattern::replace_all(std::string_view s, std::string_view content) const {
  std::string out;
  out.reserve(s.size());
  for_each_segment(s, false, [&](size_t a, size_t b, bool m) {
    if (m) {
      out += content;
    } else {
      out.append(s.data() + a, b - a);
    }
  });
  return out;
}

Behavior behavior_from(const json& j) {
  const std::string b = j.get<std::string>();
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  fail(
      "tokenizer.json: unknown split behavior '{}' (expected Removed, Isolated, "
      "MergedWithPrevious, MergedWithNext or Contiguous)",
      b);
}

}  // namespace inferd::tok
