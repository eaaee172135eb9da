// A read-only memory-mapped file. Shared ownership so tensors can keep the mapping alive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace inferd {

class MappedFile {
 public:
  // Throws Error naming the path if it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // Maps `size` bytes of a file still being written (core/arriving_files.h): bytes past its
  // current end may be read only once they are written (earlier: SIGBUS).
  static std::shared_ptr<MappedFile> open_growing(const std::string& path, size_t size);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const char* data() const { return static_cast<const char*>(data_); }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  static std::shared_ptr<MappedFile> map(const std::string& path, int64_t size);  // -1: whole
  void* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) text file; throws Error naming the path on failure.
std::string read_text_file(const std::string& path);

}  // namespace inferd
