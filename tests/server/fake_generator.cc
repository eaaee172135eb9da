#include "server/fake_generator.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "inferd/request_validation.h"
#include "jinja/template.h"

namespace inferd::server::testing {

std::vector<float> fake_embedding(std::span<const int32_t> ids, int32_t size) {
  std::vector<float> v(size_t(size), 0.0f);
  for (size_t t = 0; t < ids.size(); ++t)
    for (int32_t i = 0; i < size; ++i)
      v[size_t(i)] += std::sin(0.37f * float(ids[t]) * float(i + 1) + 0.11f * float(t));
  return v;
}

FakeGenerator::FakeGenerator(FakeConfig config) : config_(std::move(config)) {
  thread_ = std::thread([this] { loop(); });
}

FakeGenerator::~FakeGenerator() {
  shutdown();
}

std::vector<int32_t> FakeGenerator::encode(const std::string& text, bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special) ids.push_back(1);
  for (unsigned char c : text) ids.push_back(int32_t(c) + 3);
  return ids;
}

std::string FakeGenerator::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string s;
  for (int32_t id : ids) {
    if (id >= 3)
      s += char(id - 3);
    else if (!skip_special)
      s += id == 0 ? "<pad>" : id == 1 ? "<s>" : "</s>";
  }
  return s;
}

std::string FakeGenerator::token_text(int32_t id) const {
  const int32_t one[1] = {id};
  return decode(one, false);
}

std::string FakeGenerator::apply_chat_template(const ChatTemplateArgs& args) const {
  if (args.kwargs.contains("raise")) throw Error("template raised: " + args.kwargs["raise"].dump());
  if (!config_.chat_template.empty() || !args.template_text.empty()) {
    nlohmann::ordered_json ctx =
        args.kwargs.is_object() ? args.kwargs : nlohmann::ordered_json::object();
    ctx["messages"] = args.messages;
    ctx["tools"] = args.tools;
    ctx["add_generation_prompt"] = args.add_generation_prompt;
    return jinja::Template(args.template_text.empty() ? config_.chat_template : args.template_text)
        .render(ctx);
  }
  std::string s;
  for (const auto& m : args.messages) {
    s += "<|" + m["role"].get<std::string>() + "|>";
    if (m["content"].is_string()) s += m["content"].get<std::string>();
    s += "\n";
  }
  if (args.tools.is_array()) s += "<|tools|>" + std::to_string(args.tools.size()) + "\n";
  if (args.add_generation_prompt) s += "<|assistant|>";
  return s;
}

std::string FakeGenerator::submit(GenerateRequest r, OutputCallback cb) {
  std::lock_guard lk(mu_);
  if (stop_) throw EngineStoppedError("the engine is shut down");
  const int64_t plen = int64_t(r.prompt_token_ids.size());
  if (plen == 0) throw InvalidRequestError("empty prompt");
  if (r.pooling && config_.task != ModelTask::kEmbed)
    throw InvalidRequestError("pooling requests need --task embed");
  if (r.pooling && r.pooling->dimensions && *r.pooling->dimensions > config_.embedding_size)
    throw InvalidFieldError("Invalid 'pooling.dimensions': the model's vectors have " +
                                std::to_string(config_.embedding_size) + " values.",
                            "pooling.dimensions");
  if (!r.pooling && config_.task == ModelTask::kEmbed)
    throw InvalidRequestError("an embedding model does not generate");
  for (int32_t id : r.prompt_token_ids)
    if (id < 0 || id >= vocab_size()) throw InvalidRequestError("token id outside the vocabulary");
  if (plen + r.params.max_tokens.value_or(0) > config_.max_model_len)
    throw InvalidRequestError("prompt + max_tokens exceeds max_model_len");
  int32_t waiting = 0;
  for (auto& [id, l] : live_) waiting += !l.running;
  if (config_.max_queue > 0 && waiting >= config_.max_queue)
    throw QueueFullError("the waiting queue is full");
  if (r.request_id.empty()) r.request_id = "req-" + std::to_string(next_id_++);
  if (live_.count(r.request_id)) throw InvalidRequestError("duplicate request id");
  Live l;
  l.req = r;
  l.cb = std::move(cb);
  l.seqs.resize(size_t(r.params.n));
  l.times.arrival = std::chrono::steady_clock::now();
  // Prefix cache stand-in: a prompt seen before hits in whole blocks.
  prefix_queries_ += plen;
  if (seen_prompts_.count(r.prompt_token_ids)) {
    l.cached = int32_t((plen - 1) / config_.block_size * config_.block_size);
    prefix_hits_ += l.cached;
  }
  seen_prompts_.insert(r.prompt_token_ids);
  last_ = r;
  const std::string id = r.request_id;
  live_.emplace(id, std::move(l));
  order_.push_back(id);
  submitted_++;
  cv_.notify_all();
  return id;
}

