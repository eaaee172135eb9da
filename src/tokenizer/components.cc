#include "tokenizer/components.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace inferd::tok {

using nlohmann::json;

namespace {

std::string type_of(const json& j, const char* what) {
  if (!j.is_object() || !j.contains("type") || !j.at("type").is_string()) {
    fail("tokenizer.json: {} must be an object with a \"type\" string", what);
  }
  return j.at("type").get<std::string>();
}

// True when `v` is an integer that T holds (json's get<T> would cast a float or an integer out of
// range; a float out of range is undefined behaviour).
template <typename T>
bool fits(const json& v) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
  const int64_t x = v.get<int64_t>();
  return std::is_signed_v<T> ? x >= int64_t(std::numeric_limits<T>::min()) &&
                                   x <= int64_t(std::numeric_limits<T>::max())
                             : false;  // negative
}

template <typename T>
T get_or(const json& j, const char* key, T def) {
  if (!j.contains(key) || j.at(key).is_null()) return def;
  const json& v = j.at(key);
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!fits<T>(v))
      fail("tokenizer.json: \"{}\" is {}, expected an integer in range", key, v.dump());
  }
  return v.get<T>();
}

int32_t token_id(const json& v, const char* what) {
  if (!fits<int32_t>(v) || v.get<int64_t>() < 0)
    fail("tokenizer.json: {} token id {} is not a non-negative integer", what, v.dump());
  return v.get<int32_t>();
}

uint32_t single_char(const std::string& s, const char* what) {
  size_t i = 0;
  if (s.empty()) fail("tokenizer.json: {} must be one character, got an empty string", what);
  const uint32_t cp = unicode::next_cp(s, i);
  if (i != s.size()) fail("tokenizer.json: {} must be one character, got '{}'", what, s);
  return cp;
}

// ---- byte-level alphabet ---------------------------------------------------------------------
struct ByteAlphabet {
  std::array<uint32_t, 256> to_char{};
  std::array<std::string, 256> utf8;
  ByteAlphabet() {
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      to_char[b] = printable ? static_cast<uint32_t>(b) : 256 + n++;
      unicode::append_utf8(utf8[b], to_char[b]);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// ---- patterns --------------------------------------------------------------------------------
// A split pattern: a regex, a literal string or a character predicate. `for_each_segment` covers
// the whole input with alternating (start, end, is_match) segments as `tokenizers`' Pattern does.
class Pattern {
 public:
  static Pattern from_json(const json& j) {
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
  static Pattern from_predicate(bool (*pred)(uint32_t)) {
    Pattern p;
    p.pred_ = pred;
    return p;
  }
  static Pattern from_char(uint32_t c) {
    Pattern p;
    p.char_ = c;
    return p;
  }
  static Pattern from_regex(const std::string& re) {
    Pattern p;
    p.regex_ = std::make_shared<Regex>(re);
    return p;
  }

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
  std::string replace_all(std::string_view s, std::string_view content) const {
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

 private:
  std::shared_ptr<Regex> regex_;
  std::string literal_;
  bool (*pred_)(uint32_t) = nullptr;
  uint32_t char_ = 0;
};

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

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

// ---- normalizers -----------------------------------------------------------------------------
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalForm f) : form_(f) {}
  void normalize(std::string& s) const override { s = unicode::normalize(s, form_); }

 private:
  unicode::NormalForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) unicode::append_lowercase(out, unicode::next_cp(s, i));
    s = std::move(out);
  }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t a = 0, b = s.size();
    if (left_) {
      while (a < b) {
        size_t i = a;
        if (!unicode::is_whitespace(unicode::next_cp(s, i))) break;
        a = i;
      }
    }
    if (right_) {
      while (b > a) {
        size_t i = b;
        if (!unicode::is_whitespace(unicode::prev_cp(s, i))) break;
        b = i;
      }
    }
    s = s.substr(a, b - a);
  }

 private:
  bool left_, right_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s = prepend_ + s;
  }

 private:
  std::string prepend_;
};

