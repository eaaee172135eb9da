#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/mmap_file.h"
#include "tokenizer/components.h"
#include "tokenizer/token_trie.h"
#include "tokenizer/unicode.h"

namespace inferd {

using nlohmann::json;

namespace {

struct AddedToken {
  std::string content;
  // What id_to_token and decode give: the content, normalized for `normalized` tokens (as
  // tokenizers 0.23 stores them).
  std::string shown;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size();
  return unicode::is_word_char(unicode::prev_cp(s, i));
}
bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return unicode::is_word_char(unicode::next_cp(s, i));
}

std::optional<std::string> token_string(const json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) {
    return v.at("content").get<std::string>();
  }
  return std::nullopt;
}

std::vector<int32_t> id_list(const json& cfg, const char* key) {
  std::vector<int32_t> out;
  if (!cfg.is_object() || !cfg.contains(key)) return out;
  const json& v = cfg[key];
  if (v.is_number_integer()) out.push_back(v.get<int32_t>());
  if (v.is_array()) {
    for (const json& x : v) {
      if (x.is_number_integer()) out.push_back(x.get<int32_t>());
    }
  }
  return out;
}

json parse_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", path, e.what());
  }
}

}  // namespace

struct Tokenizer::Impl {
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::Model> model;
  std::unique_ptr<tok::Decoder> decoder;
  std::unique_ptr<tok::PostProcessor> post_processor;

  std::vector<AddedToken> added;  // index = value stored in the tries
  std::unordered_map<int32_t, size_t> added_by_id;
  std::unordered_map<std::string, int32_t> added_by_content;
  std::unordered_set<std::string> special_contents;
  tok::TokenTrie raw_trie, normalized_trie;
  std::vector<bool> special_ids;
  std::vector<bool> open_ids;  // byte tokens the ByteFallback decoder may still rewrite
  size_t vocab_size = 0;
  size_t id_limit = 0;

  std::string bos_token, eos_token;
  std::optional<int32_t> bos_id, eos_id;
  std::vector<int32_t> eos_ids;
  bool add_bos = false;
  std::vector<int32_t> prefix, suffix;
  std::optional<std::string> default_template;
  std::vector<std::pair<std::string, std::string>> named_templates;

  const std::string* token_of(int32_t id) const {
    auto it = added_by_id.find(id);
    if (it != added_by_id.end()) return &added[it->second].shown;
    return model->id_to_token(id);
  }

  void load(const json& j) {
    if (!j.is_object()) fail("tokenizer.json: the top level must be an object");
    if (!j.contains("model")) fail("tokenizer.json: missing \"model\"");
    load_pipeline(j);
    if (j.contains("added_tokens")) load_added_tokens(j.at("added_tokens"));
    index_added_tokens();
    count_and_flag_ids();
    if (post_processor) std::tie(prefix, suffix) = post_processor->added_ids();
    open_ids.assign(id_limit, false);
    if (j.contains("decoder") && has_byte_fallback(j.at("decoder"))) mark_byte_tokens_open();
  }

  // The normalizer, pre-tokenizer, model, decoder and post-processor.
  void load_pipeline(const json& j) {
    const json null;
    const json& pre = j.contains("pre_tokenizer") ? j.at("pre_tokenizer") : null;
    const std::string model_type = j.at("model").value("type", "BPE");
    const bool raw = model_type == "BPE" && tok::ends_with_byte_level(pre);
    normalizer = tok::make_normalizer(j.contains("normalizer") ? j.at("normalizer") : null);
    pre_tokenizer = tok::make_pre_tokenizer(pre, raw);
    model = tok::make_model(j.at("model"), raw);
    decoder = tok::make_decoder(j.contains("decoder") ? j.at("decoder") : null);
    post_processor =
        tok::make_post_processor(j.contains("post_processor") ? j.at("post_processor") : null);
    if (j.contains("truncation") && !j.at("truncation").is_null()) {
      fail("tokenizer.json: truncation is not supported (set it to null)");
    }
  }

