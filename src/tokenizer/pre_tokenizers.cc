// Pre-tokenizers of tokenizer.json (ByteLevel, Split, Whitespace, WhitespaceSplit, Punctuation,
// Digits, CharDelimiterSplit, Metaspace, BertPreTokenizer, Sequence), make_pre_tokenizer and
// ends_with_byte_level.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/byte_alphabet.h"
#include "tokenizer/components.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/prepend_scheme.h"
#include "tokenizer/regex.h"
#include "tokenizer/split_pattern.h"
#include "tokenizer/unicode.h"

namespace inferd::tok {

using nlohmann::json;

namespace {
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
    const ByteAlphabet& alphabet = byte_alphabet();
    for (char c : piece) mapped += alphabet.utf8[static_cast<unsigned char>(c)];
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

}  // namespace

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

}  // namespace inferd::tok
