// Fuzz target: config.json text through parse_model_config (both transformers 4 and 5 styles).
// Anything that is not a config the decoder can run must end in inferd::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)inferd::parse_model_config(std::string(reinterpret_cast<const char*>(data), size),
                                     "config.json");
  } catch (const inferd::Error&) {
  }
  return 0;
}
