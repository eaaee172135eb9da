// The Gemma 3 (SigLIP) and Qwen2-VL image processors (see image_processor.h), written from
// transformers' Gemma3ImageProcessor and Qwen2VLImageProcessor.
#include "media/image_processor.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/error.h"

namespace inferd::media {

using nlohmann::json;

namespace {

// rescale then normalise, as transformers does it on a uint8 value: float64 * factor rounded to
// float32, then (x - mean) / std in float32. One table a channel: every input is one of 256.
using Lut = std::array<std::array<float, 256>, 3>;

Lut make_lut(bool do_rescale, double factor, bool do_normalize, const std::array<float, 3>& mean,
             const std::array<float, 3>& std) {
  Lut lut;
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      float x = do_rescale ? float(double(v) * factor) : float(v);
      if (do_normalize) x = (x - mean[size_t(c)]) / std[size_t(c)];
      lut[size_t(c)][size_t(v)] = x;
    }
  }
  return lut;
}

class SiglipProcessor final : public ImageProcessor {
 public:
  explicit SiglipProcessor(const SiglipProcessorConfig& c)
      : c_(c), lut_(make_lut(c.do_rescale, c.rescale_factor, c.do_normalize, c.mean, c.std)) {}
  const char* name() const override { return "Gemma3ImageProcessor"; }
  PixelValues preprocess(const Image& img) const override {
    const Image r = c_.do_resize ? resize(img, c_.width, c_.height, c_.resample) : img;
    PixelValues pv;
    const size_t plane = size_t(r.width) * size_t(r.height);
    pv.shape = {3, r.height, r.width};
    pv.data.resize(plane * 3);
    for (size_t i = 0; i < plane; ++i) {
      for (size_t ch = 0; ch < 3; ++ch) pv.data[ch * plane + i] = lut_[ch][r.rgb[i * 3 + ch]];
    }
    return pv;
  }

 private:
  SiglipProcessorConfig c_;
  Lut lut_;
};

class Qwen2VlProcessor final : public ImageProcessor {
 public:
  explicit Qwen2VlProcessor(const Qwen2VlProcessorConfig& c)
      : c_(c), lut_(make_lut(c.do_rescale, c.rescale_factor, c.do_normalize, c.mean, c.std)) {}
  const char* name() const override { return "Qwen2VLImageProcessor"; }
  PixelValues preprocess(const Image& img) const override {
    const int32_t ps = c_.patch_size, m = c_.merge_size, tp = c_.temporal_patch_size;
    Image r = img;
    if (c_.do_resize) {
      const auto [h, w] = smart_resize(img.height, img.width, ps * m, c_.min_pixels, c_.max_pixels);
      r = resize(img, w, h, c_.resample);
    } else if (r.height % (ps * m) != 0 || r.width % (ps * m) != 0) {
      fail("image of {}x{}: with do_resize false its sides must be multiples of {}", r.width,
           r.height, ps * m);
    }
    const int32_t gh = r.height / ps, gw = r.width / ps;
    const int64_t dim = int64_t(3) * tp * ps * ps;
    PixelValues pv;
    pv.grid_thw = {1, gh, gw};
    pv.shape = {int64_t(gh) * gw, dim};
    pv.data.resize(size_t(gh) * size_t(gw) * size_t(dim));
    // Rows in (block row, block column, row in block, column in block) order; each row
    // (channel, frame, y, x), the one frame repeated temporal_patch_size times.
    float* out = pv.data.data();
    for (int32_t bh = 0; bh < gh / m; ++bh) {
      for (int32_t bw = 0; bw < gw / m; ++bw) {
        for (int32_t mh = 0; mh < m; ++mh) {
          for (int32_t mw = 0; mw < m; ++mw) {
            const int32_t y0 = (bh * m + mh) * ps, x0 = (bw * m + mw) * ps;
            for (int32_t ch = 0; ch < 3; ++ch) {
              const auto& lut = lut_[size_t(ch)];
              float* first = out;
              for (int32_t y = 0; y < ps; ++y) {
                const uint8_t* src = r.row(y0 + y) + size_t(x0) * 3 + size_t(ch);
                for (int32_t x = 0; x < ps; ++x) *out++ = lut[src[3 * x]];
              }
              for (int32_t t = 1; t < tp; ++t) {
                std::copy(first, first + ps * ps, out);
                out += ps * ps;
              }
            }
          }
        }
      }
    }
    return pv;
  }