class AppendNormalizer : public Normalizer {
 public:
  explicit AppendNormalizer(std::string p) : append_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s += append_;
  }

 private:
  std::string append_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Pattern p, std::string content)
      : pattern_(std::move(p)), content_(std::move(content)) {}
  void normalize(std::string& s) const override { s = pattern_.replace_all(s, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class StripAccentsNormalizer : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
      const size_t b = i;
      const uint32_t cp = unicode::next_cp(s, i);
      if (!unicode::is_nonspacing_mark(cp)) out.append(s, b, i - b);
    }
    s = std::move(out);
  }
};

class ByteLevelNormalizer : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size() * 2);
    for (char c : s) out += alphabet().utf8[static_cast<unsigned char>(c)];
    s = std::move(out);
  }
};

class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        chinese_(chinese),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}

  static bool is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
  }

  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
      const uint32_t cp = unicode::next_cp(s, i);
      if (clean_text_) {
        const bool ws = cp == '\t' || cp == '\n' || cp == '\r' || unicode::is_whitespace(cp);
        const bool control = !(cp == '\t' || cp == '\n' || cp == '\r') && unicode::is_other(cp);
        if (cp == 0 || cp == 0xFFFD || control) continue;
        if (ws) {
          out.push_back(' ');
          continue;
        }
      }
      if (chinese_ && is_chinese(cp)) {
        out.push_back(' ');
        unicode::append_utf8(out, cp);
        out.push_back(' ');
        continue;
      }
      unicode::append_utf8(out, cp);
    }
    if (strip_accents_) {
      out = unicode::normalize(out, unicode::NormalForm::kNFD);
      StripAccentsNormalizer().normalize(out);
    }
    if (lowercase_) LowercaseNormalizer().normalize(out);
    s = std::move(out);
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> n) : items_(std::move(n)) {}
  void normalize(std::string& s) const override {
    for (const auto& n : items_) n->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

// ---- pre-tokenizers ---------------------------------------------------------------------------
// `\w` as tokenizers' Whitespace pre-tokenizer sees it: Alphabetic (letters, Nl and the circled
// letters), marks, Nd, Pc and the joiners.
const char* const kWordClass = R"(\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\x{24B6}-\x{24E9})";

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, bool raw)
      : add_prefix_space_(add_prefix_space), raw_(raw) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void pre_tokenize(std::string_view s, bool at_origin, PieceSink sink) const override {
    std::string with_space;
    if (add_prefix_space_ && (s.empty() || s[0] != ' ')) {
      with_space.reserve(s.size() + 1);
      with_space.push_back(' ');
      with_space.append(s);
      s = with_space;
    }
    if (!regex_) {
      emit(s, at_origin, sink);
      return;
    }
    size_t prev = 0;
    regex_->for_each_match(s, [&](size_t a, size_t b) {
      if (prev != a) emit(s.substr(prev, a - prev), at_origin && prev == 0, sink);
      if (b > a) emit(s.substr(a, b - a), at_origin && a == 0, sink);
      prev = b;
    });
    if (prev != s.size()) emit(s.substr(prev), at_origin && prev == 0, sink);
  }

 private:
  void emit(std::string_view piece, bool at_origin, PieceSink sink) const {
    if (piece.empty()) return;
    if (raw_) {
      sink(piece, at_origin);
      return;
    }
    std::string mapped;
    mapped.reserve(piece.size() * 2);
    for (char c : piece) mapped += alphabet().utf8[static_cast<unsigned char>(c)];
    sink(mapped, at_origin);
  }

  bool add_prefix_space_;
  bool raw_;
  std::unique_ptr<Regex> regex_;
};

