// GGUF vocabularies -> Hugging Face tokenizer.json / tokenizer_config.json (see gguf_vocab.h).
// The pre-tokenizer regexes are those of the models' published tokenizer.json files (Llama 3,
// Qwen2/Qwen3, DeepSeek-V3); the SentencePiece layout is that of Llama 2's (prefix space) and
// Gemma 3's (no prefix space) tokenizer.json.
#include "tokenizer/gguf_vocab.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace inferd {

using nlohmann::json;

namespace {

constexpr std::string_view kSpace = "\xe2\x96\x81";  // ▁ (U+2581), SentencePiece's space

constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kDeepseekV3Regexes[] = {
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./"
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};

enum class PreType { kLlama3, kQwen2, kDeepseekV3, kGpt2 };

struct PreName {
  const char* name;
  PreType type;
};
// llama.cpp's names (aliases included) for the pre-tokenizers supported here.
constexpr PreName kPreNames[] = {
    {"llama-bpe", PreType::kLlama3},
    {"llama3", PreType::kLlama3},
    {"llama-v3", PreType::kLlama3},
    {"qwen2", PreType::kQwen2},
    {"deepseek-r1-qwen", PreType::kQwen2},
    {"deepseek-v3", PreType::kDeepseekV3},
    {"gpt-2", PreType::kGpt2},
    {"default", PreType::kGpt2},
};

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out;
}

PreType pre_type_of(const GgufVocab& v) {
  const std::string pre = v.pre.empty() ? "default" : v.pre;
  for (const PreName& p : kPreNames) {
    if (pre == p.name) return p.type;
  }
  fail(
      "GGUF tokenizer.ggml.pre '{}' is not supported for tokenizer.ggml.model 'gpt2': expected one "
      "of {}",
      v.pre, joined(gguf_vocab_pre_types()));
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// Token texts as the Hugging Face vocabulary spells them: llama.cpp's converter writes
// SentencePiece user-defined tokens with "▁" turned back into spaces; that is undone here.
std::vector<std::string> hf_token_texts(const GgufVocab& v) {
  std::vector<std::string> out = v.tokens;
  if (v.model != "llama") return out;
  for (size_t id = 0; id < out.size(); ++id) {
    if (v.type_of(id) == GgufTokenType::kUserDefined) replace_all(out[id], " ", kSpace);
  }
  return out;
}

// Every token but the "[PAD<i>]" fillers llama.cpp's converter writes for ids the Hugging Face
// tokenizer lacks. Added tokens are in the model's vocabulary too: that keeps their ids (tokenizers
// gives an added token missing from the model the next free id, whatever the file says).
bool in_model_vocab(const GgufVocab& v, size_t id) {
  return v.type_of(id) != GgufTokenType::kUnused || v.tokens[id].rfind("[PAD", 0) != 0;
}

using IdMap = std::unordered_map<std::string_view, int32_t>;

IdMap first_ids(const std::vector<std::string>& texts, const GgufVocab& v) {
  IdMap ids;
  ids.reserve(texts.size());
  for (size_t id = 0; id < texts.size(); ++id) {
    if (in_model_vocab(v, id)) ids.emplace(texts[id], static_cast<int32_t>(id));
  }
  return ids;
}

size_t count_cps(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// SentencePiece BPE as merges, the way Hugging Face's converter makes them from a sentencepiece
// model: every split of a piece into two vocabulary pieces, ranked by the piece's score (highest
// first), ties by the longer left part, then the longer right part (then piece id, part ids).
// User-defined and control pieces rank above all others: sentencepiece gives them score 0 and
// matches them whole, while llama.cpp's converter writes -1000 for them.
json merges_from_scores(const std::vector<std::string>& texts, const GgufVocab& v,
                        const IdMap& ids) {
  struct Split {
    float score;
    uint32_t left_len, right_len;
    int32_t piece, left, right;
  };
  std::vector<Split> splits;
  for (const auto& [text, id] : ids) {
    const GgufTokenType t = v.type_of(static_cast<size_t>(id));
    if (t == GgufTokenType::kByte || t == GgufTokenType::kUnused) continue;
    const bool whole = t == GgufTokenType::kUserDefined || t == GgufTokenType::kControl;
    const float score =
        whole ? std::numeric_limits<float>::infinity() : v.scores[static_cast<size_t>(id)];
    size_t k = 0;
    unicode::next_cp(text, k);
    while (k < text.size()) {
      auto l = ids.find(text.substr(0, k));
      auto r = ids.find(text.substr(k));
      if (l != ids.end() && r != ids.end()) {
        splits.push_back({score, static_cast<uint32_t>(count_cps(text.substr(0, k))),
                          static_cast<uint32_t>(count_cps(text.substr(k))), id, l->second,
                          r->second});
      }
      unicode::next_cp(text, k);
    }
  }
  std::sort(splits.begin(), splits.end(), [](const Split& a, const Split& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_len != b.left_len) return a.left_len > b.left_len;
    if (a.right_len != b.right_len) return a.right_len > b.right_len;
    if (a.piece != b.piece) return a.piece < b.piece;
    if (a.left != b.left) return a.left < b.left;
    return a.right < b.right;
  });
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(splits.size());
  for (const Split& s : splits) {
    out.push_back(
        json::array({texts[static_cast<size_t>(s.left)], texts[static_cast<size_t>(s.right)]}));
  }
  return out;
}

// The position of the space of GGUF merge `i` ("left right"); throws when malformed.
size_t merge_space(const GgufVocab& v, size_t i) {
  const std::string& m = v.merges[i];
  const size_t sp = m.find(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() ||
      m.find(' ', sp + 1) != std::string::npos) {
    fail("GGUF tokenizer.ggml.merges[{}] '{}': expected two tokens separated by one space", i, m);
  }
  return sp;
}

json merges_from_gguf(const GgufVocab& v) {
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(v.merges.size());
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const size_t sp = merge_space(v, i);
    out.push_back(json::array({v.merges[i].substr(0, sp), v.merges[i].substr(sp + 1)}));
  }
  return out;
}

