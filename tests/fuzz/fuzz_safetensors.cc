// Fuzz target: a safetensors file (8-byte header length, JSON header, data) through
// parse_safetensors_header, as SafetensorsIndex reads each mapped shard. Lying lengths, offsets,
// shapes and dtypes must end in inferd::Error; every tensor it accepts must lie inside the file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "model/loader/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto tensors = inferd::parse_safetensors_header(reinterpret_cast<const char*>(data), size,
                                                          "fuzz.safetensors");
    for (const auto& [name, ti] : tensors) {
      // The loader makes a view at data + offset of nbytes: it must not leave the mapping.
      if (ti.offset > size || ti.nbytes > size - ti.offset) std::abort();
      size_t n = 1;
      for (int64_t d : ti.shape) {
        if (d < 0) std::abort();
        n *= size_t(d);
      }
      if (n * inferd::dtype_size(ti.dtype) != ti.nbytes) std::abort();
    }
  } catch (const inferd::Error&) {
  }
  return 0;
}
