// Images in a model runner's steps (issue 34): which runners take them, each step's image
// embeddings (computed once per image by the model's vision tower, then kept in the embedding
// cache by content hash) as the rows the model writes over its token embeddings, and the
// attention range of each row when the tokens of one image attend to each other (Gemma 3).
#include <algorithm>

#include "core/error.h"
#include "runner/model_runner.h"

namespace inferd {

bool ModelRunner::takes_images(std::string* why_not) const {
  if (!model_->takes_images(why_not)) return false;
  if (backend_->device() == Device::kCPU) return true;
  if (why_not)
    *why_not = "images run on the CPU backend only for now (issue 34): the " + backend_->name() +
               " backend refuses them";
  return false;
}

int32_t ModelRunner::image_tokens(const media::PixelValues& pv) const {
  return model_->image_tokens(pv);
}

void ModelRunner::prepare_images(const ForwardBatch& fb) {
  step_images_.clear();
  input_rows_.clear();
  attend_ranges_.clear();
  if (fb.embedding_spans.empty()) return;
  const size_t H = size_t(config().hidden_size);
  for (const EmbeddingInput& in : fb.embedding_inputs) {
    INFERD_CHECK(in.pixels != nullptr, "an embedding input without pixels");
    ImageEmbeddingCache::Embeddings e = image_cache_.find(in.hash);
    if (!e) {
      e = std::make_shared<const std::vector<float>>(model_->embed_image(*in.pixels));
      image_cache_.insert(in.hash, e);
    }
    INFERD_CHECK(e->size() == size_t(in.num_rows) * H,
                 "an image's embeddings have {} values, its {} rows need {}", e->size(),
                 in.num_rows, size_t(in.num_rows) * H);
    step_images_.push_back(std::move(e));
  }
  const bool ranges = model_->image_tokens_attend_each_other();
  if (ranges) {
    attend_ranges_.resize(size_t(fb.num_tokens()) * 2);
    for (int32_t t = 0; t < fb.num_tokens(); ++t) {
      attend_ranges_[size_t(2 * t)] = fb.positions[size_t(t)];
      attend_ranges_[size_t(2 * t + 1)] = fb.positions[size_t(t)] + 1;
    }
  }
  for (const EmbeddingSpan& s : fb.embedding_spans) {
    INFERD_CHECK(s.source >= 0 && size_t(s.source) < step_images_.size(),
                 "embedding span source {}", s.source);
    const EmbeddingInput& in = fb.embedding_inputs[size_t(s.source)];
    INFERD_CHECK(s.row >= 0 && s.num_rows > 0 && s.row + s.num_rows <= fb.num_tokens() &&
                     s.offset >= 0 && s.offset + s.num_rows <= in.num_rows,
                 "embedding span rows [{}, +{}) offset {} of an image of {} rows", s.row,
                 s.num_rows, s.offset, in.num_rows);
    input_rows_.push_back(
        {s.row, s.num_rows, step_images_[size_t(s.source)]->data() + size_t(s.offset) * H});
    if (!ranges) continue;
    // The whole image must be cached or in this step (the scheduler never ends a chunk inside
    // one): its last position is below its sequence's kv_len.
    const auto seq = std::find_if(fb.seqs.begin(), fb.seqs.end(), [&](const SeqBatchInfo& q) {
      return s.row >= q.q_start && s.row < q.q_start + q.q_len;
    });
    const int32_t image_end = fb.positions[size_t(s.row)] - s.offset + in.num_rows;
    INFERD_CHECK(seq != fb.seqs.end() && s.row + s.num_rows <= seq->q_start + seq->q_len &&
                     image_end <= seq->kv_len,
                 "an image ending at position {} in a step of its sequence up to kv_len {}",
                 image_end, seq == fb.seqs.end() ? -1 : seq->kv_len);
    for (int32_t j = 0; j < s.num_rows; ++j) {
      const int32_t t = s.row + j, lo = fb.positions[size_t(t)] - (s.offset + j);
      attend_ranges_[size_t(2 * t)] = lo;
      attend_ranges_[size_t(2 * t + 1)] = lo + in.num_rows;
    }
  }
}

}  // namespace inferd