// Splits by a pattern and behavior (Split, Punctuation, Digits, WhitespaceSplit, Whitespace, ...).
class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern p, Behavior b, bool invert)
      : pattern_(std::move(p)), behavior_(b), invert_(invert) {}
  void pre_tokenize(std::string_view s, bool at_origin, PieceSink sink) const override {
    split_by(pattern_, invert_, behavior_, s,
             [&](size_t a, size_t b) { sink(s.substr(a, b - a), at_origin && a == 0); });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

enum class PrependScheme { kFirst, kAlways, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(uint32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement),
        scheme_(scheme),
        split_(split),
        split_pattern_(Pattern::from_char(replacement)) {
    unicode::append_utf8(rep_, replacement);
  }
  void pre_tokenize(std::string_view s, bool at_origin, PieceSink sink) const override {
    std::string buf;
    buf.reserve(s.size() + rep_.size() * 4);
    for (char c : s) {
      if (c == ' ') {
        buf += rep_;
      } else {
        buf.push_back(c);
      }
    }
    const bool starts = buf.compare(0, rep_.size(), rep_) == 0;
    if (!starts &&
        (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && at_origin))) {
      buf = rep_ + buf;
    }
    if (!split_) {
      if (!buf.empty()) sink(buf, at_origin);
      return;
    }
    std::string_view v = buf;
    split_by(split_pattern_, false, Behavior::kMergedWithNext, v,
             [&](size_t a, size_t b) { sink(v.substr(a, b - a), at_origin && a == 0); });
  }

 private:
  uint32_t replacement_;
  PrependScheme scheme_;
  bool split_;
  Pattern split_pattern_;
  std::string rep_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> items)
      : items_(std::move(items)) {}
  void pre_tokenize(std::string_view s, bool at_origin, PieceSink sink) const override {
    run(0, s, at_origin, sink);
  }

 private:
  void run(size_t i, std::string_view s, bool at_origin, PieceSink sink) const {
    if (i == items_.size()) {
      sink(s, at_origin);
      return;
    }
    items_[i]->pre_tokenize(s, at_origin,
                            [&](std::string_view p, bool o) { run(i + 1, p, o, sink); });
  }
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

bool is_bert_punctuation(uint32_t cp) {
  return unicode::is_punctuation(cp);
}
bool is_whitespace_char(uint32_t cp) {
  return unicode::is_whitespace(cp);
}
bool is_numeric_char(uint32_t cp) {
  return unicode::is_numeric(cp);
}

