// Image preprocessing on one core (issue 34's figure: a 1024x768 JPEG to pixel values in at most
// 15 ms): a synthetic photo-like 1024x768 image encoded as JPEG (quality 90, 4:2:0) with
// libjpeg, then decode + Gemma 3's processor (896x896 bilinear) and decode + Qwen2-VL's
// (smart_resize to 1036x756, bicubic, patches). Prints the median and min of 30 runs each.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <vector>

#include <jpeglib.h>  // after <cstdio>: it needs FILE and size_t

#include "media/image_decode.h"
#include "media/image_processor.h"
#include "media/resample.h"

using namespace inferd::media;  // NOLINT: a benchmark program

namespace {

std::vector<uint8_t> encode_jpeg(int w, int h) {
  std::vector<uint8_t> rgb(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[(size_t(y) * w + x) * 3];
      p[0] = uint8_t(128 + 100 * std::sin(x / 37.0) * std::cos(y / 53.0));
      p[1] = uint8_t(std::fmod(x * 0.2 + y * 0.1 + 40 * std::sin((x + y) / 17.0) + 512, 256));
      p[2] = uint8_t((x ^ y) & 0xff);
    }
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = JDIMENSION(w);
  c.image_height = JDIMENSION(h);
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 90, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = &rgb[size_t(c.next_scanline) * w * 3];
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  std::vector<uint8_t> out(buf, buf + size);
  jpeg_destroy_compress(&c);
  free(buf);
  return out;
}

template <typename F>
void time_it(const char* name, F&& f) {
  std::vector<double> ms;
  for (int i = 0; i < 30; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%-44s median %7.2f ms   min %7.2f ms\n", name, ms[ms.size() / 2], ms[0]);
}

}  // namespace

int main() {
  const std::vector<uint8_t> jpeg = encode_jpeg(1024, 768);
  std::printf("1024x768 JPEG, %zu bytes, one thread\n", jpeg.size());
  const auto gemma = make_siglip_processor({});
  const auto qwen = make_qwen2_vl_processor({.max_pixels = 12845056});
  const Image img = decode_image(jpeg, "bench");
  size_t sink = 0;
  time_it("decode", [&] { sink += decode_image(jpeg, "bench").rgb.size(); });
  time_it("resize 896x896 bilinear",
          [&] { sink += resize(img, 896, 896, ResampleFilter::kBilinear).rgb.size(); });
  time_it("decode + Gemma 3 (896x896, [3,896,896])",
          [&] { sink += gemma->preprocess(decode_image(jpeg, "bench")).data.size(); });
  time_it("decode + Qwen2-VL (1036x756, 3996 patches)",
          [&] { sink += qwen->preprocess(decode_image(jpeg, "bench")).data.size(); });
  return sink == 0;
}
