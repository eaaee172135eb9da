// The output side of the public engine API (include/inferd/engine.h): finish reasons, a request's
// accumulated result (GenerateResult) and the pull-style RequestStream.
#include <algorithm>

#include "inferd/engine.h"

namespace inferd {

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
  }
  return "?";
}

const char* to_string(ModelTask task) {
  switch (task) {
    case ModelTask::kGenerate:
      return "generate";
    case ModelTask::kEmbed:
      return "embed";
  }
  return "?";
}

const char* to_string(PoolingType type) {
  switch (type) {
    case PoolingType::kLast:
      return "LAST";
    case PoolingType::kMean:
      return "MEAN";
    case PoolingType::kCls:
      return "CLS";
  }
  return "?";
}

void GenerateResult::accumulate(RequestOutput&& out) {
  request_id = out.request_id;
  num_prompt_tokens = out.num_prompt_tokens;
  num_cached_tokens = std::max(num_cached_tokens, out.num_cached_tokens);
  if (!out.error.empty()) error = out.error;
  if (!out.prompt_logprobs.empty()) prompt_logprobs = std::move(out.prompt_logprobs);
  if (!out.embedding.empty()) embedding = std::move(out.embedding);
  for (auto& d : out.outputs) {
    while (outputs.size() <= size_t(d.index)) {
      outputs.emplace_back();
      outputs.back().index = int32_t(outputs.size() - 1);
    }
    SequenceResult& r = outputs[size_t(d.index)];
    r.token_ids.insert(r.token_ids.end(), d.token_ids.begin(), d.token_ids.end());
    r.text += d.text;
    for (auto& lp : d.logprobs) r.logprobs.push_back(std::move(lp));
    if (d.finish_reason) r.finish_reason = *d.finish_reason;
    if (d.stop_token_id) r.stop_token_id = d.stop_token_id;
    if (d.stop_string) r.stop_string = std::move(d.stop_string);
  }
}

std::optional<RequestOutput> RequestStream::next() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !queue_.empty() || finished_taken_; });
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  if (out.finished) finished_taken_ = true;
  return out;
}

std::optional<RequestOutput> RequestStream::try_next() {
  std::lock_guard lk(mu_);
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  if (out.finished) finished_taken_ = true;
  return out;
}

bool RequestStream::done() const {
  std::lock_guard lk(mu_);
  return finished_taken_;
}

void RequestStream::push(RequestOutput&& out) {
  {
    std::lock_guard lk(mu_);
    if (finished_pushed_) return;
    finished_pushed_ = out.finished;
    queue_.push_back(std::move(out));
  }
  cv_.notify_all();
}

}  // namespace inferd
