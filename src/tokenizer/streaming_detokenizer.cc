#include "tokenizer/streaming_detokenizer.h"

namespace inferd {

namespace {
// True when `s` ends with the UTF-8 encoding of U+FFFD (EF BF BD).
bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && static_cast<unsigned char>(s[s.size() - 3]) == 0xEF &&
         static_cast<unsigned char>(s[s.size() - 2]) == 0xBF &&
         static_cast<unsigned char>(s[s.size() - 1]) == 0xBD;
}
constexpr size_t kContextTokens = 5;
}  // namespace

StreamingDetokenizer::StreamingDetokenizer(const TextDecoder& decoder, bool skip_special_tokens,
                                           std::span<const int32_t> context,
                                           bool spaces_between_special_tokens)
    : decoder_(&decoder),
      skip_special_(skip_special_tokens),
      spaces_between_special_(spaces_between_special_tokens) {
  size_t start = context.size() < kContextTokens ? 0 : context.size() - kContextTokens;
  // Never start the window inside a run of byte-fallback tokens: the run decodes as a whole.
  while (start > 0 && decoder.continuation(context[start - 1], skip_special_tokens) !=
                          TextDecoder::Continuation::kCloses) {
    --start;
  }
  ids_.assign(context.begin() + std::ptrdiff_t(start), context.end());
  prefix_offset_ = 0;
  read_offset_ = ids_.size();
  for (int32_t id : ids_) track(id);
}

void StreamingDetokenizer::track(int32_t id) {
  switch (decoder_->continuation(id, skip_special_)) {
    case TextDecoder::Continuation::kOpen:
      open_ = true;
      break;
    case TextDecoder::Continuation::kCloses:
      open_ = false;
      break;
    case TextDecoder::Continuation::kInvisible:
      break;
  }
}

std::string StreamingDetokenizer::push(int32_t id) {
  std::string out = decode_next(id);
  if (!spaces_between_special_) {
    // As vLLM's detokenizer: two added tokens in a row, the second as its bare text.
    std::optional<std::string> added = decoder_->added_token_content(id);
    if (added && last_added_ && !out.empty()) out = std::move(*added);
    last_added_ = added.has_value();
  }
  return out;
}

std::string StreamingDetokenizer::decode_next(int32_t id) {
  ids_.push_back(id);
  track(id);
  if (open_) return {};
  std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      decoder_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  const std::string new_text = decoder_->decode(all.subspan(prefix_offset_), skip_special_);
  if (new_text.size() > prefix_text.size() && !ends_with_replacement(new_text) &&
      new_text.compare(0, prefix_text.size(), prefix_text) == 0) {
    std::string out = new_text.substr(prefix_text.size());
    prefix_offset_ = read_offset_;
    read_offset_ = ids_.size();
    return out;
  }
  return {};
}

std::string StreamingDetokenizer::finish() {
  if (read_offset_ >= ids_.size()) return {};
  std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      decoder_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  const std::string new_text = decoder_->decode(all.subspan(prefix_offset_), skip_special_);
  read_offset_ = ids_.size();
  prefix_offset_ = read_offset_;
  if (new_text.size() >= prefix_text.size() &&
      new_text.compare(0, prefix_text.size(), prefix_text) == 0) {
    return new_text.substr(prefix_text.size());
  }
  return new_text;  // decoder re-spelled the prefix; best effort
}

}  // namespace inferd
