// ChatTemplate (chat_template.h): a model's chat templates read from chat_template.jinja,
// chat_template.json or tokenizer_config.json with its special tokens, and rendered with
// messages, tools and the generation prompt as transformers' apply_chat_template does.
#include "jinja/chat_template.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/mmap_file.h"

namespace inferd {

namespace fs = std::filesystem;

namespace {

// Special tokens as transformers' special_tokens_map exposes them to templates.
constexpr const char* kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};

nlohmann::ordered_json read_json(const std::string& path) {
  std::string text = read_text_file(path);
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
}

std::map<std::string, std::string> special_tokens_of(const nlohmann::ordered_json& config,
                                                     const std::string& path) {
  std::map<std::string, std::string> out;
  if (!config.is_object()) return out;
  for (const char* name : kSpecialTokenNames) {
    auto it = config.find(name);
    if (it == config.end() || it->is_null()) continue;
    if (it->is_string()) {
      out[name] = it->get<std::string>();
    } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
      out[name] = (*it)["content"].get<std::string>();
    } else {
      fail("{}: '{}' must be a string or an object with a string 'content'", path, name);
    }
  }
  return out;
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source,
                           std::map<std::string, std::string> special_tokens)
    : special_tokens_(std::move(special_tokens)) {
  add("default", source);
}

void ChatTemplate::add(const std::string& name, const std::string& source) {
  templates_[name] = std::make_shared<jinja::Template>(source);
}

std::vector<std::string> ChatTemplate::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : templates_) out.push_back(k);
  return out;
}

ChatTemplate ChatTemplate::from_model_dir(const std::string& dir) {
  if (!fs::is_directory(dir))
    fail("model directory '{}' does not exist or is not a directory", dir);
  fs::path d(dir);
  nlohmann::ordered_json config;
  fs::path config_path = d / "tokenizer_config.json";
  if (fs::exists(config_path)) config = read_json(config_path.string());

  ChatTemplate t;
  t.special_tokens_ = special_tokens_of(config, config_path.string());
  if (fs::exists(d / "chat_template.jinja")) {
    t.add("default", read_text_file((d / "chat_template.jinja").string()));
    return t;
  }
  if (fs::exists(d / "chat_template.json")) {
    auto j = read_json((d / "chat_template.json").string());
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) {
      t.add("default", j["chat_template"].get<std::string>());
      return t;
    }
  }
  auto it = config.is_object() ? config.find("chat_template") : config.end();
  if (!config.is_object() || it == config.end() || it->is_null())
    fail(
        "model directory '{}' has no chat template (no chat_template.jinja, and "
        "tokenizer_config.json has no "
        "'chat_template'); pass one with --chat-template FILE",
        dir);
  ChatTemplate c = from_tokenizer_config(config, config_path.string());
  c.special_tokens_ = std::move(t.special_tokens_);
  return c;
}

ChatTemplate ChatTemplate::from_tokenizer_config(const nlohmann::ordered_json& config,
                                                 const std::string& source) {
  ChatTemplate t;
  t.special_tokens_ = special_tokens_of(config, source);
  auto it = config.is_object() ? config.find("chat_template") : config.end();
  if (!config.is_object() || it == config.end() || it->is_null())
    fail("{} has no chat template; pass one with --chat-template FILE", source);
  if (it->is_string()) {
    t.add("default", it->get<std::string>());
  } else if (it->is_array()) {
    for (const auto& e : *it) {
      if (!e.is_object() || !e.contains("name") || !e.contains("template") ||
          !e["name"].is_string() || !e["template"].is_string())
        fail(
            "{}: each entry of 'chat_template' must be an object with string 'name' and 'template'",
            source);
      t.add(e["name"].get<std::string>(), e["template"].get<std::string>());
    }
    if (t.templates_.empty()) fail("{}: 'chat_template' is an empty list", source);
  } else {
    fail("{}: 'chat_template' must be a string or a list of {{name, template}}", source);
  }
  return t;
}

