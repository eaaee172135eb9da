// A Hugging Face tokenizer loaded from tokenizer.json (+ tokenizer_config.json,
// generation_config.json, config.json, chat_template.jinja when present). Encoding and decoding
// give exactly the ids and text of the `tokenizers` library (Tokenizer.encode / decode).
//
// Thread safety: every const method may be called from many threads at once.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/text_decoder.h"

namespace inferd {

class Tokenizer : public TextDecoder {
 public:
  // `dir` holds tokenizer.json and optionally tokenizer_config.json, generation_config.json,
  // config.json and chat_template.jinja. Throws Error naming the missing or malformed file.
  static Tokenizer from_dir(const std::string& dir);
  // A tokenizer.json file alone (no config: no bos/eos names, no chat template).
  static Tokenizer from_file(const std::string& tokenizer_json_path);
  // An already parsed tokenizer.json, and optionally tokenizer_config.json.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json);
  static Tokenizer from_json(const nlohmann::json& tokenizer_json,
                             const nlohmann::json& tokenizer_config);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer() override;

  // HF `encode(text, add_special_tokens=...)`: added and special tokens written in `text` are
  // split out as their ids (as the reference does whatever add_special_tokens says);
  // add_special_tokens applies the post-processor (for example a leading BOS).
  // `parse_special = false` leaves special tokens in the text as plain text (HF's
  // `split_special_tokens`), for user text that must not inject control tokens.
  // Throws Error when `text` is not valid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens,
                              bool parse_special = true) const;

  // HF `decode(ids, skip_special_tokens=...)`. Ids that are not in the vocabulary are dropped,
  // as the reference does.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  // kOpen for byte tokens ("<0xNN>") when the decoder has ByteFallback.
  Continuation continuation(int32_t id, bool skip_special_tokens) const override;
  std::optional<std::string> added_token_content(int32_t id) const override;

  std::optional<std::string> id_to_token(int32_t id) const;
  // The raw bytes token `id` adds to the output (the decoder applied to this token alone, bytes
  // kept as bytes: byte-level characters and "<0xNN>" byte tokens become their byte, Metaspace's
  // "▁" a space). nullopt for special tokens and ids that name no token.
  std::optional<std::string> token_bytes(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // True when `id` names a token (model vocabulary or added token).
  bool is_valid_id(int32_t id) const;
  // Number of distinct tokens, added tokens included (HF get_vocab_size(true)).
  size_t vocab_size() const;
  // One past the largest id (the number of embedding rows the ids need).
  size_t id_limit() const;
  // True for added tokens marked special (skipped by decode with skip_special_tokens).
  bool is_special(int32_t id) const;

  // From tokenizer_config.json (empty / nullopt when not configured).
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // Ids that end generation: the tokenizer's eos and generation_config.json's eos_token_id
  // (config.json's when there is no generation config).
  const std::vector<int32_t>& eos_ids() const;
  // tokenizer_config.json's add_bos_token, or else whether encode(add_special_tokens=true) puts
  // the bos token first.
  bool add_bos_token() const;
  // The ids add_special_tokens puts before and after a text.
  const std::vector<int32_t>& special_prefix() const;
  const std::vector<int32_t>& special_suffix() const;
  // The chat template: `name` "default" is the unnamed one (chat_template.jinja or the string
  // form in tokenizer_config.json); others come from the named-list form.
  std::optional<std::string> chat_template(std::string_view name = "default") const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace inferd