PrependScheme prepend_scheme_from(const json& j) {
  if (j.contains("prepend_scheme") && j.at("prepend_scheme").is_string()) {
    const std::string s = j.at("prepend_scheme").get<std::string>();
    if (s == "first") return PrependScheme::kFirst;
    if (s == "always") return PrependScheme::kAlways;
    if (s == "never") return PrependScheme::kNever;
    fail("tokenizer.json: Metaspace prepend_scheme must be first, always or never, got '{}'", s);
  }
  return get_or<bool>(j, "add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
}

// ---- decoders -------------------------------------------------------------------------------
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      const size_t mark = bytes.size();
      bool ok = true;
      size_t i = 0;
      while (i < t.size()) {
        const int b = byte_of_char(unicode::next_cp(t, i));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!ok) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    std::string out;
    out.reserve(bytes.size());
    unicode::append_lossy_utf8(out, bytes);
    tokens.assign(1, std::move(out));
  }
  void decode_raw(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::string bytes;
      size_t i = 0;
      while (i < t.size()) {
        const int b = byte_of_char(unicode::next_cp(t, i));
        if (b < 0) {
          bytes = t;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      t = std::move(bytes);
    }
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(uint32_t replacement, PrependScheme scheme)
      : replacement_(replacement), scheme_(scheme) {}
  void decode_chain(std::vector<std::string>& tokens) const override { run(tokens, false); }
  void decode_raw(std::vector<std::string>& tokens) const override { run(tokens, true); }

 private:
  void run(std::vector<std::string>& tokens, bool raw) const {
    for (size_t k = 0; k < tokens.size(); ++k) {
      const std::string& t = tokens[k];
      std::string out;
      out.reserve(t.size());
      size_t i = 0;
      while (i < t.size()) {
        const size_t b = i;
        const uint32_t cp = unicode::next_cp(t, i);
        if (cp == replacement_) {
          if (raw || !(k == 0 && scheme_ != PrependScheme::kNever)) out.push_back(' ');
        } else {
          out.append(t, b, i - b);
        }
      }
      tokens[k] = std::move(out);
    }
  }

  uint32_t replacement_;
  PrependScheme scheme_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (unicode::is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') byte = parse_hex(t[3], t[4]);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
  void decode_raw(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') byte = parse_hex(t[3], t[4]);
      if (byte >= 0) t.assign(1, static_cast<char>(byte));
    }
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int parse_hex(char a, char b) {
    const int h = hex(a), l = hex(b);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(uint32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t a = 0;
      for (size_t k = 0; k < start_ && a < t.size(); ++k) {
        size_t i = a;
        if (unicode::next_cp(t, i) != content_) break;
        a = i;
      }
      size_t b = t.size();
      for (size_t k = 0; k < stop_ && b > a; ++k) {
        size_t i = b;
        if (unicode::prev_cp(t, i) != content_) break;
        b = i;
      }
      t = t.substr(a, b - a);
    }
  }
  // Strip removes the leading space of the first token of a text (Metaspace tokenizers).
  void decode_raw(std::vector<std::string>&) const override {}

 private:
  uint32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern p, std::string content)
      : pattern_(std::move(p)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) t = pattern_.replace_all(t, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

void replace_all_in(std::string& s, std::string_view from, std::string_view to) {
  size_t pos = s.find(from);
  if (pos == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t prev = 0;
  while (pos != std::string::npos) {
    out.append(s, prev, pos - prev);
    out.append(to);
    prev = pos + from.size();
    pos = s.find(from, prev);
  }
  out.append(s, prev, std::string::npos);
  s = std::move(out);
}

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) {
          t.erase(0, prefix_.size());
        } else {
          t = " " + t;
        }
      }
      if (cleanup_) {
        replace_all_in(t, " .", ".");
        replace_all_in(t, " ?", "?");
        replace_all_in(t, " !", "!");
        replace_all_in(t, " ,", ",");
        replace_all_in(t, " ' ", "'");
        replace_all_in(t, " n't", "n't");
        replace_all_in(t, " 'm", "'m");
        replace_all_in(t, " do not", " don't");
        replace_all_in(t, " 's", "'s");
        replace_all_in(t, " 've", "'ve");
        replace_all_in(t, " 're", "'re");
      }
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      replace_all_in(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> d) : items_(std::move(d)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain(tokens);
  }
  void decode_raw(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_raw(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

// ---- post-processors --------------------------------------------------------------------------
class AddIdsProcessor : public PostProcessor {
 public:
  AddIdsProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }
  std::pair<std::vector<int32_t>, std::vector<int32_t>> added_ids() const override {
    return {before_, after_};
  }

 private:
  std::vector<int32_t> before_, after_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> p)
      : items_(std::move(p)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& p : items_) p->process(ids);
  }
  std::pair<std::vector<int32_t>, std::vector<int32_t>> added_ids() const override {
    std::vector<int32_t> before, after;
    for (const auto& p : items_) {
      auto [b, a] = p->added_ids();
      before.insert(before.begin(), b.begin(), b.end());
      after.insert(after.end(), a.begin(), a.end());
    }
    return {before, after};
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

std::unique_ptr<PostProcessor> template_processor(const json& j) {
  if (!j.contains("single") || !j.at("single").is_array()) {
    fail("tokenizer.json: TemplateProcessing needs a \"single\" template");
  }
  const json& specials = j.contains("special_tokens") ? j.at("special_tokens") : json::object();
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const json& piece : j.at("single")) {
    if (piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.contains("SpecialToken")) {
      fail("tokenizer.json: TemplateProcessing piece must be Sequence or SpecialToken, got {}",
           piece.dump());
    }
    const std::string id = piece.at("SpecialToken").at("id").get<std::string>();
    if (!specials.contains(id)) {
      fail("tokenizer.json: TemplateProcessing uses special token '{}' missing from special_tokens",
           id);
    }
    for (const json& x : specials.at(id).at("ids")) {
      (seen_sequence ? after : before).push_back(token_id(x, "TemplateProcessing"));
    }
  }
  return std::make_unique<AddIdsProcessor>(std::move(before), std::move(after));
}

}  // namespace

uint32_t byte_to_char(uint8_t b) {
  return alphabet().to_char[b];
}

int byte_of_char(uint32_t cp) {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t{};
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[alphabet().to_char[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

std::unique_ptr<Normalizer> make_normalizer(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string t = type_of(j, "normalizer");
  if (t == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNFC);
  if (t == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNFD);
  if (t == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNFKC);
  if (t == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNFKD);
  if (t == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (t == "Strip") {
    return std::make_unique<StripNormalizer>(get_or<bool>(j, "strip_left", true),
                                             get_or<bool>(j, "strip_right", true));
  }
  if (t == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (t == "Prepend")
    return std::make_unique<PrependNormalizer>(j.at("prepend").get<std::string>());
  if (t == "Append") return std::make_unique<AppendNormalizer>(j.at("append").get<std::string>());
  if (t == "Replace") {
    return std::make_unique<ReplaceNormalizer>(Pattern::from_json(j.at("pattern")),
                                               j.at("content").get<std::string>());
  }
  if (t == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (t == "BertNormalizer") {
    const bool lower = get_or<bool>(j, "lowercase", true);
    return std::make_unique<BertNormalizer>(get_or<bool>(j, "clean_text", true),
                                            get_or<bool>(j, "handle_chinese_chars", true),
                                            get_or<bool>(j, "strip_accents", lower), lower);
  }
  if (t == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> items;
    for (const json& n : j.at("normalizers")) {
      if (auto p = make_normalizer(n)) items.push_back(std::move(p));
    }
    return std::make_unique<SequenceNormalizer>(std::move(items));
  }
  fail("tokenizer.json: unsupported normalizer type '{}'", t);
}

bool ends_with_byte_level(const json& j) {
  if (j.is_null()) return false;
  const std::string t = type_of(j, "pre_tokenizer");
  if (t == "ByteLevel") return true;
  if (t != "Sequence") return false;
  const json& items = j.at("pretokenizers");
  if (items.empty()) return false;
  for (size_t i = 0; i + 1 < items.size(); ++i) {
    if (items[i].value("type", "") == "ByteLevel" || items[i].value("type", "") == "Sequence") {
      return false;
    }
  }
  return ends_with_byte_level(items.back());
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, bool byte_level_raw) {
  if (j.is_null()) return nullptr;
  const std::string t = type_of(j, "pre_tokenizer");
  if (t == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(get_or<bool>(j, "add_prefix_space", true),
                                                   get_or<bool>(j, "use_regex", true),
                                                   byte_level_raw);
  }
  if (t == "Split") {
    return std::make_unique<SplitPreTokenizer>(Pattern::from_json(j.at("pattern")),
                                               behavior_from(j.at("behavior")),
                                               get_or<bool>(j, "invert", false));
  }
  if (t == "Metaspace") {
    const std::string rep = get_or<std::string>(j, "replacement", "\xE2\x96\x81");
    return std::make_unique<MetaspacePreTokenizer>(single_char(rep, "Metaspace replacement"),
                                                   prepend_scheme_from(j),
                                                   get_or<bool>(j, "split", true));
  }
  if (t == "Whitespace") {
    return std::make_unique<SplitPreTokenizer>(
        Pattern::from_regex(std::string("[") + kWordClass + "]+|[^" + kWordClass + "\\s]+"),
        Behavior::kRemoved, true);
  }
  if (t == "WhitespaceSplit") {
    return std::make_unique<SplitPreTokenizer>(Pattern::from_predicate(&is_whitespace_char),
                                               Behavior::kRemoved, false);
  }
  if (t == "Punctuation") {
    const Behavior b =
        j.contains("behavior") ? behavior_from(j.at("behavior")) : Behavior::kIsolated;
    return std::make_unique<SplitPreTokenizer>(Pattern::from_predicate(&is_bert_punctuation), b,
                                               false);
  }
  if (t == "Digits") {
    return std::make_unique<SplitPreTokenizer>(
        Pattern::from_predicate(&is_numeric_char),
        get_or<bool>(j, "individual_digits", false) ? Behavior::kIsolated : Behavior::kContiguous,
        false);
  }
  if (t == "CharDelimiterSplit") {
    return std::make_unique<SplitPreTokenizer>(
        Pattern::from_char(single_char(j.at("delimiter").get<std::string>(), "delimiter")),
        Behavior::kRemoved, false);
  }
  if (t == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    items.push_back(std::make_unique<SplitPreTokenizer>(
        Pattern::from_predicate(&is_whitespace_char), Behavior::kRemoved, false));
    items.push_back(std::make_unique<SplitPreTokenizer>(
        Pattern::from_predicate(&is_bert_punctuation), Behavior::kIsolated, false));
    return std::make_unique<SequencePreTokenizer>(std::move(items));
  }
  if (t == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (const json& p : j.at("pretokenizers")) {
      if (auto q = make_pre_tokenizer(p, byte_level_raw)) items.push_back(std::move(q));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(items));
  }
  fail("tokenizer.json: unsupported pre_tokenizer type '{}'", t);
}

std::unique_ptr<Decoder> make_decoder(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string t = type_of(j, "decoder");
  if (t == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (t == "Metaspace") {
    const std::string rep = get_or<std::string>(j, "replacement", "\xE2\x96\x81");
    return std::make_unique<MetaspaceDecoder>(single_char(rep, "Metaspace replacement"),
                                              prepend_scheme_from(j));
  }
  if (t == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (t == "Fuse") return std::make_unique<FuseDecoder>();
  if (t == "Strip") {
    return std::make_unique<StripDecoder>(
        single_char(j.at("content").get<std::string>(), "Strip content"),
        get_or<size_t>(j, "start", 0), get_or<size_t>(j, "stop", 0));
  }
  if (t == "Replace") {
    return std::make_unique<ReplaceDecoder>(Pattern::from_json(j.at("pattern")),
                                            j.at("content").get<std::string>());
  }
  if (t == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(get_or<std::string>(j, "prefix", "##"),
                                              get_or<bool>(j, "cleanup", true));
  }
  if (t == "BPEDecoder") {
    return std::make_unique<BpeDecoder>(get_or<std::string>(j, "suffix", "</w>"));
  }
  if (t == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> items;
    for (const json& d : j.at("decoders")) {
      if (auto p = make_decoder(d)) items.push_back(std::move(p));
    }
    return std::make_unique<SequenceDecoder>(std::move(items));
  }
  fail("tokenizer.json: unsupported decoder type '{}'", t);
}

std::unique_ptr<PostProcessor> make_post_processor(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string t = type_of(j, "post_processor");
  if (t == "ByteLevel")
    return std::make_unique<AddIdsProcessor>(std::vector<int32_t>{}, std::vector<int32_t>{});
  if (t == "TemplateProcessing") return template_processor(j);
  if (t == "RobertaProcessing" || t == "BertProcessing") {
    const int32_t cls = token_id(j.at("cls").at(1), t.c_str());
    const int32_t sep = token_id(j.at("sep").at(1), t.c_str());
    return std::make_unique<AddIdsProcessor>(std::vector<int32_t>{cls}, std::vector<int32_t>{sep});
  }
  if (t == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> items;
    for (const json& p : j.at("processors")) {
      if (auto q = make_post_processor(p)) items.push_back(std::move(q));
    }
    return std::make_unique<SequenceProcessor>(std::move(items));
  }
  fail("tokenizer.json: unsupported post_processor type '{}'", t);
}

}  // namespace inferd::tok
