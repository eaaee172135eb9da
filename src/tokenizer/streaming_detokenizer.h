// Incremental detokenization of one sequence's generated ids.
//
// Text is emitted as soon as it is final: decoding a window that starts a few tokens back (so
// decoders that treat the first token specially, such as Metaspace's leading space, see context)
// and holding text back while it ends in U+FFFD (a UTF-8 character split across tokens) or while
// the decoder says later ids may still rewrite it (a run of byte-fallback tokens). The
// concatenation of everything `push` and `finish` return equals the full decode of the ids.
//
// Limitation: decoders whose treatment of the start of the text spans several tokens (a Strip
// decoder with start > 1) can make a window decode differ from the full decode; the decoders of
// real tokenizers (ByteLevel, Metaspace, ByteFallback, Fuse, Replace, Strip start <= 1) do not.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/text_decoder.h"

namespace inferd {

class StreamingDetokenizer {
 public:
  // `context` are ids that precede the generated ones (for example the prompt's last few
  // tokens); they are never emitted, only used so the first generated token decodes in context.
  // `spaces_between_special_tokens` false (vLLM's sampling parameter): an added token that follows
  // another comes out as its bare text, without the space a decoder such as WordPiece puts before
  // it (then the pieces no longer concatenate to the full decode).
  StreamingDetokenizer(const TextDecoder& decoder, bool skip_special_tokens,
                       std::span<const int32_t> context = {},
                       bool spaces_between_special_tokens = true);

  // Adds one id; returns the text that became final (often empty or one token's worth).
  std::string push(int32_t id);
  // At the end of the sequence: returns whatever is still held back (an incomplete character
  // comes out as U+FFFD, as the full decode shows it).
  std::string finish();

  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  void track(int32_t id);
  std::string decode_next(int32_t id);

  const TextDecoder* decoder_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // context + generated
  size_t prefix_offset_ = 0;  // start of the decode window
  size_t read_offset_ = 0;    // ids before this have been emitted
  bool open_ = false;         // the last visible id leaves the text open to rewriting
  bool spaces_between_special_ = true;
  bool last_added_ = false;  // the last pushed id is an added token
};

}  // namespace inferd
