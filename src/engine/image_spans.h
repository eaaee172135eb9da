// The engine's side of images in prompts (issue 34): a request's images checked against the
// executor, where a prefill chunk may end (never inside an image: a model whose image tokens
// attend to each other needs the whole image in one step), the image tags folded into the
// prefix-cache hashes of the blocks an image's tokens are in, and the embedding spans of one
// sequence's rows in a forward batch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/forward_batch.h"
#include "engine/block_pool.h"
#include "inferd/engine.h"

namespace inferd {

class ModelExecutor;

// InvalidRequestError unless `r.images` fit `exec` (it takes images; each image's num_tokens is
// what exec.image_tokens says), lie inside the prompt in order without overlap, and each fits one
// step of `max_num_batched_tokens` tokens.
void validate_images(const GenerateRequest& r, const ModelExecutor& exec,
                     int32_t max_num_batched_tokens);

// The most tokens from `computed` on, at most `n`, that end no image inside it: n itself, or
// fewer to stop before an image that would be cut; 0 when the step can't take the image that
// starts at or before `computed` whole.
int32_t cut_before_image(std::span<const ImageInput> images, int32_t computed, int32_t n);

// `parent` folded with the images that have tokens in block [begin, end) (their position and
// content hash); `parent` itself when none has: the prefix cache then tells images apart.
BlockHash fold_images(const BlockHash& parent, std::span<const ImageInput> images, int32_t begin,
                      int32_t end);

// Adds to `fb` the embedding spans (and their inputs) of sequence rows for positions [first,
// end), the first of which is batch row `row0`.
void add_image_spans(ForwardBatch& fb, std::span<const ImageInput> images, int32_t row0,
                     int32_t first, int32_t end);

// M-RoPE (Qwen2-VL / Qwen2.5-VL; transformers' get_rope_index for images): appends the
// (temporal, height, width) rope positions of sequence positions [first, end) to t, h and w. Text
// takes one more than the largest position before it in all three; image token k of an image
// whose merged grid is gt x lh x lw (from its pixels' grid_thw and num_tokens) takes (base,
// base + k / lw % lh, base + k % lw), base following the text before it. Positions past the
// prompt's last image keep its shift (rope_delta).
void add_mrope_positions(std::vector<int32_t>& t, std::vector<int32_t>& h, std::vector<int32_t>& w,
                         std::span<const ImageInput> images, int32_t first, int32_t end);

}  // namespace inferd