json replace_json(std::string_view from, std::string_view to) {
  return {{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}

json byte_level_json(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", trim_offsets},
          {"use_regex", use_regex}};
}

json split_json(const char* regex) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", regex}}},
          {"behavior", "Isolated"},
          {"invert", false}};
}

// BOS / EOS around a text (TemplateProcessing), or null when neither is added.
json template_json(const GgufVocab& v, const std::vector<std::string>& texts) {
  const bool bos = v.adds_bos() && v.bos_id, eos = v.adds_eos() && v.eos_id;
  if (!bos && !eos) return nullptr;
  json single = json::array(), pair = json::array(), specials = json::object();
  auto special = [&](int32_t id, int type_id) {
    const std::string& t = texts[static_cast<size_t>(id)];
    specials[t] = {{"id", t}, {"ids", {id}}, {"tokens", {t}}};
    return json{{"SpecialToken", {{"id", t}, {"type_id", type_id}}}};
  };
  for (int seq = 0; seq < 2; ++seq) {
    json& out = seq == 0 ? single : pair;
    for (int part = 0; part <= seq; ++part) {
      if (bos) out.push_back(special(*v.bos_id, part));
      out.push_back({{"Sequence", {{"id", part == 0 ? "A" : "B"}, {"type_id", part}}}});
      if (eos) out.push_back(special(*v.eos_id, part));
    }
  }
  return {{"type", "TemplateProcessing"},
          {"single", single},
          {"pair", pair},
          {"special_tokens", specials}};
}

json added_tokens_json(const GgufVocab& v, const std::vector<std::string>& texts) {
  json out = json::array();
  for (size_t id = 0; id < texts.size(); ++id) {
    const GgufTokenType t = v.type_of(id);
    const bool special = t == GgufTokenType::kControl || t == GgufTokenType::kUnknown;
    if (!special && t != GgufTokenType::kUserDefined) continue;
    out.push_back({{"id", id},
                   {"content", texts[id]},
                   {"single_word", false},
                   {"lstrip", false},
                   {"rstrip", false},
                   {"normalized", false},
                   {"special", special}});
  }
  return out;
}

