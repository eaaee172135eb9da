// Chat templates as Hugging Face transformers applies them (`apply_chat_template(...,
// tokenize=False)`): the Jinja template of a model rendered with `messages`, `tools`,
// `documents`, `add_generation_prompt`, the special tokens (`bos_token`, `eos_token`, ...) and
// extra keyword variables.
#pragma once

#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "jinja/template.h"

namespace inferd {

class ChatTemplate {
 public:
  // Loads the template of a model directory: `chat_template.jinja` when present, else
  // `chat_template.json`, else the `chat_template` of `tokenizer_config.json` (a string, or a list
  // of {name, template}). Special tokens come from `tokenizer_config.json`. Throws Error when the
  // directory has no chat template, and jinja::TemplateError when it does not parse.
  static ChatTemplate from_model_dir(const std::string& dir);
  // How `--chat-template VALUE` resolves, as Hugging Face's `chat_template` argument: a file
  // path, else the name of one of the model's named templates, else (when it contains "{{" or
  // "{%") the template text itself. Special tokens come from model_dir.
  static ChatTemplate resolve(const std::string& value, const std::string& model_dir);
  // The template of a tokenizer_config.json object (its `chat_template`, a string or a list of
  // {name, template}; its special tokens): what a model that is not a directory gives (a GGUF
  // file's metadata read as that object). `source` names it in errors.
  static ChatTemplate from_tokenizer_config(const nlohmann::ordered_json& config,
                                            const std::string& source);
  // resolve() against such an object instead of a directory.
  static ChatTemplate resolve_with_config(const std::string& value,
                                          const nlohmann::ordered_json& config,
                                          const std::string& source);
  // Loads the template from `template_file`; special tokens from `model_dir`'s
  // tokenizer_config.json when model_dir is not empty and has one.
  static ChatTemplate from_file(const std::string& template_file,
                                const std::string& model_dir = "");
  // A template from source text; special_tokens maps names ("bos_token") to strings.
  ChatTemplate(const std::string& source, std::map<std::string, std::string> special_tokens);

  // Renders the prompt. `tools` may be null (the template then sees tools=None); extra_kwargs
  // is an object (or null) of further variables, e.g. {"enable_thinking": false}. Throws
  // jinja::TemplateError on template errors (raise_exception: its message verbatim) and Error
  // on bad arguments.
  std::string apply(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                    bool add_generation_prompt,
                    const nlohmann::ordered_json& extra_kwargs = nullptr) const;

  // Fixes the time strftime_now() sees (for reproducible prompts and tests).
  void set_now(std::function<std::tm()> now) { options_.now = std::move(now); }

  // Names of the templates ("default" for a single one).
  std::vector<std::string> names() const;
  // This template set restricted to the template called `name`; throws Error if there is none.
  ChatTemplate named(const std::string& name) const;
  const std::map<std::string, std::string>& special_tokens() const { return special_tokens_; }

 private:
  ChatTemplate() = default;
  static ChatTemplate from_file_text(const std::string& source, const std::string& model_dir);
  void add(const std::string& name, const std::string& source);

  std::map<std::string, std::shared_ptr<jinja::Template>> templates_;
  std::map<std::string, std::string> special_tokens_;
  jinja::RenderOptions options_;
};

}  // namespace inferd
