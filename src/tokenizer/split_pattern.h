// Splitting text as tokenizers' Pattern and SplitDelimiterBehavior do: a Pattern (a regex, a
// literal string, one character or a character predicate) covers its input with alternating
// matched and unmatched segments; split_by() turns them into pieces by a Behavior (Removed,
// Isolated, MergedWithPrevious, MergedWithNext, Contiguous). Used by the Split-like
// pre-tokenizers, Metaspace, and the Replace normalizer and decoder.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace inferd::tok {

class Pattern {
 public:
  // {"Regex": ...} or {"String": ...}; throws Error for anything else.
  static Pattern from_json(const nlohmann::json& j);
  static Pattern from_predicate(bool (*pred)(uint32_t));
  static Pattern from_char(uint32_t c);
  static Pattern from_regex(const std::string& re);

  // Calls f(start, end, is_match) for consecutive segments covering `s` (`invert` swaps which
  // segments count as matches).
  template <typename F>
  void for_each_segment(std::string_view s, bool invert, F&& f) const {
    if (s.empty()) return;
    size_t prev = 0;
    auto on_match = [&](size_t start, size_t end) {
      if (prev != start) f(prev, start, invert);
      f(start, end, !invert);
      prev = end;
    };
    if (regex_) {
      regex_->for_each_match(s, on_match);
    } else if (pred_ != nullptr || char_ != 0) {
      size_t i = 0;
      while (i < s.size()) {
        const size_t b = i;
        const uint32_t cp = unicode::next_cp(s, i);
        if (pred_ != nullptr ? pred_(cp) : cp == char_) on_match(b, i);
      }
    } else {
      size_t pos = 0;
      while ((pos = s.find(literal_, pos)) != std::string_view::npos) {
        on_match(pos, pos + literal_.size());
        pos += literal_.size();
      }
    }
    if (prev != s.size()) f(prev, s.size(), invert);
  }

  // Replaces every match with `content`.
  std::string replace_all(std::string_view s, std::string_view content) const;

 private:
  std::shared_ptr<Regex> regex_;
  std::string literal_;
  bool (*pred_)(uint32_t) = nullptr;
  uint32_t char_ = 0;
};

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A "behavior" string; throws Error naming the expected ones.
Behavior behavior_from(const nlohmann::json& j);

// Splits `s` by `pattern` with `behavior`, calling emit(start, end) for every non-empty piece.
template <typename Emit>
void split_by(const Pattern& pattern, bool invert, Behavior behavior, std::string_view s,
              Emit&& emit) {
  struct Seg {
    size_t a, b;
    bool m;
  };
  std::optional<Seg> pending;
  auto out = [&](size_t a, size_t b) {
    if (b > a) emit(a, b);
  };
  switch (behavior) {
    case Behavior::kIsolated:
      pattern.for_each_segment(s, invert, [&](size_t a, size_t b, bool) { out(a, b); });
      return;
    case Behavior::kRemoved:
      pattern.for_each_segment(s, invert, [&](size_t a, size_t b, bool m) {
        if (!m) out(a, b);
      });
      return;
    case Behavior::kMergedWithPrevious: {
      bool prev_match = false;
      pattern.for_each_segment(s, invert, [&](size_t a, size_t b, bool m) {
        if (m && !prev_match && pending) {
          pending->b = b;
        } else {
          if (pending) out(pending->a, pending->b);
          pending = Seg{a, b, m};
        }
        prev_match = m;
      });
      break;
    }
    case Behavior::kMergedWithNext:
      pattern.for_each_segment(s, invert, [&](size_t a, size_t b, bool m) {
        if (pending) {
          if (!m) {
            out(pending->a, b);
            pending.reset();
          } else {
            out(pending->a, pending->b);
            pending = Seg{a, b, m};
          }
        } else if (m) {
          pending = Seg{a, b, m};
        } else {
          out(a, b);
        }
      });
      break;
    case Behavior::kContiguous:
      pattern.for_each_segment(s, invert, [&](size_t a, size_t b, bool m) {
        if (pending && pending->m == m) {
          pending->b = b;
        } else {
          if (pending) out(pending->a, pending->b);
          pending = Seg{a, b, m};
        }
      });
      break;
  }
  if (pending) out(pending->a, pending->b);
}

}  // namespace inferd::tok
