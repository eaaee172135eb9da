// The one thing streaming detokenization needs from a tokenizer: decode a run of ids.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace inferd {

class TextDecoder {
 public:
  virtual ~TextDecoder() = default;
  // Decodes ids to text exactly as Hugging Face `tokenizer.decode(ids, skip_special_tokens=...)`.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const = 0;

  // How an id affects whether the text decoded so far is final.
  enum class Continuation {
    kCloses,     // text up to and including this id no longer changes
    kOpen,       // later ids may still rewrite it (a byte-fallback byte: a run of byte tokens
                 // that turns out not to be UTF-8 decodes as one U+FFFD per byte)
    kInvisible,  // the id adds nothing to the decode (skipped special token, unknown id)
  };
  virtual Continuation continuation(int32_t /*id*/, bool /*skip_special_tokens*/) const {
    return Continuation::kCloses;
  }
  // The text of `id` when it is an added token (special or not); nullopt otherwise.
  virtual std::optional<std::string> added_token_content(int32_t /*id*/) const {
    return std::nullopt;
  }
};

}  // namespace inferd
