// The byte-level (GPT-2) alphabet: each of the 256 bytes stands for one printable code point
// (printable ASCII and Latin-1 bytes for themselves, the others from U+0100 on), so that
// byte-level BPE vocabularies can spell arbitrary bytes as text.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace inferd::tok {

struct ByteAlphabet {
  std::array<uint32_t, 256> to_char{};  // byte -> code point
  std::array<std::string, 256> utf8;    // byte -> that code point in UTF-8
  ByteAlphabet();
};
const ByteAlphabet& byte_alphabet();

// byte -> code point, and code point -> byte (-1 if none).
uint32_t byte_to_char(uint8_t b);
int byte_of_char(uint32_t cp);

}  // namespace inferd::tok
