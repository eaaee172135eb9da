// `inferd chat MODEL`: answers from an engine in this process (the same path `serve` uses): the
// chat template renders the conversation, the tokenizer encodes it, the engine streams text.
#include "cli/chat_local.h"

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "cli/weights_progress.h"
#include "core/error.h"
#include "core/logging.h"
#include "server/api_error.h"
#include "server/protocol.h"

namespace inferd::cli {

using Clock = std::chrono::steady_clock;

LocalChat::LocalChat(const ModelFlags& flags, const std::string& chat_template)
    : model_dir_(flags.model()) {
  EngineArgs args = flags.args;
  // One conversation: buffers (and CUDA graphs) for one sequence, as `run` sizes them.
  args.scheduler.max_num_seqs = 1;
  LLMOptions options;
  options.load_chat_template = true;
  options.chat_template = chat_template;
  options.on_chat_template_error = [&](const Error& e) {
    fail("{}: {} (give one with --chat-template)", model_dir_, e.what());
  };
  options.before_weights = [](const EngineArgs& a) {
    return read_weights_with_progress(a.model.model, a.model.load_format);
  };
  llm_ = LLM::load(args, options);
  tokenizer_ = llm_->tokenizer();
  template_ = llm_->chat_template();
  engine_ = llm_->engine();
  if (template_) {
    gen_ = std::make_shared<server::EngineGenerator>(engine_, tokenizer_, *template_);
    server::enable_model_images(*gen_, *llm_->executor(), llm_->summary().model_dir,
                                llm_->summary().architecture);
  }
}

LocalChat::~LocalChat() = default;

std::string LocalChat::describe() const {
  const ModelSummary& m = llm_->summary();
  return fmt::format("{} ({} on {}, context {} tokens)", model_dir_, m.architecture, m.backend,
                     m.max_model_len);
}

namespace {

SamplingParams to_sampling(const ChatParams& p) {
  SamplingParams s;
  const ojson& f = p.fields;
  if (f.contains("temperature")) s.temperature = f["temperature"].get<float>();
  if (f.contains("top_p")) s.top_p = f["top_p"].get<float>();
  if (f.contains("top_k")) s.top_k = f["top_k"].get<int32_t>();
  if (f.contains("min_p")) s.min_p = f["min_p"].get<float>();
  if (f.contains("max_tokens")) s.max_tokens = f["max_tokens"].get<int32_t>();
  if (f.contains("seed")) s.seed = f["seed"].get<uint64_t>();
  if (f.contains("presence_penalty")) s.presence_penalty = f["presence_penalty"].get<float>();
  if (f.contains("frequency_penalty")) s.frequency_penalty = f["frequency_penalty"].get<float>();
  if (f.contains("repetition_penalty")) s.repetition_penalty = f["repetition_penalty"].get<float>();
  if (f.contains("ignore_eos")) s.ignore_eos = f["ignore_eos"].get<bool>();
  return s;
}

// Outputs of one request, handed from the engine thread to the terminal's.
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<RequestOutput> queue;
};

}  // namespace

ChatAnswer LocalChat::answer(const ojson& messages, const ChatParams& params,
                             const std::function<void(std::string_view)>& on_text,
                             const std::atomic<bool>& stop) {
  std::string prompt;
  try {
    prompt = template_->apply(messages, nullptr, /*add_generation_prompt=*/true);
  } catch (const std::exception& e) {
    fail("the chat template failed on this conversation: {}", e.what());
  }
  GenerateRequest req;
  req.request_id = fmt::format("chat-{}", ++turn_);
  // The template writes the special tokens (BOS) itself, as the server's chat route assumes.
  req.prompt_token_ids = tokenizer_->encode(prompt, /*add_special_tokens=*/false);
  if (takes_images()) {  // the chat route's reading: image parts decoded and placed
    server::ValidationContext ctx;
    ctx.generator = gen_.get();
    ctx.model_names = {model_dir_};
    try {
      server::CompletionRequest r = server::parse_completion_request(
          nlohmann::json{{"messages", nlohmann::json::parse(messages.dump())}}, true, ctx);
      req.prompt_token_ids = r.prompts.at(0);
      req.images = std::move(r.image_inputs);
    } catch (const server::ApiError& e) {
      fail("{}", e.what());
    }
  }
  req.params = to_sampling(params);
  const std::string id = req.request_id;
  const int64_t max_len = engine_->config().max_model_len;
  if (int64_t(req.prompt_token_ids.size()) >= max_len)
    fail("the conversation is {} tokens, the model's context is {}: /clear starts afresh",
         req.prompt_token_ids.size(), max_len);

  auto box = std::make_shared<Mailbox>();
  const auto t0 = Clock::now();
  try {
    engine_->submit(std::move(req), [box](RequestOutput&& out) {
      {
        std::lock_guard lk(box->mu);
        box->queue.push_back(std::move(out));
      }
      box->cv.notify_one();
    });
  } catch (const InvalidRequestError& e) {
    fail("{}", e.what());
  }
  ChatAnswer a;
  a.prompt_tokens = 0;
  bool finished = false, abort_sent = false;
  Clock::time_point t_first{};
  std::string error;
  while (!finished) {
    std::deque<RequestOutput> got;
    {
      std::unique_lock lk(box->mu);
      box->cv.wait_for(lk, std::chrono::milliseconds(50), [&] { return !box->queue.empty(); });
      got.swap(box->queue);
    }
    if (stop.load() && !abort_sent) {
      engine_->abort(id);
      abort_sent = true;
      a.stopped = true;
    }
    for (RequestOutput& out : got) {
      if (out.num_prompt_tokens > 0) a.prompt_tokens = out.num_prompt_tokens;
      if (!out.error.empty()) error = out.error;
      for (const SequenceDelta& d : out.outputs) {
        if (!d.token_ids.empty()) {
          if (a.completion_tokens == 0) t_first = Clock::now();
          a.completion_tokens += int64_t(d.token_ids.size());
        }
        if (!d.text.empty()) {
          a.text += d.text;
          if (!abort_sent) on_text(d.text);
        }
        if (d.finish_reason) a.finish_reason = to_string(*d.finish_reason);
      }
      finished |= out.finished;
    }
  }
  const auto t1 = Clock::now();
  if (!error.empty()) fail("generation failed: {}", error);
  a.total_s = std::chrono::duration<double>(t1 - t0).count();
  a.first_token_s =
      a.completion_tokens > 0 ? std::chrono::duration<double>(t_first - t0).count() : a.total_s;
  return a;
}

}  // namespace inferd::cli
