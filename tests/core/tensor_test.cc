#include <gtest/gtest.h>

#include "core/tensor.h"

namespace inferd {
namespace {

TEST(Tensor, ShapeStridesAndViews) {
  Tensor t = Tensor::empty_host(DType::kF32, {3, 4, 5});
  EXPECT_EQ(t.numel(), 60);
  EXPECT_EQ(t.nbytes(), 240u);
  EXPECT_EQ(t.stride(0), 20);
  EXPECT_EQ(t.stride(-1), 1);
  EXPECT_TRUE(t.is_contiguous());
  Tensor r = t.slice_rows(1, 3);
  EXPECT_EQ(r.size(0), 2);
  EXPECT_EQ(r.data_as<float>(), t.data_as<float>() + 20);
  Tensor v = t.view({12, 5});
  EXPECT_EQ(v.size(0), 12);
  EXPECT_EQ(v.shape_str(), "[12, 5]");
  EXPECT_THROW(t.view({7, 7}), InternalError);
  EXPECT_THROW(t.slice_rows(2, 4), InternalError);
}

TEST(Tensor, EmptyHostIsZeroedAndAligned) {
  Tensor t = Tensor::empty_host(DType::kBF16, {17});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  for (int i = 0; i < 17; ++i) EXPECT_EQ(t.data_as<uint16_t>()[i], 0);
}

}  // namespace
}  // namespace inferd