 private:
  Qwen2VlProcessorConfig c_;
  Lut lut_;
};

// ---- preprocessor_config.json -------------------------------------------------------------------

bool get_bool(const json& j, const char* key, bool def, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail("{}: {} must be true or false, got {}", src, key, it->dump());
  return it->get<bool>();
}

double get_num(const json& j, const char* key, double def, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) fail("{}: {} must be a number, got {}", src, key, it->dump());
  return it->get<double>();
}

int64_t get_int(const json& j, const char* key, int64_t def, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number_integer() || it->get<int64_t>() <= 0)
    fail("{}: {} must be a positive integer, got {}", src, key, it->dump());
  return it->get<int64_t>();
}

std::array<float, 3> get_triple(const json& j, const char* key, std::array<float, 3> def,
                                const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (it->is_number()) return {it->get<float>(), it->get<float>(), it->get<float>()};
  if (!it->is_array() || it->size() != 3 || !(*it)[0].is_number() || !(*it)[1].is_number() ||
      !(*it)[2].is_number())
    fail("{}: {} must be three numbers (one a channel), got {}", src, key, it->dump());
  std::array<float, 3> v{(*it)[0].get<float>(), (*it)[1].get<float>(), (*it)[2].get<float>()};
  if (std::string(key) == "image_std" && (v[0] == 0 || v[1] == 0 || v[2] == 0))
    fail("{}: image_std must not be 0", src);
  return v;
}

ResampleFilter get_resample(const json& j, int def, const std::string& src) {
  const int64_t v = get_int(j, "resample", def, src);
  if (v == 2) return ResampleFilter::kBilinear;
  if (v == 3) return ResampleFilter::kBicubic;
  fail("{}: resample {} is not supported: expected 2 (bilinear) or 3 (bicubic)", src, v);
}

void common(const json& j, const std::string& src, bool& resize, bool& rescale, bool& normalize,
            double& factor, std::array<float, 3>& mean, std::array<float, 3>& std) {
  if (!get_bool(j, "do_convert_rgb", true, src))
    fail("{}: do_convert_rgb false is not supported (images are always converted to RGB)", src);
  resize = get_bool(j, "do_resize", true, src);
  rescale = get_bool(j, "do_rescale", true, src);
  normalize = get_bool(j, "do_normalize", true, src);
  factor = get_num(j, "rescale_factor", 1.0 / 255, src);
  mean = get_triple(j, "image_mean", mean, src);
  std = get_triple(j, "image_std", std, src);
}

std::unique_ptr<ImageProcessor> siglip_from_json(const json& j, const std::string& src) {
  SiglipProcessorConfig c;
  common(j, src, c.do_resize, c.do_rescale, c.do_normalize, c.rescale_factor, c.mean, c.std);
  if (get_bool(j, "do_pan_and_scan", false, src))
    fail(
        "{}: do_pan_and_scan is not supported yet (Gemma 3's pan-and-scan crops): set it to "
        "false",
        src);
  c.resample = get_resample(j, 2, src);
  if (auto it = j.find("size"); it != j.end() && !it->is_null()) {
    if (!it->is_object() || !it->contains("height") || !it->contains("width"))
      fail("{}: size must be {{\"height\": H, \"width\": W}}, got {}", src, it->dump());
    c.height = int32_t(get_int(*it, "height", 0, src + ": size"));
    c.width = int32_t(get_int(*it, "width", 0, src + ": size"));
  }
  return make_siglip_processor(c);
}

