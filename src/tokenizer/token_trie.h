// TokenTrie: the leftmost-longest matcher the tokenizer finds added tokens with (in the raw
// text, and in normalized text).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace inferd::tok {

// Leftmost-longest matcher over a set of byte strings (what aho-corasick's LeftmostLongest
// iteration yields): scanning left to right, the longest pattern starting at the first position
// where one starts; then on from its end.
class TokenTrie {
 public:
  void add(std::string_view pattern, int32_t value) {
    if (pattern.empty()) return;
    if (nodes_.empty()) nodes_.emplace_back();
    size_t node = 0;
    for (char c : pattern) {
      const auto b = static_cast<uint8_t>(c);
      auto& ch = nodes_[node].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), b,
                                 [](const auto& p, uint8_t v) { return p.first < v; });
      if (it != ch.end() && it->first == b) {
        node = it->second;
      } else {
        const auto next = static_cast<uint32_t>(nodes_.size());
        ch.insert(it, {b, next});
        nodes_.emplace_back();
        node = next;
      }
    }
    nodes_[node].value = value;
    first_[static_cast<uint8_t>(pattern[0])] = true;
  }
  bool empty() const { return nodes_.empty(); }

  // Calls f(start, end, value) for each match.
  template <typename F>
  void for_each_match(std::string_view s, F&& f) const {
    if (nodes_.empty()) return;
    size_t pos = 0;
    while (pos < s.size()) {
      if (!first_[static_cast<uint8_t>(s[pos])]) {
        ++pos;
        continue;
      }
      size_t node = 0, best_end = 0;
      int32_t best = -1;
      for (size_t i = pos; i < s.size(); ++i) {
        const auto b = static_cast<uint8_t>(s[i]);
        const auto& ch = nodes_[node].children;
        auto it = std::lower_bound(ch.begin(), ch.end(), b,
                                   [](const auto& p, uint8_t v) { return p.first < v; });
        if (it == ch.end() || it->first != b) break;
        node = it->second;
        if (nodes_[node].value >= 0) {
          best = nodes_[node].value;
          best_end = i + 1;
        }
      }
      if (best >= 0) {
        f(pos, best_end, best);
        pos = best_end;
      } else {
        ++pos;
      }
    }
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> children;
    int32_t value = -1;
  };
  std::vector<Node> nodes_;
  bool first_[256] = {};
};

}  // namespace inferd::tok
