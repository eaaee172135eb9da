// The byte-level alphabet's tables (see byte_alphabet.h).
#include "tokenizer/byte_alphabet.h"

#include "tokenizer/unicode.h"

namespace inferd::tok {

ByteAlphabet::ByteAlphabet() {
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    to_char[b] = printable ? static_cast<uint32_t>(b) : 256 + n++;
    unicode::append_utf8(utf8[b], to_char[b]);
  }
}

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;
  return a;
}

uint32_t byte_to_char(uint8_t b) {
  return byte_alphabet().to_char[b];
}

int byte_of_char(uint32_t cp) {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t{};
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[byte_alphabet().to_char[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

}  // namespace inferd::tok
