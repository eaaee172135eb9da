// PIL-compatible resizing (see resample.h). Written from Pillow's documented behaviour and its
// Resample.c's arithmetic: fixed-point weights (22 fractional bits), 8-bit results per pass.
#include "media/resample.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace inferd::media {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic(double x) {  // Keys' cubic with a = -0.5
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Each output index's first input index, tap count and fixed-point weights (ksize a row).
struct Coeffs {
  int ksize = 0;
  std::vector<int32_t> first, count, weights;
};

Coeffs coefficients(int in_size, int out_size, ResampleFilter f) {
  const double support0 = f == ResampleFilter::kBilinear ? 1.0 : 2.0;
  double (*filter)(double) = f == ResampleFilter::kBilinear ? bilinear : bicubic;
  const double scale = double(float(in_size)) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support0 * filterscale;
  Coeffs c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.first.resize(size_t(out_size));
  c.count.resize(size_t(out_size));
  c.weights.assign(size_t(out_size) * size_t(c.ksize), 0);
  std::vector<double> w(size_t(c.ksize));
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int lo = std::max(int(center - support + 0.5), 0);
    const int hi = std::min(int(center + support + 0.5), in_size);
    const int n = hi - lo;
    double sum = 0;
    for (int k = 0; k < n; ++k) {
      w[size_t(k)] = filter((k + lo - center + 0.5) * ss);
      sum += w[size_t(k)];
    }
    int32_t* out = &c.weights[size_t(i) * size_t(c.ksize)];
    for (int k = 0; k < n; ++k) {
      const double v = (sum != 0.0 ? w[size_t(k)] / sum : w[size_t(k)]) * (1 << kPrecisionBits);
      out[k] = int32_t(v < 0 ? v - 0.5 : v + 0.5);
    }
    c.first[size_t(i)] = lo;
    c.count[size_t(i)] = n;
  }
  return c;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift: floor
  return uint8_t(std::clamp(v, 0, 255));
}

// Rows [y0, y0 + rows) of `in` resampled horizontally into out (rows x out_w x 3).
void horizontal(const Image& in, int y0, int rows, const Coeffs& c, int out_w, uint8_t* out) {
  const int32_t half = 1 << (kPrecisionBits - 1);
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in.row(y0 + y);
    uint8_t* dst = out + size_t(y) * size_t(out_w) * 3;
    for (int x = 0; x < out_w; ++x) {
      const int32_t* k = &c.weights[size_t(x) * size_t(c.ksize)];
      const uint8_t* p = src + size_t(c.first[size_t(x)]) * 3;
      int32_t s0 = half, s1 = half, s2 = half;
      for (int j = 0, n = c.count[size_t(x)]; j < n; ++j) {
        s0 += p[3 * j] * k[j];
        s1 += p[3 * j + 1] * k[j];
        s2 += p[3 * j + 2] * k[j];
      }
      dst[3 * x] = clip8(s0);
      dst[3 * x + 1] = clip8(s1);
      dst[3 * x + 2] = clip8(s2);
    }
  }
}

// Vertical pass: `in` (in_rows x w x 3, row r is source row r + row0) into out (out_h x w x 3).
void vertical(const uint8_t* in, int row0, int w, const Coeffs& c, int out_h, uint8_t* out) {
  const int32_t half = 1 << (kPrecisionBits - 1);
  const size_t stride = size_t(w) * 3;
  std::vector<int32_t> acc(stride);
  for (int y = 0; y < out_h; ++y) {
    const int32_t* k = &c.weights[size_t(y) * size_t(c.ksize)];
    std::fill(acc.begin(), acc.end(), half);
    const int first = c.first[size_t(y)] - row0;
    for (int j = 0, n = c.count[size_t(y)]; j < n; ++j) {
      const uint8_t* src = in + size_t(first + j) * stride;
      const int32_t kj = k[j];
      for (size_t i = 0; i < stride; ++i) acc[i] += src[i] * kj;
    }
    uint8_t* dst = out + size_t(y) * stride;
    for (size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
  }
}

}  // namespace

Image resize(const Image& img, int32_t width, int32_t height, ResampleFilter filter) {
  INFERD_CHECK(width >= 1 && height >= 1 && img.width >= 1 && img.height >= 1,
               "resize {}x{} -> {}x{}", img.width, img.height, width, height);
  if (width == img.width && height == img.height) return img;  // PIL copies
  const bool need_h = width != img.width, need_v = height != img.height;
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(size_t(width) * size_t(height) * 3);
  if (!need_v) {
    horizontal(img, 0, img.height, coefficients(img.width, width, filter), width, out.rgb.data());
    return out;
  }
  const Coeffs cv = coefficients(img.height, height, filter);
  if (!need_h) {
    vertical(img.rgb.data(), 0, img.width, cv, height, out.rgb.data());
    return out;
  }
  // Only the source rows the vertical pass reads go through the horizontal one.
  const int first = cv.first[0];
  const int last = cv.first[size_t(height) - 1] + cv.count[size_t(height) - 1];
  std::vector<uint8_t> tmp(size_t(last - first) * size_t(width) * 3);
  horizontal(img, first, last - first, coefficients(img.width, width, filter), width, tmp.data());
  vertical(tmp.data(), first, width, cv, height, out.rgb.data());
  return out;
}

}  // namespace inferd::media
