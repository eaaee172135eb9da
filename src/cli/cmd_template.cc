// `inferd template MODEL --messages msgs.json [--tools tools.json] [--no-generation-prompt]
// [--chat-template FILE] [--kwargs JSON]`: prints exactly the prompt the model's chat template
// renders (what transformers' apply_chat_template(tokenize=False) returns), nothing else.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap_file.h"
#include "hub/hub.h"
#include "jinja/chat_template.h"
#include "llm/gguf_tokenizer.h"
#include "model/loader/model_source.h"

namespace inferd::cli {

namespace {

struct TemplateArgs {
  std::string model;
  std::string messages_file;
  std::string tools_file;
  std::string chat_template_file;
  std::string kwargs_json;
  bool no_generation_prompt = false;
};

nlohmann::ordered_json read_json_file(const std::string& path, const char* what) {
  std::string text = path == "-" ? std::string() : read_text_file(path);
  if (path == "-") {
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) text.append(buf, n);
  }
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail("{} file '{}' is not valid JSON: {}", what, path, e.what());
  }
}

}  // namespace

void register_template_command(CLI::App& app) {
  auto args = std::make_shared<TemplateArgs>();
  CLI::App* cmd = app.add_subcommand("template",
                                     "Print the prompt the model's chat template renders for a "
                                     "conversation (exactly, no newline added)");
  cmd->add_option("model", args->model,
                  "Model directory (tokenizer_config.json and/or chat_template.jinja)")
      ->required();
  cmd->add_option(
         "--messages", args->messages_file,
         "JSON file with the messages: a list of {role, content, ...} objects, or an object with "
         "\"messages\" (and optionally \"tools\"); '-' reads stdin")
      ->required();
  cmd->add_option("--tools", args->tools_file, "JSON file with the tool definitions (a list)");
  cmd->add_flag("--no-generation-prompt", args->no_generation_prompt,
                "Do not add the assistant generation prompt (add_generation_prompt=False)");
  cmd->add_option(
      "--chat-template", args->chat_template_file,
      "Chat template to use instead of the model's: a Jinja file, the name of one of the model's "
      "named templates, or the template text itself");
  cmd->add_option("--chat-template-kwargs", args->kwargs_json,
                  "Extra template variables as a JSON object, e.g. '{\"enable_thinking\": false}'");
  cmd->callback([args] {
    nlohmann::ordered_json messages = read_json_file(args->messages_file, "--messages");
    nlohmann::ordered_json tools = nullptr;
    if (messages.is_object()) {  // {"messages": [...], "tools": [...]} as in an OpenAI request
      if (!messages.contains("messages"))
        fail("--messages file '{}' must hold a list of messages or an object with \"messages\"",
             args->messages_file);
      if (messages.contains("tools")) tools = messages["tools"];
      nlohmann::ordered_json m = messages["messages"];
      messages = std::move(m);
    }
    if (!messages.is_array())
      fail("--messages file '{}' must hold a list of messages or an object with \"messages\"",
           args->messages_file);
    if (!args->tools_file.empty()) tools = read_json_file(args->tools_file, "--tools");
    nlohmann::ordered_json kwargs = nullptr;
    if (!args->kwargs_json.empty()) {
      try {
        kwargs = nlohmann::ordered_json::parse(args->kwargs_json);
      } catch (const nlohmann::json::parse_error& e) {
        fail("--chat-template-kwargs is not valid JSON: {}", e.what());
      }
      if (!kwargs.is_object()) fail("--chat-template-kwargs must be a JSON object");
    }
    const ModelVocabSource vocab =
        ModelVocabSource::open(resolve_model_source(hub::resolve_if_hub_name(args->model)));
    const std::string src = vocab.path + " (GGUF metadata)";
    const ChatTemplate tmpl =
        vocab.gguf ? (args->chat_template_file.empty()
                          ? ChatTemplate::from_tokenizer_config(vocab.tokenizer_config(), src)
                          : ChatTemplate::resolve_with_config(args->chat_template_file,
                                                              vocab.tokenizer_config(), src))
        : args->chat_template_file.empty()
            ? ChatTemplate::from_model_dir(vocab.path)
            : ChatTemplate::resolve(args->chat_template_file, vocab.path);
    const std::string prompt = tmpl.apply(messages, tools, !args->no_generation_prompt, kwargs);
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  });
}

}  // namespace inferd::cli