std::unique_ptr<ImageProcessor> qwen_from_json(const json& j, const std::string& src) {
  Qwen2VlProcessorConfig c;
  common(j, src, c.do_resize, c.do_rescale, c.do_normalize, c.rescale_factor, c.mean, c.std);
  c.resample = get_resample(j, 3, src);
  c.patch_size = int32_t(get_int(j, "patch_size", 14, src));
  c.temporal_patch_size = int32_t(get_int(j, "temporal_patch_size", 2, src));
  c.merge_size = int32_t(get_int(j, "merge_size", 2, src));
  // transformers reads size.shortest_edge / longest_edge, falling back to min/max_pixels.
  c.min_pixels = get_int(j, "min_pixels", c.min_pixels, src);
  c.max_pixels = get_int(j, "max_pixels", c.max_pixels, src);
  if (auto it = j.find("size"); it != j.end() && it->is_object()) {
    c.min_pixels = get_int(*it, "shortest_edge", c.min_pixels, src + ": size");
    c.max_pixels = get_int(*it, "longest_edge", c.max_pixels, src + ": size");
  }
  if (c.min_pixels > c.max_pixels)
    fail("{}: min_pixels {} is more than max_pixels {}", src, c.min_pixels, c.max_pixels);
  return make_qwen2_vl_processor(c);
}

}  // namespace

std::unique_ptr<ImageProcessor> make_siglip_processor(const SiglipProcessorConfig& c) {
  return std::make_unique<SiglipProcessor>(c);
}

std::unique_ptr<ImageProcessor> make_qwen2_vl_processor(const Qwen2VlProcessorConfig& c) {
  return std::make_unique<Qwen2VlProcessor>(c);
}

std::pair<int32_t, int32_t> smart_resize(int32_t height, int32_t width, int32_t factor,
                                         int64_t min_pixels, int64_t max_pixels) {
  if (double(std::max(height, width)) / std::min(height, width) > 200)
    fail("image of {}x{}: its aspect ratio is over 200", width, height);
  // Python's round(): ties to even (nearbyint in the default rounding mode).
  int64_t h = int64_t(std::nearbyint(double(height) / factor)) * factor;
  int64_t w = int64_t(std::nearbyint(double(width) / factor)) * factor;
  if (h * w > max_pixels) {
    const double beta = std::sqrt(double(height) * width / double(max_pixels));
    h = std::max<int64_t>(factor, int64_t(std::floor(height / beta / factor)) * factor);
    w = std::max<int64_t>(factor, int64_t(std::floor(width / beta / factor)) * factor);
  } else if (h * w < min_pixels) {
    const double beta = std::sqrt(double(min_pixels) / (double(height) * width));
    h = int64_t(std::ceil(height * beta / factor)) * factor;
    w = int64_t(std::ceil(width * beta / factor)) * factor;
  }
  return {int32_t(h), int32_t(w)};
}

std::unique_ptr<ImageProcessor> image_processor_from_json(const json& j, const std::string& src) {
  if (!j.is_object()) fail("{}: expected a JSON object", src);
  const std::string type = j.value("image_processor_type", std::string());
  if (type == "Gemma3ImageProcessor" || type == "Gemma3ImageProcessorFast" ||
      type == "SiglipImageProcessor" || type == "SiglipImageProcessorFast")
    return siglip_from_json(j, src);
  if (type == "Qwen2VLImageProcessor" || type == "Qwen2VLImageProcessorFast")
    return qwen_from_json(j, src);
  fail(
      "{}: unsupported image_processor_type '{}': expected one of Gemma3ImageProcessor, "
      "SiglipImageProcessor, Qwen2VLImageProcessor",
      src, type);
}

std::unique_ptr<ImageProcessor> load_image_processor(const std::string& model_dir) {
  const std::string path = model_dir + "/preprocessor_config.json";
  std::ifstream f(path);
  if (!f) fail("{}: cannot open the image processor's settings (a vision model needs it)", path);
  json j;
  try {
    j = json::parse(f);
  } catch (const std::exception& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
  return image_processor_from_json(j, path);
}

}  // namespace inferd::media
