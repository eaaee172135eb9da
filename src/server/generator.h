// What the HTTP server needs from the model side: tokenization, the chat template, and an engine
// that takes requests and streams outputs. `EngineGenerator` is the real one (engine + tokenizer
// + chat template); tests use a fake with the same contract.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "inferd/engine.h"

namespace inferd::media {
class ImageProcessor;
struct ImagePromptFormat;
}  // namespace inferd::media

namespace inferd::server {

struct ChatTemplateArgs {
  nlohmann::ordered_json messages;  // array of message objects, as the client sent them
  nlohmann::ordered_json tools;     // null or array
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();  // chat_template_kwargs
  // Non-empty: this Jinja text instead of the server's template (a request's chat_template,
  // allowed by --trust-request-chat-template).
  std::string template_text;
};

class Generator {
 public:
  virtual ~Generator() = default;

  // ---- tokenizer side (thread-safe, called on io threads) ----
  virtual std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const = 0;
  // The text of one token as logprobs show it.
  virtual std::string token_text(int32_t id) const = 0;
  // Renders the chat template. Throws Error (for example the template's raise_exception) when the
  // messages do not fit the template.
  virtual std::string apply_chat_template(const ChatTemplateArgs& args) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t max_model_len() const = 0;
  virtual int32_t max_logprobs() const { return 20; }
  // What the model serves (--task) and, for embeddings, how it pools (EngineConfig's).
  virtual ModelTask task() const { return ModelTask::kGenerate; }
  // The model's image processor when it takes images (issue 34), else null: requests with image
  // parts are then a 400. A generator that returns one consumes CompletionRequest::images.
  virtual const media::ImageProcessor* image_processor() const { return nullptr; }
  // With an image processor: how the rendered prompt's image placeholders become the image's
  // tokens (media::expand_image_placeholders), whose embeddings the engine replaces.
  virtual const media::ImagePromptFormat* image_prompt_format() const { return nullptr; }
  virtual EngineConfig::Pooling pooling() const { return {}; }

  // ---- engine side (thread-safe) ----
  // Same contract as Engine::submit: throws InvalidRequestError, QueueFullError,
  // EngineStoppedError; otherwise `on_output` runs (on some other thread) until the finished one.
  virtual std::string submit(GenerateRequest request, OutputCallback on_output) = 0;
  virtual bool abort(const std::string& request_id) = 0;
  virtual EngineStats stats() const = 0;
  virtual void shutdown() = 0;
  // Empty while the engine's device works; else the device fault that stopped the engine
  // (Engine::device_fault): /health and /ready answer 503 and the process is about to exit.
  virtual std::string device_fault() const { return {}; }
  // Sleep mode (Engine::sleep / wake_up / sleep_level's contracts). The defaults: no sleep mode.
  virtual void sleep(int level, double drain_timeout_s) {
    (void)drain_timeout_s;
    fail("sleep level {}: this server's model has no sleep mode", level);
  }
  virtual void wake_up() {}
  virtual int sleep_level() const { return 0; }
};

}  // namespace inferd::server
