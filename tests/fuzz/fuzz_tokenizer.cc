// Fuzz target: tokenizer.json loading, then encode and decode. The input is a tokenizer.json,
// a NUL byte, and text to encode (no NUL: the whole input is the tokenizer.json, and a fixed
// text is encoded). The ids of the text, and ids made from the text's bytes (many out of the
// vocabulary), are decoded with and without special tokens, and through the streaming
// detokenizer. Bad files and bad text must end in inferd::Error.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/streaming_detokenizer.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view file = in.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos
                                    ? std::string_view("Hello, world! <s> 123 \xc3\xa9")
                                    : in.substr(nul + 1);
  nlohmann::json j = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    const inferd::Tokenizer tok = inferd::Tokenizer::from_json(j);
    for (bool special : {false, true}) {
      std::vector<int32_t> ids;
      try {
        ids = tok.encode(text, special, /*parse_special=*/special);
      } catch (const inferd::Error&) {
        continue;  // text that is not UTF-8
      }
      (void)tok.decode(ids, special);
      (void)tok.decode(ids, !special);
      for (int32_t id : ids) (void)tok.continuation(id, special);
      inferd::StreamingDetokenizer detok(tok, special);
      for (int32_t id : ids) (void)detok.push(id);
      (void)detok.finish();
    }
    // Arbitrary ids, negative and past the vocabulary included.
    std::vector<int32_t> raw(text.size() / 4);
    if (!raw.empty()) std::memcpy(raw.data(), text.data(), raw.size() * 4);
    std::vector<int32_t> small;
    for (unsigned char c : text) small.push_back(int32_t(c) - 8);
    for (const auto* v : {&raw, &small}) {
      (void)tok.decode(*v, false);
      (void)tok.decode(*v, true);
      for (int32_t id : *v) {
        (void)tok.continuation(id, false);
        (void)tok.id_to_token(id);
        (void)tok.is_special(id);
      }
    }
  } catch (const inferd::Error&) {
  }
  return 0;
}
