// Image placeholders of a rendered prompt expanded as each model's HF processor does (see
// image_prompt.h).
#include "media/image_prompt.h"

#include "core/error.h"

namespace inferd::media {

const char* ImagePromptFormat::placeholder() const {
  return kind == Kind::kGemma3 ? "<start_of_image>" : "<|image_pad|>";
}

const char* ImagePromptFormat::image_token() const {
  return kind == Kind::kGemma3 ? "<image_soft_token>" : "<|image_pad|>";
}

int64_t ImagePromptFormat::tokens_for(const PixelValues& pv) const {
  if (kind == Kind::kGemma3) return mm_tokens_per_image;
  const int64_t patches = int64_t(pv.grid_thw[0]) * pv.grid_thw[1] * pv.grid_thw[2];
  return patches / (int64_t(merge_size) * merge_size);
}

std::string expand_image_placeholders(const std::string& text,
                                      const std::vector<PixelValues>& images,
                                      const ImagePromptFormat& f, const std::string& what) {
  const std::string ph = f.placeholder(), tok = f.image_token();
  size_t count = 0;
  for (size_t p = text.find(ph); p != std::string::npos; p = text.find(ph, p + ph.size())) ++count;
  if (count != images.size())
    fail("{}: the prompt holds {} image placeholder(s) ('{}') but the request has {} image(s)",
         what, count, ph, images.size());
  std::string out;
  out.reserve(text.size() + images.size() * 64);
  size_t pos = 0, i = 0;
  for (size_t p = text.find(ph); p != std::string::npos; p = text.find(ph, pos), ++i) {
    out.append(text, pos, p - pos);
    const int64_t n = f.tokens_for(images[i]);
    if (f.kind == ImagePromptFormat::Kind::kGemma3) out += "\n\n<start_of_image>";
    for (int64_t k = 0; k < n; ++k) out += tok;
    if (f.kind == ImagePromptFormat::Kind::kGemma3) out += "<end_of_image>\n\n";
    pos = p + ph.size();
  }
  out.append(text, pos, std::string::npos);
  return out;
}

}  // namespace inferd::media