void set_spm_pipeline(const GgufVocab& v, const std::vector<std::string>& texts, const IdMap& ids,
                      json& j) {
  const bool prefix = v.add_space_prefix.value_or(true);
  std::optional<int32_t> unk = v.unk_id;
  for (size_t id = 0; !unk && id < texts.size(); ++id) {
    if (v.type_of(id) == GgufTokenType::kUnknown) unk = static_cast<int32_t>(id);
  }
  bool has_bytes = false;
  for (size_t id = 0; id < texts.size(); ++id) has_bytes |= v.type_of(id) == GgufTokenType::kByte;
  json vocab = json::object();
  for (const auto& [text, id] : ids) vocab[std::string(text)] = id;
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", unk ? json(texts[static_cast<size_t>(*unk)]) : json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", has_bytes},
                {"ignore_merges", false},
                {"vocab", std::move(vocab)},
                {"merges", merges_from_scores(texts, v, ids)}};
  json space = replace_json(" ", kSpace);
  j["normalizer"] = prefix
                        ? json{{"type", "Sequence"},
                               {"normalizers", {{{"type", "Prepend"}, {"prepend", kSpace}}, space}}}
                        : space;
  j["pre_tokenizer"] = nullptr;
  json decoders = {replace_json(kSpace, " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}}};
  if (prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  j["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
  j["post_processor"] = template_json(v, texts);
}

void set_bpe_pipeline(const GgufVocab& v, const std::vector<std::string>& texts, const IdMap& ids,
                      json& j) {
  const PreType pre = pre_type_of(v);
  json vocab = json::object();
  for (const auto& [text, id] : ids) vocab[std::string(text)] = id;
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", pre == PreType::kLlama3},
                {"vocab", std::move(vocab)},
                {"merges", merges_from_gguf(v)}};
  j["normalizer"] = pre == PreType::kQwen2 ? json{{"type", "NFC"}} : json(nullptr);
  json pretok = json::array();
  switch (pre) {
    case PreType::kLlama3:
      pretok.push_back(split_json(kLlama3Regex));
      break;
    case PreType::kQwen2:
      pretok.push_back(split_json(kQwen2Regex));
      break;
    case PreType::kDeepseekV3:
      for (const char* r : kDeepseekV3Regexes) pretok.push_back(split_json(r));
      break;
    case PreType::kGpt2:
      break;
  }
  if (pre == PreType::kGpt2) {
    j["pre_tokenizer"] = byte_level_json(false, true, true);
  } else {
    pretok.push_back(byte_level_json(false, pre != PreType::kQwen2, false));
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", pretok}};
  }
  // As the models' files have them (the options do not change what ByteLevel decodes).
  const bool qwen = pre == PreType::kQwen2;
  j["decoder"] = byte_level_json(!qwen, !qwen, !qwen);
  json post = byte_level_json(!qwen, false, !qwen);
  json tmpl = template_json(v, texts);
  j["post_processor"] =
      tmpl.is_null() ? post : json{{"type", "Sequence"}, {"processors", {post, tmpl}}};
}

void check_id(const GgufVocab& v, const std::optional<int32_t>& id, const char* what) {
  if (id && (*id < 0 || static_cast<size_t>(*id) >= v.tokens.size())) {
    fail("GGUF tokenizer.ggml.{}_token_id {} is out of range: the vocabulary has {} tokens", what,
         *id, v.tokens.size());
  }
}

}  // namespace

GgufTokenType GgufVocab::type_of(size_t id) const {
  return id < token_types.size() ? static_cast<GgufTokenType>(token_types[id])
                                 : GgufTokenType::kNormal;
}

bool GgufVocab::adds_bos() const {
  if (add_bos) return *add_bos;
  if (model == "llama") return true;
  return model == "gpt2" && (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3");
}

bool GgufVocab::adds_eos() const {
  return add_eos.value_or(false);
}

std::vector<int32_t> GgufVocab::stop_ids() const {
  static constexpr std::string_view kEndOfTurn[] = {"<|eot_id|>",
                                                    "<|eom_id|>",
                                                    "<|im_end|>",
                                                    "<|end|>",
                                                    "<end_of_turn>",
                                                    "<|endoftext|>",
                                                    "<EOT>",
                                                    "<\xef\xbd\x9c"
                                                    "end\xe2\x96\x81"
                                                    "of\xe2\x96\x81"
                                                    "sentence\xef\xbd\x9c>"};
  std::vector<int32_t> out;
  auto add = [&](int32_t id) {
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  for (const auto& id : {eos_id, eot_id, eom_id}) {
    if (id) add(*id);
  }
  for (size_t id = 0; id < tokens.size(); ++id) {
    const GgufTokenType t = type_of(id);
    if (t != GgufTokenType::kControl && t != GgufTokenType::kUserDefined) continue;
    if (std::find(std::begin(kEndOfTurn), std::end(kEndOfTurn), tokens[id]) !=
        std::end(kEndOfTurn)) {
      add(static_cast<int32_t>(id));
    }
  }
  return out;
}

const std::vector<std::string>& gguf_vocab_models() {
  static const std::vector<std::string> models = {"llama", "gpt2"};
  return models;
}

const std::vector<std::string>& gguf_vocab_pre_types() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const PreName& p : kPreNames) out.emplace_back(p.name);
    return out;
  }();
  return names;
}