  // Added tokens, in file order: special ones are matched first only by the trie order in
  // tokenizers, which does not change leftmost-longest results.
  void load_added_tokens(const json& tokens) {
    int32_t max_added = -1;
    for (const json& t : tokens) {
      AddedToken a;
      a.content = t.at("content").get<std::string>();
      if (a.content.empty()) continue;
      a.single_word = t.value("single_word", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.special = t.value("special", false);
      a.normalized = t.value("normalized", !a.special);
      a.id = added_token_id(a.content, max_added);
      max_added = std::max(max_added, a.id);
      if (a.special) special_contents.insert(a.content);
      added_by_content[a.content] = a.id;
      auto existing = added_by_id.find(a.id);
      if (existing != added_by_id.end()) {
        added[existing->second] = a;
      } else {
        added_by_id[a.id] = added.size();
        added.push_back(a);
      }
    }
  }

  // The id of an added token as tokenizers' AddedVocabulary::add_tokens assigns it (the file's
  // "id" agrees for files tokenizers wrote): the existing id of that content, else the next free
  // one.
  int32_t added_token_id(const std::string& content, int32_t max_added) const {
    const int32_t model_id = model->token_to_id(content);
    auto prev = added_by_content.find(content);
    if (prev != added_by_content.end()) return prev->second;
    if (model_id >= 0) return model_id;
    const auto model_size = static_cast<int32_t>(model->vocab_size());
    return max_added < 0                                  ? model_size
           : (max_added >= model_size || model_size == 0) ? max_added + 1
                                                          : model_size;
  }

  // What each added token shows, and the tries that find them (normalized tokens in normalized
  // text, the others in the raw text).
  void index_added_tokens() {
    for (size_t i = 0; i < added.size(); ++i) {
      AddedToken& a = added[i];
      a.shown = a.content;
      if (a.normalized) {
        if (normalizer) normalizer->normalize(a.shown);
        normalized_trie.add(a.shown, static_cast<int32_t>(i));
      } else {
        raw_trie.add(a.content, static_cast<int32_t>(i));
      }
    }
  }

  // Sizes and special flags.
  void count_and_flag_ids() {
    size_t unique_added = 0;
    for (const AddedToken& a : added) unique_added += model->token_to_id(a.content) < 0;
    vocab_size = model->vocab_size() + unique_added;
    id_limit = model->id_limit();
    for (const AddedToken& a : added) id_limit = std::max(id_limit, static_cast<size_t>(a.id) + 1);
    // An id is special when the token it decodes as is a special added token's content.
    special_ids.assign(id_limit, false);
    for (const AddedToken& a : added) {
      if (a.special || special_contents.count(a.shown) != 0) {
        special_ids[static_cast<size_t>(a.id)] = true;
      }
    }
    for (const std::string& c : special_contents) {
      const int32_t mid = model->token_to_id(c);
      if (mid >= 0 && added_by_id.count(mid) == 0) special_ids[static_cast<size_t>(mid)] = true;
    }
  }

  // With a ByteFallback decoder: the byte tokens ("<0xNN>"), which a later token may still
  // rewrite, are open.
  void mark_byte_tokens_open() {
    for (int b = 0; b < 256; ++b) {
      for (const char* f : {"<0x%02X>", "<0x%02x>"}) {
        char name[8];
        std::snprintf(name, sizeof(name), f, b);
        const int32_t mid = model->token_to_id(name);
        if (mid >= 0 && added_by_id.count(mid) == 0) open_ids[static_cast<size_t>(mid)] = true;
        auto it = added_by_content.find(name);
        if (it != added_by_content.end() && added[added_by_id.at(it->second)].shown == name) {
          open_ids[static_cast<size_t>(it->second)] = true;
        }
      }
    }
  }

  static bool has_byte_fallback(const json& d) {
    if (!d.is_object()) return false;
    if (d.value("type", "") == "ByteFallback") return true;
    if (d.contains("decoders")) {
      for (const json& x : d.at("decoders")) {
        if (has_byte_fallback(x)) return true;
      }
    }
    return false;
  }

  void load_config(const json& cfg) {
    if (auto b = token_string(cfg, "bos_token")) bos_token = *b;
    if (auto e = token_string(cfg, "eos_token")) eos_token = *e;
    auto lookup = [&](const std::string& t) -> std::optional<int32_t> {
      if (t.empty()) return std::nullopt;
      auto it = added_by_content.find(t);
      if (it != added_by_content.end()) return it->second;
      const int32_t id = model->token_to_id(t);
      return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
    };
    bos_id = lookup(bos_token);
    eos_id = lookup(eos_token);
    if (cfg.is_object() && cfg.contains("add_bos_token") && cfg.at("add_bos_token").is_boolean()) {
      add_bos = cfg.at("add_bos_token").get<bool>();
    } else {
      add_bos = bos_id && !prefix.empty() && prefix.front() == *bos_id;
    }
    if (cfg.is_object() && cfg.contains("chat_template")) {
      const json& ct = cfg.at("chat_template");
      if (ct.is_string()) {
        default_template = ct.get<std::string>();
      } else if (ct.is_array()) {
        for (const json& t : ct) {
          if (!t.is_object() || !t.contains("name") || !t.contains("template")) {
            fail(
                "tokenizer_config.json: chat_template list entries need \"name\" and "
                "\"template\"");
          }
          const std::string name = t.at("name").get<std::string>();
          const std::string text = t.at("template").get<std::string>();
          if (name == "default") default_template = text;
          named_templates.emplace_back(name, text);
        }
      }
    }
    eos_ids.clear();
    if (eos_id) eos_ids.push_back(*eos_id);
  }

  void add_eos_ids(const std::vector<int32_t>& ids) {
    for (int32_t id : ids) {
      if (std::find(eos_ids.begin(), eos_ids.end(), id) == eos_ids.end()) eos_ids.push_back(id);
    }
  }

  // Added-token matches of `s` as tokenizers' AddedVocabulary::find_matches computes them:
  // emit(start, end, id) with id -1 for the text between tokens.
  template <typename Emit>
  void split_added(std::string_view s, const tok::TokenTrie& trie, bool parse_special,
                   Emit&& emit) const {
    size_t start_offset = 0;
    trie.for_each_match(s, [&](size_t start, size_t stop, int32_t index) {
      const AddedToken& t = added[static_cast<size_t>(index)];
      if (t.special && !parse_special) return;
      if (t.single_word) {
        const bool start_space = start == 0 || !ends_with_word(s.substr(0, start));
        const bool stop_space = stop == s.size() || !starts_with_word(s.substr(stop));
        if (!start_space || !stop_space) return;
      }
      if (t.lstrip) {
        size_t k = start;
        while (k > 0) {
          size_t p = k;
          if (!unicode::is_whitespace(unicode::prev_cp(s, p))) break;
          k = p;
        }
        start = std::max(k, start_offset);
      }
      if (t.rstrip) {
        while (stop < s.size()) {
          size_t p = stop;
          if (!unicode::is_whitespace(unicode::next_cp(s, p))) break;
          stop = p;
        }
      }
      if (start_offset < start) emit(start_offset, start, -1);
      emit(start, stop, t.id);
      start_offset = stop;
    });
    if (start_offset < s.size()) emit(start_offset, s.size(), -1);
  }

  void encode_piece(std::string_view piece, bool at_origin, std::vector<int32_t>& ids) const {
    auto to_model = [&](std::string_view word, bool) { model->tokenize(word, ids); };
    if (pre_tokenizer) {
      pre_tokenizer->pre_tokenize(piece, at_origin, to_model);
    } else {
      to_model(piece, at_origin);
    }
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(const json& tokenizer_json) {
  return from_json(tokenizer_json, json::object());
}

Tokenizer Tokenizer::from_json(const json& tokenizer_json, const json& tokenizer_config) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->load(tokenizer_json);
  } catch (const json::exception& e) {
    fail("tokenizer.json: unexpected structure: {}", e.what());
  }
  try {
    impl->load_config(tokenizer_config);
  } catch (const json::exception& e) {
    fail("tokenizer_config.json: unexpected structure: {}", e.what());
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("tokenizer file '{}' does not exist", path);
  return from_json(parse_json_file(path));
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) {
    fail("model directory '{}' does not exist (expected a directory holding tokenizer.json)", dir);
  }
  const fs::path d(dir);
  if (!fs::is_regular_file(d / "tokenizer.json")) {
    fail("model directory '{}' has no tokenizer.json", dir);
  }
  const json tj = parse_json_file((d / "tokenizer.json").string());
  json cfg = json::object();
  if (fs::is_regular_file(d / "tokenizer_config.json")) {
    cfg = parse_json_file((d / "tokenizer_config.json").string());
  }
  Tokenizer t = from_json(tj, cfg);
  Impl& impl = *t.impl_;
  if (fs::is_regular_file(d / "chat_template.jinja")) {
    impl.default_template = read_text_file((d / "chat_template.jinja").string());
  }
  if (fs::is_regular_file(d / "generation_config.json")) {
    impl.add_eos_ids(
        id_list(parse_json_file((d / "generation_config.json").string()), "eos_token_id"));
  } else if (fs::is_regular_file(d / "config.json")) {
    impl.add_eos_ids(id_list(parse_json_file((d / "config.json").string()), "eos_token_id"));
  }
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                       bool parse_special) const {
  if (!unicode::is_valid_utf8(text)) fail("text to tokenize is not valid UTF-8");
  const Impl& im = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::string normalized;
  im.split_added(text, im.raw_trie, parse_special, [&](size_t a, size_t b, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
    std::string_view piece = text.substr(a, b - a);
    if (im.normalizer) {
      normalized.assign(piece);
      im.normalizer->normalize(normalized);
      piece = normalized;
    }
    if (piece.empty()) return;
    if (im.normalized_trie.empty()) {
      im.encode_piece(piece, a == 0, ids);
      return;
    }
    im.split_added(piece, im.normalized_trie, parse_special, [&](size_t c, size_t d, int32_t id2) {
      if (id2 >= 0) {
        ids.push_back(id2);
      } else {
        im.encode_piece(piece.substr(c, d - c), a == 0 && c == 0, ids);
      }
    });
  });
  if (add_special_tokens && im.post_processor) im.post_processor->process(ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& im = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* t = im.token_of(id);
    if (t == nullptr) continue;
    if (skip_special_tokens && is_special(id)) continue;
    tokens.push_back(*t);
  }
  if (im.decoder) {
    im.decoder->decode_chain(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) out.push_back(' ');
    out += tokens[i];
  }
  return out;
}

TextDecoder::Continuation Tokenizer::continuation(int32_t id, bool skip_special_tokens) const {
  if (!is_valid_id(id) || (skip_special_tokens && is_special(id))) return Continuation::kInvisible;
  const auto& open = impl_->open_ids;
  return id >= 0 && static_cast<size_t>(id) < open.size() && open[static_cast<size_t>(id)]
             ? Continuation::kOpen
             : Continuation::kCloses;
}

std::optional<std::string> Tokenizer::added_token_content(int32_t id) const {
  const auto it = impl_->added_by_id.find(id);
  if (it == impl_->added_by_id.end()) return std::nullopt;
  return impl_->added[it->second].content;
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  const std::string* t = impl_->token_of(id);
  return t ? std::optional<std::string>(*t) : std::nullopt;
}

std::optional<std::string> Tokenizer::token_bytes(int32_t id) const {
  const std::string* t = impl_->token_of(id);
  if (t == nullptr || is_special(id)) return std::nullopt;
  if (!impl_->decoder) return *t;
  std::vector<std::string> tokens{*t};
  impl_->decoder->decode_raw(tokens);
  std::string out;
  for (const auto& p : tokens) out += p;
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->added_by_content.find(std::string(token));
  if (it != impl_->added_by_content.end()) return it->second;
  const int32_t id = impl_->model->token_to_id(token);
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

bool Tokenizer::is_valid_id(int32_t id) const {
  return impl_->token_of(id) != nullptr;
}
size_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}
size_t Tokenizer::id_limit() const {
  return impl_->id_limit;
}
bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special_ids.size() &&
         impl_->special_ids[static_cast<size_t>(id)];
}
const std::string& Tokenizer::bos_token() const {
  return impl_->bos_token;
}
const std::string& Tokenizer::eos_token() const {
  return impl_->eos_token;
}
std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos_id;
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->eos_id;
}
const std::vector<int32_t>& Tokenizer::eos_ids() const {
  return impl_->eos_ids;
}
bool Tokenizer::add_bos_token() const {
  return impl_->add_bos;
}
const std::vector<int32_t>& Tokenizer::special_prefix() const {
  return impl_->prefix;
}
const std::vector<int32_t>& Tokenizer::special_suffix() const {
  return impl_->suffix;
}

std::optional<std::string> Tokenizer::chat_template(std::string_view name) const {
  if (name == "default") return impl_->default_template;
  for (const auto& [n, t] : impl_->named_templates) {
    if (n == name) return t;
  }
  return std::nullopt;
}

}  // namespace inferd
