// Tensor: a strided view of typed memory on one device. It may share ownership of the memory
// it views (an mmap'd file, a host buffer, a device allocation) through `holder_`.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace inferd {

enum class Device : uint8_t { kCPU, kCUDA };

class Tensor {
 public:
  static constexpr int kMaxDims = 4;

  Tensor() = default;
  Tensor(void* data, DType dtype, std::span<const int64_t> shape, Device device = Device::kCPU,
         std::shared_ptr<void> holder = nullptr);
  Tensor(void* data, DType dtype, std::initializer_list<int64_t> shape,
         Device device = Device::kCPU, std::shared_ptr<void> holder = nullptr)
      : Tensor(data, dtype, std::span<const int64_t>(shape.begin(), shape.size()), device,
               std::move(holder)) {}

  // A zero-initialised, owned, contiguous host tensor (64-byte aligned).
  static Tensor empty_host(DType dtype, std::span<const int64_t> shape);
  static Tensor empty_host(DType dtype, std::initializer_list<int64_t> shape) {
    return empty_host(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }

  bool defined() const { return ndim_ > 0; }
  void* data() const { return data_; }
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data_);
  }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int ndim() const { return ndim_; }
  int64_t size(int d) const { return shape_[d < 0 ? d + ndim_ : d]; }
  int64_t stride(int d) const { return strides_[d < 0 ? d + ndim_ : d]; }
  std::span<const int64_t> shape() const { return {shape_.data(), size_t(ndim_)}; }
  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<void>& holder() const { return holder_; }

  // Rows [begin, end) of dimension 0 (a view).
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // Columns [begin, end) of a 2-D tensor (a strided view).
  Tensor slice_cols(int64_t begin, int64_t end) const;
  // Same memory, new contiguous shape with the same number of elements.
  Tensor view(std::initializer_list<int64_t> shape) const;

  std::string shape_str() const;

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  Device device_ = Device::kCPU;
  int ndim_ = 0;
  std::array<int64_t, kMaxDims> shape_{};
  std::array<int64_t, kMaxDims> strides_{};
  std::shared_ptr<void> holder_;
};

}  // namespace inferd