void validate_gguf_vocab(const GgufVocab& v) {
  const auto& models = gguf_vocab_models();
  if (std::find(models.begin(), models.end(), v.model) == models.end()) {
    fail("GGUF tokenizer.ggml.model '{}' is not supported: expected one of {}", v.model,
         joined(models));
  }
  if (v.tokens.empty()) fail("GGUF tokenizer.ggml.tokens is empty");
  if (!v.token_types.empty() && v.token_types.size() != v.tokens.size()) {
    fail("GGUF tokenizer.ggml.token_type has {} entries for {} tokens", v.token_types.size(),
         v.tokens.size());
  }
  for (size_t i = 0; i < v.token_types.size(); ++i) {
    if (v.token_types[i] < 1 || v.token_types[i] > 6) {
      fail("GGUF tokenizer.ggml.token_type[{}] is {}: expected 1 to 6", i, v.token_types[i]);
    }
  }
  if (v.model == "llama" && v.scores.size() != v.tokens.size()) {
    fail(
        "GGUF tokenizer.ggml.scores has {} entries for {} tokens (model 'llama' needs one a token)",
        v.scores.size(), v.tokens.size());
  }
  if (v.model == "gpt2") {
    pre_type_of(v);
    if (v.merges.empty()) fail("GGUF tokenizer.ggml.merges is missing (model 'gpt2' needs them)");
    for (size_t i = 0; i < v.merges.size(); ++i) merge_space(v, i);
  }
  check_id(v, v.bos_id, "bos");
  check_id(v, v.eos_id, "eos");
  check_id(v, v.unk_id, "unknown");
  check_id(v, v.pad_id, "padding");
  check_id(v, v.sep_id, "seperator");
  check_id(v, v.eot_id, "eot");
  check_id(v, v.eom_id, "eom");
}

json gguf_vocab_tokenizer_json(const GgufVocab& v) {
  validate_gguf_vocab(v);
  const std::vector<std::string> texts = hf_token_texts(v);
  const IdMap ids = first_ids(texts, v);
  json j = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}};
  j["added_tokens"] = added_tokens_json(v, texts);
  if (v.model == "llama") {
    set_spm_pipeline(v, texts, ids, j);
  } else {
    set_bpe_pipeline(v, texts, ids, j);
  }
  return j;
}

json gguf_vocab_tokenizer_config(const GgufVocab& v) {
  validate_gguf_vocab(v);
  const std::vector<std::string> texts = hf_token_texts(v);
  json c = json::object();
  auto name = [&](const char* key, const std::optional<int32_t>& id) {
    if (id) c[key] = texts[static_cast<size_t>(*id)];
  };
  name("bos_token", v.bos_id);
  name("eos_token", v.eos_id);
  name("unk_token", v.unk_id);
  name("pad_token", v.pad_id);
  c["add_bos_token"] = v.adds_bos();
  c["add_eos_token"] = v.adds_eos();
  if (!v.named_chat_templates.empty()) {
    json list = json::array();
    if (v.chat_template) list.push_back({{"name", "default"}, {"template", *v.chat_template}});
    for (const auto& [n, t] : v.named_chat_templates)
      list.push_back({{"name", n}, {"template", t}});
    c["chat_template"] = std::move(list);
  } else if (v.chat_template) {
    c["chat_template"] = *v.chat_template;
  }
  return c;
}

Tokenizer tokenizer_from_gguf_vocab(const GgufVocab& v) {
  return Tokenizer::from_json(gguf_vocab_tokenizer_json(v), gguf_vocab_tokenizer_config(v));
}

}  // namespace inferd
