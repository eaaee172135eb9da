// `inferd chat MODEL` / `inferd chat --url http://HOST:PORT [MODEL]`: a chat in the terminal,
// answered by an engine in this process or by a running server.
#include <cstdlib>
#include <memory>
#include <string>

#include "cli/chat.h"
#include "cli/chat_local.h"
#include "cli/chat_remote.h"
#include "cli/commands.h"
#include "core/error.h"
#include "media/image_source.h"

namespace inferd::cli {

namespace {

struct ChatArgs {
  ModelFlags model;
  std::string url;
  std::string api_key;
  std::string chat_template;
  std::string system;
  std::vector<std::string> params;
  std::vector<std::string> images;
};

}  // namespace

void register_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand(
      "chat", "Chat in the terminal with a model (loaded here) or with a running server (--url)");
  a->model.add_to(cmd, /*batching=*/false, /*model_optional=*/true);
  // With --url the positional argument names the served model instead.
  CLI::Option* model_opt = cmd->get_option("model_tag");
  model_opt->description(model_opt->get_description() +
                         "; with --url: the served model name (default: the server's first)");
  cmd->add_option("--url", a->url,
                  "Chat with a running server (http://HOST:PORT) instead of loading a model");
  cmd->add_option("--api-key", a->api_key, "API key of the server (--url)")
      ->envname("INFERD_API_KEY");
  cmd->add_option("--chat-template", a->chat_template,
                  "Chat template instead of the model's (a file, a template name or Jinja text)");
  cmd->add_option("--system", a->system, "System prompt to start with");
  cmd->add_option("--param", a->params,
                  "Sampling setting to start with, as /params takes it (temperature=0.7); "
                  "repeatable");
  cmd->add_option("--image", a->images,
                  "Image file (JPEG, PNG, WebP) sent with the first message; repeatable (with "
                  "--url: the server's model must take images)");
  cmd->callback([a] {
    ChatParams params;
    for (const auto& p : a->params) params.set(p);
    ojson messages = ojson::array();
    if (!a->system.empty()) messages.push_back({{"role", "system"}, {"content", a->system}});
    std::unique_ptr<ChatBackend> backend;
    if (!a->url.empty()) {
      if (!a->chat_template.empty())
        fail(
            "--chat-template applies to a model loaded here, not to --url (the server applies "
            "its own)");
      backend = std::make_unique<RemoteChat>(a->url, a->api_key,
                                             a->model.model_given() ? a->model.model() : "");
    } else {
      backend = std::make_unique<LocalChat>(a->model, a->chat_template);
      if (!a->images.empty() && !backend->takes_images())
        fail("--image: {} takes no images here (a vision-language model on the CPU does)",
             backend->describe());
    }
    std::vector<std::string> images;
    for (const std::string& path : a->images) images.push_back(media::file_data_url(path));
    const int rc =
        run_chat_repl(*backend, std::move(messages), std::move(params), std::move(images));
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace inferd::cli
