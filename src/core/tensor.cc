#include "core/tensor.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

namespace inferd {

Tensor::Tensor(void* data, DType dtype, std::span<const int64_t> shape, Device device,
               std::shared_ptr<void> holder)
    : data_(data), dtype_(dtype), device_(device), holder_(std::move(holder)) {
  INFERD_CHECK(shape.size() <= size_t(kMaxDims), "tensor rank {} > {}", shape.size(), kMaxDims);
  ndim_ = int(shape.size());
  int64_t stride = 1;
  for (int d = ndim_ - 1; d >= 0; --d) {
    INFERD_CHECK(shape[d] >= 0, "negative dimension {}", shape[d]);
    shape_[d] = shape[d];
    strides_[d] = stride;
    stride *= shape[d];
  }
}

Tensor Tensor::empty_host(DType dtype, std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  size_t bytes = size_t(n) * dtype_size(dtype);
  size_t alloc = (bytes + 63) / 64 * 64;
  if (alloc == 0) alloc = 64;
  void* p = std::aligned_alloc(64, alloc);
  if (p == nullptr) fail("out of host memory allocating {} bytes", alloc);
  std::memset(p, 0, alloc);
  std::shared_ptr<void> holder(p, [](void* q) { std::free(q); });
  return Tensor(p, dtype, shape, Device::kCPU, std::move(holder));
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int d = 0; d < ndim_; ++d) n *= shape_[d];
  return ndim_ == 0 ? 0 : n;
}

bool Tensor::is_contiguous() const {
  int64_t stride = 1;
  for (int d = ndim_ - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != stride) return false;
    stride *= shape_[d];
  }
  return true;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  INFERD_CHECK(ndim_ >= 1 && begin >= 0 && begin <= end && end <= shape_[0],
               "bad row slice [{}, {}) of {}", begin, end, shape_str());
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.data_ = static_cast<char*>(data_) + begin * strides_[0] * int64_t(dtype_size(dtype_));
  return t;
}

Tensor Tensor::slice_cols(int64_t begin, int64_t end) const {
  INFERD_CHECK(ndim_ == 2 && begin >= 0 && begin <= end && end <= shape_[1],
               "bad column slice [{}, {}) of {}", begin, end, shape_str());
  Tensor t = *this;
  t.shape_[1] = end - begin;
  t.data_ = static_cast<char*>(data_) + begin * strides_[1] * int64_t(dtype_size(dtype_));
  return t;
}

Tensor Tensor::view(std::initializer_list<int64_t> shape) const {
  INFERD_CHECK(is_contiguous(), "view of a non-contiguous tensor {}", shape_str());
  Tensor t(data_, dtype_, std::span<const int64_t>(shape.begin(), shape.size()), device_, holder_);
  INFERD_CHECK(t.numel() == numel(), "view {} does not match {}", t.shape_str(), shape_str());
  return t;
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (int d = 0; d < ndim_; ++d) s += fmt::format("{}{}", d ? ", " : "", shape_[d]);
  return s + "]";
}

}  // namespace inferd