bool FakeGenerator::abort(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return false;
  it->second.aborted = true;
  cv_.notify_all();
  return true;
}

void FakeGenerator::pause(bool p) {
  std::lock_guard lk(mu_);
  paused_ = p;
  cv_.notify_all();
}

int32_t FakeGenerator::num_live() const {
  std::lock_guard lk(mu_);
  return int32_t(live_.size());
}

GenerateRequest FakeGenerator::last_request() const {
  std::lock_guard lk(mu_);
  return last_;
}

int32_t FakeGenerator::blocks_of(const Live& l) const {
  if (!l.running) return 0;
  int32_t b = 0;
  for (const auto& s : l.seqs) {
    const int32_t len = int32_t(l.req.prompt_token_ids.size()) + s.tokens;
    b += (len + config_.block_size - 1) / config_.block_size;
  }
  return b;
}

EngineStats FakeGenerator::stats() const {
  std::lock_guard lk(mu_);
  EngineStats s;
  s.blocks_total = config_.total_blocks;
  for (const auto& [id, l] : live_) {
    s.blocks_used += blocks_of(l);
    (l.running ? s.num_running : s.num_waiting) += l.req.params.n;
  }
  s.blocks_free = s.blocks_total - s.blocks_used;
  s.prefix_cache_queries = prefix_queries_;
  s.prefix_cache_hits = prefix_hits_;
  s.generation_tokens = generated_;
  s.requests_finished = finished_;
  s.requests_aborted = aborted_;
  s.steps_by_tokens_log2 = steps_by_tokens_log2_;
  s.tokens_computed = tokens_computed_;
  for (int64_t n : steps_by_tokens_log2_) s.num_steps += n;
  return s;
}

