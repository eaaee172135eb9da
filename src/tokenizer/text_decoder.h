// The one thing streaming detokenization needs from a tokenizer: decode a run of ids.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace inferd {

class TextDecoder {
 public:
  virtual ~TextDecoder() = default;
  // Decodes ids to text exactly as Hugging Face `tokenizer.decode(ids, skip_special_tokens=...)`.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const = 0;
};

}  // namespace inferd
