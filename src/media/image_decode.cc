// Image files to RGB through Debian's libjpeg-turbo, libpng and libwebp (see image_decode.h).
// libjpeg and libpng report errors by longjmp: each decoder keeps its C++ objects outside the
// frame that calls setjmp, so that nothing with a destructor is jumped over.
#include "media/image_decode.h"

#include <jpeglib.h>

#include <jerror.h>  // after jpeglib.h: it needs its types
#include <png.h>
#include <webp/decode.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace inferd::media {

ImageFormat sniff_format(std::span<const uint8_t> b) {
  auto starts = [&](std::initializer_list<uint8_t> m, size_t at = 0) {
    if (b.size() < at + m.size()) return false;
    return std::equal(m.begin(), m.end(), b.begin() + ptrdiff_t(at));
  };
  if (starts({0xFF, 0xD8, 0xFF})) return ImageFormat::kJpeg;
  if (starts({0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'})) return ImageFormat::kPng;
  if (starts({'R', 'I', 'F', 'F'}) && starts({'W', 'E', 'B', 'P'}, 8)) return ImageFormat::kWebp;
  if (starts({'G', 'I', 'F', '8'})) return ImageFormat::kGif;
  if (starts({'B', 'M'})) return ImageFormat::kBmp;
  if (starts({'I', 'I', 42, 0}) || starts({'M', 'M', 0, 42})) return ImageFormat::kTiff;
  return ImageFormat::kUnknown;
}

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kGif:
      return "GIF";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kTiff:
      return "TIFF";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

namespace {

void check_size(int64_t w, int64_t h, const std::string& what, const char* fmt,
                const DecodeLimits& limits) {
  if (w <= 0 || h <= 0) fail("{}: the {} image has no pixels ({}x{})", what, fmt, w, h);
  if (w * h > limits.max_pixels)
    fail("{}: the {} image is {}x{} = {} pixels, more than the limit of {} (--max-image-pixels)",
         what, fmt, w, h, w * h, limits.max_pixels);
}

// ---- JPEG --------------------------------------------------------------------------------------

struct JpegErr {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings are quiet (libjpeg skips a corrupt segment, as PIL does), but a truncated file is an
// error: PIL refuses it ("image file is truncated") where libjpeg would fill the rest with grey.
void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(cinfo);
}

// Decodes the pixels into img.rgb (sized by the caller from the header). 0: decoded; 1: libjpeg
// failed (its message in err.message).
int jpeg_decode(const uint8_t* data, size_t n, Image& img, JpegErr& err) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_on_error;
  err.mgr.emit_message = jpeg_on_message;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  if (int32_t(cinfo.output_width) != img.width || int32_t(cinfo.output_height) != img.height ||
      cinfo.output_components != 3) {
    std::snprintf(err.message, sizeof(err.message), "unexpected output layout");
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  uint8_t* out = img.rgb.data();
  const size_t stride = size_t(img.width) * 3;
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rowp = out + size_t(cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&cinfo, &rowp, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

struct JpegHeader {
  int64_t width = 0, height = 0;
  bool cmyk = false;
};

// The header only (dimensions, colour space). 0: read; 1: libjpeg failed (err.message).
int jpeg_header(const uint8_t* data, size_t n, JpegErr& err, JpegHeader& h) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_on_error;
  err.mgr.emit_message = jpeg_on_message;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  h.width = cinfo.image_width;
  h.height = cinfo.image_height;
  h.cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

Image decode_jpeg(std::span<const uint8_t> b, const std::string& what, const DecodeLimits& lim) {
  // The header first, so that the size is checked and the pixel buffer allocated before (and
  // outside the frame of) the decoding.
  JpegErr err{};
  JpegHeader h;
  if (jpeg_header(b.data(), b.size(), err, h) != 0)
    fail("{}: corrupt JPEG image: {}", what, err.message);
  check_size(h.width, h.height, what, "JPEG", lim);
  if (h.cmyk) fail("{}: CMYK JPEG images are not supported (expected RGB or greyscale)", what);
  Image img;
  img.width = int32_t(h.width);
  img.height = int32_t(h.height);
  img.rgb.resize(size_t(img.pixels()) * 3);
  if (jpeg_decode(b.data(), b.size(), img, err) != 0)
    fail("{}: corrupt JPEG image: {}", what, err.message);
  return img;
}

// ---- PNG ---------------------------------------------------------------------------------------

struct PngState {
  const uint8_t* data;
  size_t size, pos;
  char message[256];
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof(s->message), "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > s->size - s->pos) png_error(png, "truncated file");
  std::memcpy(out, s->data + s->pos, n);
  s->pos += n;
}

// Reads the header (stage 0: fills w, h; returns) or the pixels (stage 1, rows sized w x h x 3).
// 0: fine; 1: libpng failed (message in s).
int png_run(PngState& s, int stage, uint32_t& w, uint32_t& h, png_bytep* rows) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_on_error, png_on_warning);
  if (!png) return 1;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    return 1;
  }
  png_set_read_fn(png, &s, png_read_mem);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);
  w = png_get_image_width(png, info);
  h = png_get_image_height(png, info);
  if (stage == 1) {
    const int color = png_get_color_type(png, info);
    png_set_expand(png);  // palette -> RGB, grey < 8 bits -> 8, tRNS -> alpha
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
      png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != size_t(w) * 3) png_error(png, "unexpected row layout");
    png_read_image(png, rows);
    png_read_end(png, nullptr);
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return 0;
}

Image decode_png(std::span<const uint8_t> b, const std::string& what, const DecodeLimits& lim) {
  PngState s{b.data(), b.size(), 0, {}};
  uint32_t w = 0, h = 0;
  if (png_run(s, 0, w, h, nullptr) != 0) fail("{}: corrupt PNG image: {}", what, s.message);
  check_size(w, h, what, "PNG", lim);
  Image img;
  img.width = int32_t(w);
  img.height = int32_t(h);
  img.rgb.resize(size_t(img.pixels()) * 3);
  std::vector<png_bytep> rows(h);
  for (uint32_t y = 0; y < h; ++y) rows[y] = img.rgb.data() + size_t(y) * w * 3;
  s.pos = 0;
  if (png_run(s, 1, w, h, rows.data()) != 0) fail("{}: corrupt PNG image: {}", what, s.message);
  return img;
}

// ---- WebP --------------------------------------------------------------------------------------

Image decode_webp(std::span<const uint8_t> b, const std::string& what, const DecodeLimits& lim) {
  WebPBitstreamFeatures f;
  if (WebPGetFeatures(b.data(), b.size(), &f) != VP8_STATUS_OK)
    fail("{}: corrupt WebP image (its header cannot be read)", what);
  if (f.has_animation) fail("{}: animated WebP images are not supported", what);
  check_size(f.width, f.height, what, "WebP", lim);
  Image img;
  img.width = f.width;
  img.height = f.height;
  img.rgb.resize(size_t(img.pixels()) * 3);
  if (!WebPDecodeRGBInto(b.data(), b.size(), img.rgb.data(), img.rgb.size(), img.width * 3))
    fail("{}: corrupt WebP image", what);
  return img;
}

}  // namespace

Image decode_image(std::span<const uint8_t> bytes, const std::string& what,
                   const DecodeLimits& limits) {
  const ImageFormat f = sniff_format(bytes);
  switch (f) {
    case ImageFormat::kJpeg:
      return decode_jpeg(bytes, what, limits);
    case ImageFormat::kPng:
      return decode_png(bytes, what, limits);
    case ImageFormat::kWebp:
      return decode_webp(bytes, what, limits);
    case ImageFormat::kUnknown:
      fail(
          "{}: not an image this server reads ({} bytes in no known format): expected JPEG, PNG "
          "or WebP",
          what, bytes.size());
    default:
      fail("{}: {} images are not supported: expected JPEG, PNG or WebP", what, format_name(f));
  }
}

}  // namespace inferd::media
