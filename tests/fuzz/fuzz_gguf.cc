// Fuzz target: a GGUF file through GgufFile::open (the input is written to a temporary file, since
// the reader maps files). Lying counts, lengths, offsets, types and shapes must end in
// inferd::Error; every tensor it accepts must lie inside the file with the bytes its shape needs.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.h"
#include "model/loader/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/inferd_fuzz_gguf_" +
           std::to_string(::getpid()) + ".gguf";
  }();
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  try {
    const inferd::GgufFile g = inferd::GgufFile::open(path);
    for (const inferd::GgufTensorInfo& t : g.tensors()) {
      const char* base = g.file_of(t)->data();
      if (t.data < base || t.nbytes < 0 || size_t(t.data - base) > size ||
          size_t(t.nbytes) > size - size_t(t.data - base)) {
        std::abort();
      }
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
      if (rows * inferd::ggml::row_bytes(t.type, t.shape.back()) != t.nbytes) std::abort();
    }
    for (const auto& [key, v] : g.metadata()) {
      if (v.is_array() && v.elem_type == inferd::GgufValueType::kArray) std::abort();
    }
  } catch (const inferd::Error&) {
  }
  return 0;
}
