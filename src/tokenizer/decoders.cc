// Decoders of tokenizer.json (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace,
// WordPiece, BPEDecoder, Sequence) and make_decoder: decode_chain for text, decode_raw for the
// bytes of single tokens.
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/byte_alphabet.h"
#include "tokenizer/components.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/prepend_scheme.h"
#include "tokenizer/split_pattern.h"
#include "tokenizer/unicode.h"

namespace inferd::tok {

using nlohmann::json;

namespace {

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

}  // namespace

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

}  // namespace inferd::tok
