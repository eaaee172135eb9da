// vLLM's /tokenize and /detokenize bodies.
#include <fmt/format.h>

#include "core/error.h"
#include "server/protocol.h"

namespace inferd::server {

ojson tokenize_body(const json& body, const Generator& gen, const RequestLimits& limits,
                    bool trust_request_chat_template) {
  ojson out;
  std::vector<int32_t> ids;
  if (const json* msgs = find_field(body, "messages")) {
    ChatTemplateArgs args;
    args.messages = normalize_messages(*msgs, limits.max_messages);
    if (auto v = get_bool(body, "add_generation_prompt")) args.add_generation_prompt = *v;
    if (auto v = get_bool(body, "continue_final_message")) args.continue_final_message = *v;
    if (args.continue_final_message) args.add_generation_prompt = false;
    if (const json* kw = find_field(body, "chat_template_kwargs")) {
      if (!kw->is_object())
        throw bad_param("chat_template_kwargs",
                        "Invalid type for 'chat_template_kwargs': expected an object.");
      args.kwargs = ojson::parse(kw->dump());
    }
    if (const json* t = find_field(body, "chat_template"); t && !t->is_null()) {
      if (!t->is_string() || t->get_ref<const std::string&>().empty())
        wrong_type("chat_template", "a non-empty string", *t);
      if (!trust_request_chat_template)
        throw bad_param("chat_template",
                        "Chat template is passed with request, but --trust-request-chat-template "
                        "is not set. Refused request with untrusted chat template.");
      args.template_text = t->get<std::string>();
    }
    if (const json* tools = find_field(body, "tools"); tools && !tools->is_null())
      throw bad_param("tools",
                      "Invalid 'tools': /tokenize does not render tools; tokenize the prompt "
                      "of /v1/chat/completions instead.");
    std::string text;
    try {
      text = gen.apply_chat_template(args);
    } catch (const Error& e) {
      throw bad_param("messages",
                      fmt::format("The chat template failed on these messages: {}", e.what()));
    }
    ids = gen.encode(text, get_bool(body, "add_special_tokens").value_or(false));
  } else {
    auto prompt = get_string(body, "prompt");
    if (!prompt) throw bad_param("prompt", "Missing required parameter: 'prompt' (or 'messages').");
    ids = gen.encode(*prompt, get_bool(body, "add_special_tokens").value_or(true));
  }
  out["count"] = ids.size();
  out["max_model_len"] = gen.max_model_len();
  out["tokens"] = ids;
  if (get_bool(body, "return_token_strs").value_or(false)) {
    ojson strs = ojson::array();
    for (int32_t id : ids) strs.push_back(gen.token_text(id));
    out["token_strs"] = std::move(strs);
  }
  return out;
}

ojson detokenize_body(const json& body, const Generator& gen) {
  ojson out;
  const json* toks = find_field(body, "tokens");
  if (!toks) throw bad_param("tokens", "Missing required parameter: 'tokens'.");
  if (!toks->is_array())
    throw bad_param("tokens",
                    fmt::format("Invalid type for 'tokens': expected an array, but got {} instead.",
                                json_type_name(*toks)));
  std::vector<int32_t> ids;
  const int32_t vocab = gen.vocab_size();
  for (size_t i = 0; i < toks->size(); ++i) {
    const json& t = (*toks)[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab)
      throw bad_param(
          fmt::format("tokens[{}]", i),
          fmt::format("Invalid 'tokens[{}]': expected a token id in [0, {}).", i, vocab));
    ids.push_back(t.get<int32_t>());
  }
  out["prompt"] = gen.decode(ids, false);
  return out;
}

}  // namespace inferd::server
