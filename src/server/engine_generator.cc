#include "server/engine_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/logging.h"
#include "server/api_error.h"

namespace inferd::server {

EngineGenerator::EngineGenerator(std::shared_ptr<Engine> engine,
                                 std::shared_ptr<const Tokenizer> tokenizer,
                                 std::optional<ChatTemplate> chat_template)
    : engine_(std::move(engine)),
      tokenizer_(std::move(tokenizer)),
      template_(std::move(chat_template)) {
  INFERD_CHECK(engine_ && tokenizer_, "EngineGenerator needs an engine and a tokenizer");
}

std::vector<int32_t> EngineGenerator::encode(const std::string& text,
                                             bool add_special_tokens) const {
  return tokenizer_->encode(text, add_special_tokens);
}

std::string EngineGenerator::decode(std::span<const int32_t> ids, bool skip_special) const {
  return tokenizer_->decode(ids, skip_special);
}

std::string EngineGenerator::token_text(int32_t id) const {
  const int32_t one[1] = {id};
  return tokenizer_->decode(one, false);
}

std::string render_chat_prompt(const ChatTemplate* chat_template, const ChatTemplateArgs& args) {
  if (!chat_template)
    throw ApiError(400,
                   "This model has no chat template; start the server with --chat-template "
                   "FILE, or use /v1/completions.",
                   "invalid_request_error", "messages", "no_chat_template");
  if (!args.continue_final_message)
    return chat_template->apply(args.messages, args.tools, args.add_generation_prompt, args.kwargs);
  // Continue the final (assistant) message: render without a generation prompt and cut what the
  // template puts after that message's content (as transformers does).
  const auto& last = args.messages.back();
  if (!last["content"].is_string())
    throw bad_param("messages", "continue_final_message needs a final message with text content");
  const std::string content = last["content"].get<std::string>();
  std::string text = chat_template->apply(args.messages, args.tools, false, args.kwargs);
  const size_t pos = content.empty() ? std::string::npos : text.rfind(content);
  if (pos == std::string::npos)
    throw bad_param("messages",
                    "continue_final_message: the chat template does not render the final "
                    "message's content verbatim");
  text.resize(pos + content.size());
  return text;
}

std::string EngineGenerator::apply_chat_template(const ChatTemplateArgs& args) const {
  if (!args.template_text.empty()) {
    // A request's own template, with the model's special tokens (bos_token, ...).
    std::optional<ChatTemplate> own;
    try {
      own.emplace(args.template_text,
                  template_ ? template_->special_tokens() : std::map<std::string, std::string>{});
    } catch (const std::exception& e) {
      throw bad_param(
          "chat_template",
          fmt::format("Invalid 'chat_template': the template does not parse: {}", e.what()));
    }
    return render_chat_prompt(&*own, args);
  }
  return render_chat_prompt(template_ ? &*template_ : nullptr, args);
}

int32_t EngineGenerator::vocab_size() const {
  return engine_->vocab_size();
}
int32_t EngineGenerator::max_model_len() const {
  return engine_->config().max_model_len;
}
int32_t EngineGenerator::max_logprobs() const {
  return engine_->config().max_logprobs;
}
ModelTask EngineGenerator::task() const {
  return engine_->config().task;
}
EngineConfig::Pooling EngineGenerator::pooling() const {
  return engine_->config().pooling;
}

std::string EngineGenerator::submit(GenerateRequest request, OutputCallback on_output) {
  return engine_->submit(std::move(request), std::move(on_output));
}

bool EngineGenerator::abort(const std::string& id) {
  return engine_->abort(id);
}
EngineStats EngineGenerator::stats() const {
  return engine_->stats();
}
void EngineGenerator::shutdown() {
  engine_->shutdown();
}

void EngineGenerator::enable_images(std::unique_ptr<media::ImageProcessor> processor,
                                    const media::ImagePromptFormat& format) {
  image_proc_ = std::move(processor);
  image_format_ = format;
}

void enable_model_images(EngineGenerator& gen, const ModelExecutor& exec,
                         const std::string& model_dir, const std::string& architecture) {
  std::string why;
  if (!exec.takes_images(&why)) {
    if (why.find("no vision tower") == std::string::npos)
      LOG_WARN("{}: requests with images are refused: {}", architecture, why);
    return;
  }
  const bool gemma = architecture == "Gemma3ForConditionalGeneration";
  if (!gemma && architecture != "Qwen2_5_VLForConditionalGeneration") {
    LOG_WARN(
        "{}: requests with images are refused: the server places images in prompts for "
        "Gemma 3 and Qwen2.5-VL only (issue 34)",
        architecture);
    return;
  }
  std::unique_ptr<media::ImageProcessor> proc = media::load_image_processor(model_dir);
  // A probe image: Gemma 3's every image takes mm_tokens_per_image tokens (one square crop);
  // Qwen2.5-VL's take grid / merge^2, which gives the merge size.
  media::Image probe;
  probe.width = probe.height = 1;
  probe.rgb.assign(3, 0);
  const media::PixelValues pv = proc->preprocess(probe);
  const int32_t tokens = exec.image_tokens(pv);
  const auto& g = pv.grid_thw;
  const int32_t merge =
      int32_t(std::lround(std::sqrt(double(g[0]) * g[1] * g[2] / std::max(1, tokens))));
  LOG_INFO("images: {} ({})", proc->name(),
           gemma ? fmt::format("{} tokens an image", tokens)
                 : fmt::format("{}x{} patches a token", merge, merge));
  gen.enable_images(std::move(proc), gemma ? media::ImagePromptFormat::gemma3(tokens)
                                           : media::ImagePromptFormat::qwen2_vl(merge));
}

}  // namespace inferd::server
