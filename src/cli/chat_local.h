// `inferd chat MODEL`: a ChatBackend over an engine in this process.
#pragma once

#include <memory>
#include <string>

#include "cli/chat.h"
#include "cli/commands.h"
#include "inferd/engine.h"
#include "inferd/llm.h"
#include "jinja/chat_template.h"
#include "server/engine_generator.h"
#include "tokenizer/tokenizer.h"

namespace inferd::cli {

class LocalChat final : public ChatBackend {
 public:
  // Loads the model, its tokenizer and its chat template (or `chat_template`, resolved as
  // `serve --chat-template` does). Throws Error when one is missing or bad.
  LocalChat(const ModelFlags& flags, const std::string& chat_template);
  ~LocalChat() override;

  std::string describe() const override;
  // A vision-language model on the CPU (issue 34): image_url parts are read as the server's chat
  // route reads them (decoded, preprocessed, placed in the prompt).
  bool takes_images() const override { return gen_ && gen_->image_processor() != nullptr; }
  ChatAnswer answer(const ojson& messages, const ChatParams& params,
                    const std::function<void(std::string_view)>& on_text,
                    const std::atomic<bool>& stop) override;

 private:
  std::string model_dir_;
  std::unique_ptr<LLM> llm_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::shared_ptr<const ChatTemplate> template_;
  std::shared_ptr<Engine> engine_;
  std::shared_ptr<server::EngineGenerator> gen_;  // the server's prompt path, for images
  uint64_t turn_ = 0;
};

}  // namespace inferd::cli
