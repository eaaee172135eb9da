// Normalizers of tokenizer.json (NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents, Prepend,
// Append, Replace, ByteLevel, BertNormalizer, Sequence) and make_normalizer.
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/byte_alphabet.h"
#include "tokenizer/components.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/split_pattern.h"
#include "tokenizer/unicode.h"

namespace inferd::tok {

using nlohmann::json;

namespace {

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
    const ByteAlphabet& alphabet = byte_alphabet();
    for (char c : s) out += alphabet.utf8[static_cast<unsigned char>(c)];
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

}  // namespace

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

}  // namespace inferd::tok
