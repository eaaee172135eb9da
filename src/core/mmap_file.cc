#include "core/mmap_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace inferd {

// Maps `size` bytes of `path` (-1: the file's size).
std::shared_ptr<MappedFile> MappedFile::map(const std::string& path, int64_t size) {
  std::shared_ptr<MappedFile> f(new MappedFile());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot stat '{}': {}", path, std::strerror(e));
  }
  f->path_ = path;
  f->size_ = size < 0 ? size_t(st.st_size) : size_t(size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("cannot mmap '{}': {}", path, std::strerror(e));
    }
    f->data_ = p;
  }
  ::close(fd);
  return f;
}

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  return map(path, -1);
}

std::shared_ptr<MappedFile> MappedFile::open_growing(const std::string& path, size_t size) {
  return map(path, int64_t(size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace inferd
