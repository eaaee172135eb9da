// A compiled PCRE2 regular expression (UTF + Unicode properties, JIT-compiled) used for the
// tokenizer's split patterns. Patterns are written in the Oniguruma syntax `tokenizers` uses; the
// few differences from PCRE2 that matter for tokenizer patterns are translated.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace inferd {

class Regex {
 public:
  // Throws Error naming the pattern when it does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls f(start, end) for every non-overlapping match in valid UTF-8 `s`, left to right, with
  // the iteration rules of Rust's `find_iter` (an empty match right after the previous match is
  // skipped).
  template <typename F>
  void for_each_match(std::string_view s, F&& f) const {
    size_t pos = 0;
    size_t last_end = std::string_view::npos;
    size_t start = 0, end = 0;
    while (pos <= s.size() && find(s, pos, start, end)) {
      if (start == end && end == last_end) {
        if (pos >= s.size()) break;
        pos = next_char(s, pos);
        continue;
      }
      f(start, end);
      last_end = end;
      pos = start == end ? (end < s.size() ? next_char(s, end) : s.size() + 1) : end;
    }
  }

  const std::string& pattern() const { return pattern_; }

 private:
  bool find(std::string_view s, size_t pos, size_t& start, size_t& end) const;
  static size_t next_char(std::string_view s, size_t pos);

  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// Oniguruma/Rust-regex pattern text to PCRE2 pattern text.
std::string translate_regex(std::string_view pattern);

}  // namespace inferd
