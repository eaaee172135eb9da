// The real Generator: an Engine, the model's Tokenizer and its chat template.
#pragma once

#include <memory>
#include <optional>

#include "inferd/engine.h"
#include "jinja/chat_template.h"
#include "media/image_processor.h"
#include "media/image_prompt.h"
#include "runner/executor.h"
#include "server/generator.h"
#include "tokenizer/tokenizer.h"

namespace inferd::server {

// The chat prompt of `args` (Generator::apply_chat_template's contract): the template rendered,
// and for continue_final_message cut after the final message's content. No template: ApiError
// 400 naming --chat-template. Shared by EngineGenerator and the request fuzz target.
std::string render_chat_prompt(const ChatTemplate* chat_template, const ChatTemplateArgs& args);

class EngineGenerator final : public Generator {
 public:
  // `chat_template` may be empty: chat requests then answer 400 naming --chat-template.
  EngineGenerator(std::shared_ptr<Engine> engine, std::shared_ptr<const Tokenizer> tokenizer,
                  std::optional<ChatTemplate> chat_template);

  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  std::string token_text(int32_t id) const override;
  std::string apply_chat_template(const ChatTemplateArgs& args) const override;
  int32_t vocab_size() const override;
  int32_t max_model_len() const override;
  int32_t max_logprobs() const override;
  ModelTask task() const override;
  EngineConfig::Pooling pooling() const override;

  std::string submit(GenerateRequest request, OutputCallback on_output) override;
  bool abort(const std::string& request_id) override;
  EngineStats stats() const override;
  void shutdown() override;
  std::string device_fault() const override { return engine_->device_fault(); }
  void sleep(int level, double drain_timeout_s) override { engine_->sleep(level, drain_timeout_s); }
  void wake_up() override { engine_->wake_up(); }
  int sleep_level() const override { return engine_->sleep_level(); }

  Engine& engine() { return *engine_; }

  // Images (issue 34): image parts are preprocessed by `processor` and placed in the prompt as
  // `format` says (the engine's executor must take images).
  void enable_images(std::unique_ptr<media::ImageProcessor> processor,
                     const media::ImagePromptFormat& format);
  const media::ImageProcessor* image_processor() const override { return image_proc_.get(); }
  const media::ImagePromptFormat* image_prompt_format() const override {
    return image_proc_ ? &image_format_ : nullptr;
  }

 private:
  std::shared_ptr<Engine> engine_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::optional<ChatTemplate> template_;
  std::unique_ptr<media::ImageProcessor> image_proc_;
  media::ImagePromptFormat image_format_;
};

// Turns images on for `gen` when `exec` takes them (a vision-language model on a backend that runs
// it): the image processor from <model_dir>/preprocessor_config.json and the placeholder format of
// `architecture`. Otherwise logs why images stay off (a model with a vision tower only).
void enable_model_images(EngineGenerator& gen, const ModelExecutor& exec,
                         const std::string& model_dir, const std::string& architecture);

}  // namespace inferd::server