ChatTemplate ChatTemplate::resolve_with_config(const std::string& value,
                                               const nlohmann::ordered_json& config,
                                               const std::string& source) {
  ChatTemplate t;
  if (fs::is_regular_file(value)) {
    t.add("default", read_text_file(value));
  } else if (value.find("{{") != std::string::npos || value.find("{%") != std::string::npos) {
    t.add("default", value);
  } else {
    std::optional<ChatTemplate> model;
    try {
      model = from_tokenizer_config(config, source);
    } catch (const Error&) {
    }
    const auto names = model ? model->names() : std::vector<std::string>{};
    if (std::find(names.begin(), names.end(), value) == names.end())
      fail("chat template '{}' is neither a file nor the name of one of the model's templates",
           value);
    return model->named(value);
  }
  t.special_tokens_ = special_tokens_of(config, source);
  return t;
}

ChatTemplate ChatTemplate::from_file(const std::string& template_file,
                                     const std::string& model_dir) {
  return from_file_text(read_text_file(template_file), model_dir);
}

ChatTemplate ChatTemplate::from_file_text(const std::string& source, const std::string& model_dir) {
  ChatTemplate t;
  if (!model_dir.empty()) {
    if (!fs::is_directory(model_dir))
      fail("model directory '{}' does not exist or is not a directory", model_dir);
    fs::path config_path = fs::path(model_dir) / "tokenizer_config.json";
    if (fs::exists(config_path))
      t.special_tokens_ = special_tokens_of(read_json(config_path.string()), config_path.string());
  }
  t.add("default", source);
  return t;
}

ChatTemplate ChatTemplate::named(const std::string& name) const {
  auto it = templates_.find(name);
  if (it == templates_.end()) {
    std::string have;
    for (const auto& [k, v] : templates_) have += (have.empty() ? "'" : ", '") + k + "'";
    fail("the model has no chat template named '{}' (it has {})", name, have);
  }
  ChatTemplate t;
  t.templates_[name] = it->second;
  t.special_tokens_ = special_tokens_;
  t.options_ = options_;
  return t;
}

ChatTemplate ChatTemplate::resolve(const std::string& value, const std::string& model_dir) {
  if (fs::is_regular_file(value)) return from_file(value, model_dir);
  if (value.find("{{") != std::string::npos || value.find("{%") != std::string::npos)
    return from_file_text(value, model_dir);
  std::optional<ChatTemplate> model;
  try {
    model = from_model_dir(model_dir);
  } catch (const Error&) {
    fail("chat template '{}' is neither a file nor the name of one of the model's templates",
         value);
  }
  const auto names = model->names();
  if (std::find(names.begin(), names.end(), value) == names.end())
    fail("chat template '{}' is neither a file nor the name of one of the model's templates",
         value);
  return model->named(value);
}

std::string ChatTemplate::apply(const nlohmann::ordered_json& messages,
                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                const nlohmann::ordered_json& extra_kwargs) const {
  if (!messages.is_array()) fail("chat messages must be a JSON array of message objects");
  if (!tools.is_null() && !tools.is_array()) fail("chat tools must be a JSON array (or null)");
  if (!extra_kwargs.is_null() && !extra_kwargs.is_object())
    fail("chat template kwargs must be a JSON object");

  // Which template: as transformers' get_chat_template.
  const jinja::Template* tmpl = nullptr;
  if (templates_.size() == 1) {
    tmpl = templates_.begin()->second.get();
  } else if (!tools.is_null() && templates_.count("tool_use")) {
    tmpl = templates_.at("tool_use").get();
  } else if (templates_.count("default")) {
    tmpl = templates_.at("default").get();
  } else {
    fail("this model has several chat templates and none is named 'default'");
  }

  // Same variables, in the same order, as transformers' render call.
  jinja::Dict ctx;
  ctx.set(jinja::Value("messages"), jinja::Value::from_json(messages));
  ctx.set(jinja::Value("tools"), jinja::Value::from_json(tools));
  ctx.set(jinja::Value("documents"), jinja::Value::none());
  ctx.set(jinja::Value("add_generation_prompt"), jinja::Value(add_generation_prompt));
  for (const auto& [k, v] : special_tokens_) ctx.set(jinja::Value(k), jinja::Value(v));
  if (extra_kwargs.is_object()) {
    for (auto it = extra_kwargs.begin(); it != extra_kwargs.end(); ++it) {
      if (it.key() == "messages" || it.key() == "tools" || it.key() == "documents" ||
          it.key() == "add_generation_prompt")
        fail("chat template kwargs may not set '{}'", it.key());
      ctx.set(jinja::Value(it.key()), jinja::Value::from_json(it.value()));
    }
  }
  return tmpl->render(jinja::Value::dict(std::move(ctx)), options_);
}

}  // namespace inferd
