// UTF-8 and Unicode helpers for the tokenizer, with the semantics of the Rust functions Hugging
// Face `tokenizers` uses (char::is_whitespace, String::from_utf8_lossy, ...). Character properties
// and normalization come from utf8proc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace inferd::unicode {

// Length of the UTF-8 sequence that starts with byte `b` (1 for bytes that cannot start one).
inline size_t utf8_len(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at `s[i]` of valid UTF-8 and advances `i`.
inline uint32_t next_cp(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  const size_t n = utf8_len(b0);
  uint32_t cp = n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (size_t k = 1; k < n && i + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  }
  i += n;
  return cp;
}

// Decodes the code point that ends at `s[i-1]` of valid UTF-8 and moves `i` back.
uint32_t prev_cp(std::string_view s, size_t& i);

using inferd::append_utf8;  // core/utf8.h

// True when `s` is well-formed UTF-8.
bool is_valid_utf8(std::string_view s);

// Appends `bytes` to `out`, replacing every maximal ill-formed subsequence with U+FFFD, exactly as
// Rust's String::from_utf8_lossy does.
void append_lossy_utf8(std::string& out, std::string_view bytes);

// Rust char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(uint32_t cp);
// Rust char::is_numeric (general category Nd, Nl or No).
bool is_numeric(uint32_t cp);
// Rust regex `\w` (Alphabetic, marks, Nd, Pc, Join_Control).
bool is_word_char(uint32_t cp);
// Punctuation as in `tokenizers`: ASCII punctuation or general category P*.
bool is_punctuation(uint32_t cp);
// Unicode general category C* (control, format, unassigned, private use, surrogate).
bool is_other(uint32_t cp);
// General category Mn.
bool is_nonspacing_mark(uint32_t cp);

// Rust char::to_lowercase appended to `out` (full mapping: U+0130 becomes two characters).
void append_lowercase(std::string& out, uint32_t cp);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
// Unicode normalization of valid UTF-8 (ASCII text is returned unchanged without work).
std::string normalize(std::string_view s, NormalForm form);

}  // namespace inferd::unicode