void FakeGenerator::shutdown() {
  {
    std::lock_guard lk(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

// A pooling request finishes in one step: its vector, truncated to `dimensions`, then
// L2-normalised when asked (the engine's order).
void FakeGenerator::pool_one(Live& l, RequestOutput& out) const {
  SequenceDelta d;
  d.index = 0;
  l.seqs[0].finished = true;
  if (l.aborted) {
    d.finish_reason = FinishReason::kAbort;
    out.outputs.push_back(std::move(d));
    return;
  }
  const PoolingParams& p = *l.req.pooling;
  std::vector<float> v = fake_embedding(l.req.prompt_token_ids, config_.embedding_size);
  if (p.dimensions && *p.dimensions < int32_t(v.size())) v.resize(size_t(*p.dimensions));
  if (p.normalize.value_or(config_.pooling.normalize)) {
    double sq = 0;
    for (float x : v) sq += double(x) * x;
    const float inv = sq > 0 ? float(1.0 / std::sqrt(sq)) : 0.0f;
    for (float& x : v) x *= inv;
  }
  out.embedding = std::move(v);
  d.finish_reason = FinishReason::kStop;
  out.outputs.push_back(std::move(d));
}

void FakeGenerator::step_one(Live& l, RequestOutput& out) {
  if (l.req.pooling) return pool_one(l, out);
  const auto& p = l.req.params;
  if (p.prompt_logprobs && !l.prompt_scored && !l.aborted) {
    l.prompt_scored = true;
    const auto& ids = l.req.prompt_token_ids;
    for (size_t i = 1; i < ids.size(); ++i) {
      SampleLogprobs lp;
      lp.token_id = ids[i];
      lp.logprob = fake_prompt_logprob(i);
      lp.rank = fake_prompt_rank(i);
      for (int32_t k = 0; k < *p.prompt_logprobs; ++k)
        lp.top.push_back({3 + 'a' + k, -0.25f - float(k)});
      out.prompt_logprobs.push_back(std::move(lp));
    }
  }
  for (size_t i = 0; i < l.seqs.size(); ++i) {
    Seq& s = l.seqs[i];
    if (s.finished) continue;
    SequenceDelta d;
    d.index = int32_t(i);
    if (l.aborted || p.max_tokens == 0) {
      d.finish_reason = l.aborted ? FinishReason::kAbort : FinishReason::kLength;
      s.finished = true;
      out.outputs.push_back(std::move(d));
      continue;
    }
    const int32_t max_tokens =
        p.max_tokens.value_or(config_.max_model_len - int32_t(l.req.prompt_token_ids.size()));
    int32_t id;
    if (config_.eos_after > 0 && s.tokens == config_.eos_after && !p.ignore_eos) {
      id = 2;
    } else {
      id = int32_t((unsigned char)config_.reply[size_t(s.tokens) % config_.reply.size()]) + 3;
    }
    s.tokens++;
    generated_++;
    d.token_ids.push_back(id);
    if (p.logprobs) {
      SampleLogprobs lp;
      lp.token_id = id;
      lp.logprob = -0.25f;
      lp.rank = 1;
      for (int32_t k = 0; k < *p.logprobs; ++k)
        lp.top.push_back({k == 0 ? id : 3 + ('a' + k) % 256, -0.25f - float(k)});
      d.logprobs.push_back(std::move(lp));
    }
    if (id == 2) {
      d.finish_reason = FinishReason::kStop;
    } else {
      s.text += char(id - 3);
      // Stop strings, with hold-back of a possible prefix.
      size_t cut = std::string::npos;
      std::string hit;
      for (const auto& st : p.stop) {
        const size_t pos = s.text.find(st, s.emitted);
        if (pos != std::string::npos && pos < cut) {
          cut = pos;
          hit = st;
        }
      }
      if (cut != std::string::npos) {
        d.text = s.text.substr(s.emitted, cut - s.emitted);
        if (p.include_stop_str_in_output) d.text += hit;
        s.emitted = s.text.size();
        d.finish_reason = FinishReason::kStop;
        d.stop_string = hit;
      } else {
        size_t hold = 0;
        for (const auto& st : p.stop)
          for (size_t k = std::min(st.size() - 1, s.text.size() - s.emitted); k > hold; --k)
            if (s.text.compare(s.text.size() - k, k, st, 0, k) == 0) {
              hold = k;
              break;
            }
        const size_t end = s.text.size() - hold;
        d.text = s.text.substr(s.emitted, end - s.emitted);
        s.emitted = end;
        if (s.tokens >= max_tokens) {
          d.finish_reason = FinishReason::kLength;
          d.text += s.text.substr(s.emitted);
          s.emitted = s.text.size();
        }
      }
    }
    if (d.finish_reason) s.finished = true;
    out.outputs.push_back(std::move(d));
  }
}

void FakeGenerator::loop() {
  std::unique_lock lk(mu_);
  while (true) {
    // One step per `step` while something is live; aborts are handled at once.
    auto any_aborted = [&] {
      return std::any_of(live_.begin(), live_.end(), [](auto& kv) { return kv.second.aborted; });
    };
    if (live_.empty())
      cv_.wait(lk, [&] { return stop_ || !live_.empty(); });
    else
      cv_.wait_for(lk, config_.step, [&] { return stop_ || any_aborted(); });
    std::vector<std::pair<OutputCallback*, RequestOutput>> outs;
    int64_t step_tokens = 0;
    std::vector<std::string> done;
    if (stop_) {
      for (auto& [id, l] : live_) l.aborted = true;
    } else {
      int32_t running = 0;
      for (auto& [id, l] : live_) running += l.running;
      for (const auto& id : order_) {
        auto& l = live_.at(id);
        if (!l.running && running < config_.max_running && !paused_) {
          l.running = true;
          l.times.first_scheduled = std::chrono::steady_clock::now();
          running++;
        }
      }
    }
    for (const auto& id : order_) {
      auto& l = live_.at(id);
      if (!(l.running && !paused_) && !l.aborted) continue;
      RequestOutput out;
      out.request_id = id;
      out.num_prompt_tokens = int32_t(l.req.prompt_token_ids.size());
      out.num_cached_tokens = l.cached;
      step_one(l, out);
      int64_t tokens = 0;
      for (const SequenceDelta& d : out.outputs) tokens += int64_t(d.token_ids.size());
      step_tokens += tokens;
      if (tokens > 0) {
        const auto now = std::chrono::steady_clock::now();
        if (l.times.first_token == std::chrono::steady_clock::time_point{})
          l.times.first_token = now;
        l.times.last_token = now;
      }
      out.finished = std::all_of(l.seqs.begin(), l.seqs.end(), [](auto& s) { return s.finished; });
      if (out.finished) {
        out.times = l.times;
        done.push_back(id);
        if (l.aborted)
          aborted_++;
        else
          finished_++;
      }
      outs.emplace_back(&l.cb, std::move(out));
    }
    if (step_tokens > 0) {  // one step's forward: the prompts are not counted, the tokens are
      size_t b = 0;
      while (b + 1 < steps_by_tokens_log2_.size() && (int64_t(1) << b) < step_tokens) ++b;
      ++steps_by_tokens_log2_[b];
      tokens_computed_ += step_tokens;
    }
    // Finished requests leave before their last output goes out (as the engine frees a
    // request's blocks before its finished output); callbacks run without the lock.
    std::vector<OutputCallback> keep;
    for (const auto& id : done) {
      keep.push_back(std::move(live_.at(id).cb));
      live_.erase(id);
      order_.erase(std::find(order_.begin(), order_.end(), id));
    }
    lk.unlock();
    size_t di = 0;
    for (auto& [cb, out] : outs) {
      if (out.finished)
        keep[di++](std::move(out));
      else
        (*cb)(std::move(out));
    }
    lk.lock();
    if (stop_ && live_.empty()) return;
  }
}

}  // namespace inferd::server::testing
