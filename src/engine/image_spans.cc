// The engine's side of images in prompts (image_spans.h).
#include "engine/image_spans.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "media/image_processor.h"

#include "runner/executor.h"

namespace inferd {

void validate_images(const GenerateRequest& r, const ModelExecutor& exec,
                     int32_t max_num_batched_tokens) {
  if (r.images.empty()) return;
  std::string why;
  if (!exec.takes_images(&why))
    throw InvalidRequestError(fmt::format("the request has images, but {}", why));
  const int64_t plen = int64_t(r.prompt_token_ids.size());
  int64_t prev_end = 0;
  for (size_t i = 0; i < r.images.size(); ++i) {
    const ImageInput& im = r.images[i];
    if (!im.pixels) throw InvalidRequestError(fmt::format("images[{}] has no pixel values", i));
    const int32_t want = exec.image_tokens(*im.pixels);
    if (im.num_tokens != want)
      throw InvalidRequestError(
          fmt::format("images[{}] takes {} prompt tokens, but the model makes {} embeddings of it",
                      i, im.num_tokens, want));
    if (im.position < prev_end || int64_t(im.position) + im.num_tokens > plen)
      throw InvalidRequestError(fmt::format(
          "images[{}] at prompt tokens [{}, {}) overlaps an earlier image or runs past the "
          "prompt's {} tokens",
          i, im.position, int64_t(im.position) + im.num_tokens, plen));
    if (im.num_tokens > max_num_batched_tokens)
      throw InvalidRequestError(fmt::format(
          "images[{}] takes {} tokens, more than one step's --max-num-batched-tokens {}", i,
          im.num_tokens, max_num_batched_tokens));
    prev_end = int64_t(im.position) + im.num_tokens;
  }
}

int32_t cut_before_image(std::span<const ImageInput> images, int32_t computed, int32_t n) {
  const int32_t end = computed + n;
  for (const ImageInput& im : images) {
    const int32_t s = im.position, e = im.position + im.num_tokens;
    if (s >= end) break;
    if (e <= end || e <= computed) continue;
    // The chunk ends inside this image: stop before it, or take nothing when it began earlier.
    return s > computed ? s - computed : 0;
  }
  return n;
}

BlockHash fold_images(const BlockHash& parent, std::span<const ImageInput> images, int32_t begin,
                      int32_t end) {
  BlockHash h = parent;
  for (const ImageInput& im : images) {
    if (im.position >= end) break;
    if (im.position + im.num_tokens <= begin) continue;
    int32_t tag[2 + 8] = {-2, im.position};  // no token id is negative
    for (int i = 0; i < 8; ++i) {
      uint32_t w = 0;
      for (int j = 0; j < 4; ++j) w |= uint32_t(im.hash[size_t(i * 4 + j)]) << (8 * j);
      tag[2 + i] = int32_t(w);
    }
    h = hash_block(h, tag);
  }
  return h;
}

void add_image_spans(ForwardBatch& fb, std::span<const ImageInput> images, int32_t row0,
                     int32_t first, int32_t end) {
  for (const ImageInput& im : images) {
    const int32_t s = std::max(first, im.position), e = std::min(end, im.position + im.num_tokens);
    if (im.position >= end) break;
    if (s >= e) continue;
    EmbeddingSpan span;
    span.row = row0 + (s - first);
    span.num_rows = e - s;
    span.source = int32_t(fb.embedding_inputs.size());
    span.offset = s - im.position;
    fb.embedding_spans.push_back(span);
    fb.embedding_inputs.push_back({im.hash, im.pixels, im.num_tokens});
  }
}

void add_mrope_positions(std::vector<int32_t>& t, std::vector<int32_t>& h, std::vector<int32_t>& w,
                         std::span<const ImageInput> images, int32_t first, int32_t end) {
  int32_t shift = 0;  // rope position - sequence position, after the images so far
  size_t next = 0;    // the first image not wholly before p
  for (int32_t p = first; p < end; ++p) {
    for (; next < images.size() && images[next].position + images[next].num_tokens <= p; ++next) {
      const ImageInput& im = images[next];
      const std::array<int32_t, 3>& g = im.pixels->grid_thw;
      const int32_t m = int32_t(std::lround(
          std::sqrt(double(g[0]) * double(g[1]) * double(g[2]) / double(im.num_tokens))));
      // The image spans max(lh, lw) positions where it takes num_tokens sequence positions.
      shift += std::max(g[1] / m, g[2] / m) - im.num_tokens;
    }
    if (next < images.size() && p >= images[next].position) {
      const ImageInput& im = images[next];
      const std::array<int32_t, 3>& g = im.pixels->grid_thw;
      const int32_t m = int32_t(std::lround(
          std::sqrt(double(g[0]) * double(g[1]) * double(g[2]) / double(im.num_tokens))));
      const int32_t lh = g[1] / m, lw = g[2] / m, k = p - im.position;
      const int32_t base = im.position + shift;
      t.push_back(base);
      h.push_back(base + k / lw % lh);
      w.push_back(base + k % lw);
      continue;
    }
    t.push_back(p + shift);
    h.push_back(p + shift);
    w.push_back(p + shift);
  }
}

}  // namespace inferd
