// The Anthropic Messages request: checked and converted into a chat request (messages_request.h).
#include "server/messages_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <string_view>

namespace inferd::server {

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

std::string field_name(const std::string& p, std::string_view key) {
  return p.empty() ? std::string(key) : fmt::format("{}.{}", p, key);
}

// Every key of `obj` (named `p`) is one of `allowed`; any other is a 400 naming it.
void only_fields(const json& obj, const std::string& p,
                 std::initializer_list<std::string_view> allowed) {
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) {
      const std::string f = field_name(p, it.key());
      throw bad_param(f, fmt::format("{}: Extra inputs are not permitted (this server does not "
                                     "support '{}').",
                                     f, it.key()));
    }
}

const json& required(const json& obj, const char* key, const std::string& p) {
  const json* v = find_field(obj, key);
  if (!v) {
    const std::string f = field_name(p, key);
    throw bad_param(f, fmt::format("Missing required parameter: '{}'.", f));
  }
  return *v;
}

std::string required_string(const json& obj, const char* key, const std::string& p) {
  const json& v = required(obj, key, p);
  if (!v.is_string()) wrong_type(field_name(p, key), "a string", v);
  return v.get<std::string>();
}

const json& object_at(const json& v, const std::string& p) {
  if (!v.is_object()) wrong_type(p, "an object", v);
  return v;
}

// cache_control {"type": "ephemeral", "ttl": "5m" | "1h"}: prompt caching is automatic here
// (every request's prefix is cached), so the hint is checked and needs nothing more.
void check_cache_control(const json& obj, const std::string& p) {
  const json* cc = find_field(obj, "cache_control");
  if (!cc) return;
  const std::string f = p + ".cache_control";
  only_fields(object_at(*cc, f), f, {"type", "ttl"});
  if (required_string(*cc, "type", f) != "ephemeral")
    throw bad_param(f + ".type", fmt::format("Invalid '{}.type': expected 'ephemeral'.", f));
  if (const json* ttl = find_field(*cc, "ttl")) {
    if (!ttl->is_string() || (*ttl != "5m" && *ttl != "1h"))
      throw bad_param(f + ".ttl", fmt::format("Invalid '{}.ttl': expected '5m' or '1h'.", f));
  }
}

// The type of content block `p`.
std::string block_type(const json& block, const std::string& p) {
  object_at(block, p);
  return required_string(block, "type", p);
}

[[noreturn]] void unsupported_block(const std::string& p, const std::string& type,
                                    const char* supported) {
  if (type == "image")
    throw bad_param(p + ".type",
                    fmt::format("Invalid '{}.type': image content blocks are not supported by "
                                "this server yet; send text.",
                                p));
  throw bad_param(p + ".type", fmt::format("Invalid '{}.type': content blocks of type '{}' are not "
                                           "supported here (supported: {}).",
                                           p, type, supported));
}

// A text block's text.
std::string text_of(const json& block, const std::string& p) {
  only_fields(block, p, {"type", "text", "cache_control", "citations"});
  check_cache_control(block, p);
  if (const json* c = find_field(block, "citations"); c && !(c->is_array() && c->empty()))
    throw bad_param(p + ".citations",
                    fmt::format("Invalid '{}.citations': citations are not supported.", p));
  return required_string(block, "text", p);
}

void append_text(std::string& to, const std::string& text) {
  if (!to.empty()) to += "\n";
  to += text;
}

// `system`: a string or an array of text blocks.
std::string system_text(const json& system) {
  if (system.is_string()) return system.get<std::string>();
  if (!system.is_array()) wrong_type("system", "a string or an array of text blocks", system);
  std::string text;
  for (size_t j = 0; j < system.size(); ++j) {
    const std::string p = fmt::format("system[{}]", j);
    const std::string t = block_type(system[j], p);
    if (t != "text") unsupported_block(p, t, "'text'");
    append_text(text, text_of(system[j], p));
  }
  return text;
}

// A tool_result block as the chat `tool` message answering call `tool_use_id`. is_error: the text
// is prefixed "Error: " (templates have no field for it).
ojson tool_message(const json& block, const std::string& p) {
  only_fields(block, p, {"type", "tool_use_id", "content", "is_error", "cache_control"});
  check_cache_control(block, p);
  const std::string id = required_string(block, "tool_use_id", p);
  std::string text;
  if (const json* c = find_field(block, "content")) {
    if (c->is_string()) {
      text = c->get<std::string>();
    } else if (c->is_array()) {
      for (size_t k = 0; k < c->size(); ++k) {
        const std::string pk = fmt::format("{}.content[{}]", p, k);
        const std::string t = block_type((*c)[k], pk);
        if (t != "text") unsupported_block(pk, t, "'text'");
        append_text(text, text_of((*c)[k], pk));
      }
    } else {
      wrong_type(p + ".content", "a string or an array of text blocks", *c);
    }
  }
  if (auto e = get_bool(block, "is_error"); e && *e) text = "Error: " + text;
  return ojson{{"role", "tool"}, {"tool_call_id", id}, {"content", std::move(text)}};
}

// A user turn: its tool_result blocks become tool messages (first, as Anthropic requires them
// first), its text blocks one user message.
void user_turn(const json& content, const std::string& p, ojson& out) {
  if (content.is_string()) {
    out.push_back({{"role", "user"}, {"content", content.get<std::string>()}});
    return;
  }
  std::string text;
  bool any_text = false, any_result = false;
  for (size_t j = 0; j < content.size(); ++j) {
    const std::string pj = fmt::format("{}[{}]", p, j);
    const std::string t = block_type(content[j], pj);
    if (t == "text") {
      append_text(text, text_of(content[j], pj));
      any_text = true;
    } else if (t == "tool_result") {
      out.push_back(tool_message(content[j], pj));
      any_result = true;
    } else {
      unsupported_block(pj, t, "'text', 'tool_result'");
    }
  }
  if (any_text || !any_result) out.push_back({{"role", "user"}, {"content", std::move(text)}});
}

// A tool_use block as a chat tool call (arguments as a mapping, as templates expect).
ojson tool_call(const json& block, const std::string& p) {
  only_fields(block, p, {"type", "id", "name", "input", "cache_control"});
  check_cache_control(block, p);
  ojson call;
  call["id"] = required_string(block, "id", p);
  call["type"] = "function";
  const std::string name = required_string(block, "name", p);
  const json& input = object_at(required(block, "input", p), p + ".input");
  call["function"] = {{"name", name}, {"arguments", ojson::parse(input.dump())}};
  return call;
}

// An assistant turn: text blocks into content, tool_use blocks into tool_calls. Thinking blocks
// of earlier turns are dropped, as chat templates drop earlier turns' reasoning.
void assistant_turn(const json& content, const std::string& p, ojson& out) {
  ojson msg = {{"role", "assistant"}};
  if (content.is_string()) {
    msg["content"] = content.get<std::string>();
    out.push_back(std::move(msg));
    return;
  }
  std::string text;
  ojson calls = ojson::array();
  for (size_t j = 0; j < content.size(); ++j) {
    const std::string pj = fmt::format("{}[{}]", p, j);
    const std::string t = block_type(content[j], pj);
    if (t == "text") {
      append_text(text, text_of(content[j], pj));
    } else if (t == "tool_use") {
      calls.push_back(tool_call(content[j], pj));
    } else if (t == "thinking") {
      only_fields(content[j], pj, {"type", "thinking", "signature"});
      (void)required_string(content[j], "thinking", pj);
    } else {
      unsupported_block(pj, t, "'text', 'tool_use', 'thinking'");
    }
  }
  msg["content"] = std::move(text);
  if (!calls.empty()) msg["tool_calls"] = std::move(calls);
  out.push_back(std::move(msg));
}

// `messages` as chat messages (after the system message, if any). Returns whether the last turn
// is the assistant's (a prefill the model continues).
bool convert_messages(const json& body, const RequestLimits& lim, ojson& out) {
  const json& msgs = required(body, "messages", "");
  if (!msgs.is_array()) wrong_type("messages", "an array", msgs);
  if (msgs.empty())
    throw bad_param("messages", "Invalid 'messages': at least one message is required.");
  if (msgs.size() > lim.max_messages)
    throw bad_param("messages", fmt::format("Invalid 'messages': at most {} messages are allowed, "
                                            "got {}.",
                                            lim.max_messages, msgs.size()));
  bool last_assistant = false;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const std::string p = fmt::format("messages[{}]", i);
    only_fields(object_at(msgs[i], p), p, {"role", "content"});
    const std::string role = required_string(msgs[i], "role", p);
    if (role != "user" && role != "assistant")
      throw bad_param(p + ".role", fmt::format("Invalid '{}.role': '{}'. Expected 'user' or "
                                               "'assistant' (the system prompt is the top-level "
                                               "'system' field).",
                                               p, role));
    const json& content = required(msgs[i], "content", p);
    if (!content.is_string() && !content.is_array())
      wrong_type(p + ".content", "a string or an array of content blocks", content);
    if (role == "user")
      user_turn(content, p + ".content", out);
    else
      assistant_turn(content, p + ".content", out);
    last_assistant = role == "assistant";
  }
  return last_assistant;
}

// Checks `tools` (custom tools: name, description, input_schema) and writes OpenAI's function
// tools; returns the names.
std::vector<std::string> convert_tools(const json& body, const ojson* ordered,
                                       const RequestLimits& lim, ojson& chat) {
  std::vector<std::string> names;
  const json* tools = find_field(body, "tools");
  if (!tools) return names;
  if (!tools->is_array()) wrong_type("tools", "an array", *tools);
  if (tools->size() > lim.max_tools)
    throw bad_param("tools", fmt::format("Invalid 'tools': at most {} tools are allowed, got {}.",
                                         lim.max_tools, tools->size()));
  const ojson* otools = ordered_at(ordered, {"tools"});
  if (otools && (!otools->is_array() || otools->size() != tools->size())) otools = nullptr;
  ojson out = ojson::array();
  for (size_t i = 0; i < tools->size(); ++i) {
    const std::string p = fmt::format("tools[{}]", i);
    const json& t = object_at((*tools)[i], p);
    if (const json* type = find_field(t, "type"); type && *type != "custom")
      throw bad_param(p + ".type",
                      fmt::format("Invalid '{}.type': {} tools are not supported; only custom "
                                  "tools (name, description, input_schema).",
                                  p, type->dump()));
    only_fields(t, p, {"type", "name", "description", "input_schema", "cache_control", "strict"});
    check_cache_control(t, p);
    ojson fn;
    const std::string name = required_string(t, "name", p);
    if (!valid_name(name))
      throw bad_param(p + ".name", fmt::format("Invalid '{}.name': '{}' must be 1 to 64 letters, "
                                               "digits, underscores or dashes.",
                                               p, name));
    fn["name"] = name;
    if (const json* d = find_field(t, "description")) {
      if (!d->is_string()) wrong_type(p + ".description", "a string", *d);
      fn["description"] = *d;
    }
    object_at(required(t, "input_schema", p), p + ".input_schema");
    const ojson* schema = otools ? ordered_at(&(*otools)[i], {"input_schema"}) : nullptr;
    fn["parameters"] = schema ? *schema : ojson::parse(t["input_schema"].dump());
    if (auto st = get_bool(t, "strict")) fn["strict"] = *st;
    out.push_back({{"type", "function"}, {"function", std::move(fn)}});
    names.push_back(name);
  }
  if (!out.empty()) chat["tools"] = std::move(out);
  return names;
}

// tool_choice {"type": "auto" | "any" | "tool" (with "name") | "none",
// "disable_parallel_tool_use"} as OpenAI's tool_choice and parallel_tool_calls.
void convert_tool_choice(const json& body, const std::vector<std::string>& tools,
                         const ChatParsing& parsing, ojson& chat) {
  const json* tc = find_field(body, "tool_choice");
  std::string type = "auto";
  if (tc) {
    object_at(*tc, "tool_choice");
    type = required_string(*tc, "type", "tool_choice");
    if (type == "tool")
      only_fields(*tc, "tool_choice", {"type", "name", "disable_parallel_tool_use"});
    else if (type == "auto" || type == "any")
      only_fields(*tc, "tool_choice", {"type", "disable_parallel_tool_use"});
    else if (type == "none")
      only_fields(*tc, "tool_choice", {"type"});
    else
      throw bad_param("tool_choice.type", fmt::format("Invalid 'tool_choice.type': '{}'. Expected "
                                                      "'auto', 'any', 'tool' or 'none'.",
                                                      type));
    if (auto v = get_bool(*tc, "disable_parallel_tool_use"); v && *v)
      chat["parallel_tool_calls"] = false;
  }
  if (tools.empty()) {
    if (type == "any" || type == "tool")
      throw bad_param("tool_choice",
                      fmt::format("Invalid 'tool_choice': type '{}' needs 'tools'.", type));
    return;
  }
  if (type == "auto") {
    if (!parsing.enable_auto_tool_choice || !parsing.tool_call_parser)
      throw bad_param("tool_choice",
                      "tool_choice 'auto' (the default when tools are given) requires the server "
                      "to run with --enable-auto-tool-choice and --tool-call-parser; use "
                      "tool_choice {\"type\": \"any\"}, {\"type\": \"tool\", \"name\": ...} or "
                      "{\"type\": \"none\"} instead.");
    chat["tool_choice"] = "auto";
  } else if (type == "any") {
    chat["tool_choice"] = "required";
  } else if (type == "none") {
    chat["tool_choice"] = "none";
  } else {
    const std::string name = required_string(*tc, "name", "tool_choice");
    if (std::find(tools.begin(), tools.end(), name) == tools.end())
      throw bad_param(
          "tool_choice.name",
          fmt::format("Invalid 'tool_choice.name': no tool named '{}' in 'tools'.", name));
    chat["tool_choice"] = {{"type", "function"}, {"function", {{"name", name}}}};
  }
}

// thinking {"type": "enabled", "budget_tokens"} / {"type": "adaptive"} / {"type": "disabled"}:
// the chat template's enable_thinking; enabled needs the server's reasoning parser (the thinking
// comes back as thinking blocks).
void convert_thinking(const json& body, const ChatParsing& parsing,
                      std::optional<int64_t> max_tokens, ojson& chat) {
  const json* th = find_field(body, "thinking");
  if (!th) return;
  object_at(*th, "thinking");
  const std::string type = required_string(*th, "type", "thinking");
  if (type == "disabled") {
    only_fields(*th, "thinking", {"type"});
    chat["chat_template_kwargs"] = {{"enable_thinking", false}};
    return;
  }
  if (type != "enabled" && type != "adaptive")
    throw bad_param("thinking.type", fmt::format("Invalid 'thinking.type': '{}'. Expected "
                                                 "'enabled', 'adaptive' or 'disabled'.",
                                                 type));
  if (type == "enabled") {
    only_fields(*th, "thinking", {"type", "budget_tokens"});
    const int64_t budget = int_value(required(*th, "budget_tokens", "thinking"),
                                     "thinking.budget_tokens", 1, kInt32Max);
    if (max_tokens && budget >= *max_tokens)
      throw bad_param("thinking.budget_tokens",
                      fmt::format("Invalid 'thinking.budget_tokens': {} must be less than "
                                  "max_tokens ({}).",
                                  budget, *max_tokens));
  } else {
    only_fields(*th, "thinking", {"type"});
  }
  if (!parsing.reasoning_parser)
    throw bad_param("thinking",
                    "Invalid 'thinking': this server runs without a reasoning parser "
                    "(--reasoning-parser), so it cannot return thinking blocks; leave 'thinking' "
                    "out or set {\"type\": \"disabled\"}.");
  chat["chat_template_kwargs"] = {{"enable_thinking", true}};
}

// stop_sequences (an array of strings) as `stop`.
void convert_stop_sequences(const json& body, const RequestLimits& lim, ojson& chat) {
  const json* st = find_field(body, "stop_sequences");
  if (!st) return;
  if (!st->is_array()) wrong_type("stop_sequences", "an array of strings", *st);
  if (st->size() > lim.max_stop)
    throw bad_param("stop_sequences", fmt::format("Invalid 'stop_sequences': at most {} stop "
                                                  "sequences are allowed, got {}.",
                                                  lim.max_stop, st->size()));
  ojson stop = ojson::array();
  for (size_t i = 0; i < st->size(); ++i) {
    const std::string p = fmt::format("stop_sequences[{}]", i);
    const json& s = (*st)[i];
    if (!s.is_string()) wrong_type(p, "a string", s);
    if (s.get_ref<const std::string&>().empty())
      throw bad_param(p, fmt::format("Invalid '{}': a stop sequence cannot be empty.", p));
    if (s.get_ref<const std::string&>().size() > lim.max_stop_bytes)
      throw bad_param(p,
                      fmt::format("Invalid '{}': a stop sequence may be at most {} bytes, "
                                  "got {}.",
                                  p, lim.max_stop_bytes, s.get_ref<const std::string&>().size()));
    stop.push_back(s.get<std::string>());
  }
  if (!stop.empty()) chat["stop"] = std::move(stop);
}

// metadata {"user_id"}: the request log's user.
void convert_metadata(const json& body, ojson& chat) {
  const json* md = find_field(body, "metadata");
  if (!md) return;
  only_fields(object_at(*md, "metadata"), "metadata", {"user_id"});
  if (const json* u = find_field(*md, "user_id")) {
    if (!u->is_string()) wrong_type("metadata.user_id", "a string", *u);
    chat["user"] = *u;
  }
}

// An error of the chat path, named as this API names the field.
ApiError renamed(const ApiError& e) {
  const std::optional<std::string>& param = e.param();
  if (!param) return e;
  std::string p = *param;
  std::string message = e.what();
  auto rename = [&](std::string_view from, std::string_view to) {
    if (!p.starts_with(from)) return false;
    const std::string old_name = p;
    p = std::string(to) + p.substr(from.size());
    for (size_t at = message.find(old_name); at != std::string::npos;
         at = message.find(old_name, at + p.size()))
      message.replace(at, old_name.size(), p);
    return true;
  };
  if (p.starts_with("tools[")) {
    const size_t close = p.find(']');
    const std::string tool = p.substr(0, close + 1);
    rename(tool + ".function.parameters", tool + ".input_schema") ||
        rename(tool + ".function.name", tool + ".name") || rename(tool + ".function", tool);
  } else if (p.starts_with("messages[")) {
    p = "messages";  // the chat messages are numbered differently
  } else {
    rename("stop", "stop_sequences") || rename("tool_choice.function.name", "tool_choice.name");
  }
  ApiError out(e.status(), message, e.type(), p, e.code());
  out.with_retry_after(e.retry_after_s());
  return out;
}

CompletionRequest parse_converted(const json& body, const ValidationContext& ctx,
                                  bool count_tokens) {
  std::optional<ojson> ordered;
  if (!ctx.raw_body.empty() && body.contains("tools")) {
    try {
      ordered = ojson::parse(ctx.raw_body);
    } catch (const std::exception&) {
    }
  }
  const ojson chat = messages_to_chat_body(body, ordered ? &*ordered : nullptr, ctx, count_tokens);
  const std::string text = chat.dump();
  ValidationContext vc = ctx;
  vc.raw_body = text;
  try {
    return parse_completion_request(json::parse(text), true, vc);
  } catch (const ApiError& e) {
    throw renamed(e);
  }
}

}  // namespace

ojson messages_to_chat_body(const json& body, const ojson* ordered, const ValidationContext& ctx,
                            bool count_tokens) {
  if (count_tokens)
    only_fields(body, "", {"model", "messages", "system", "tools", "tool_choice", "thinking"});
  else
    only_fields(
        body, "",
        {"model", "max_tokens", "messages", "system", "tools", "tool_choice", "stop_sequences",
         "temperature", "top_p", "top_k", "stream", "metadata", "thinking"});
  ojson chat = ojson::object();
  if (const json* m = find_field(body, "model")) {
    if (!m->is_string()) wrong_type("model", "a string", *m);
    chat["model"] = *m;
  }
  std::optional<int64_t> max_tokens;
  if (!count_tokens) {
    max_tokens = int_value(required(body, "max_tokens", ""), "max_tokens", 1,
                           std::numeric_limits<int64_t>::max());
    chat["max_tokens"] = *max_tokens;
  }
  ojson messages = ojson::array();
  if (const json* s = find_field(body, "system"))
    messages.push_back({{"role", "system"}, {"content", system_text(*s)}});
  if (convert_messages(body, ctx.limits, messages)) chat["continue_final_message"] = true;
  chat["messages"] = std::move(messages);
  const std::vector<std::string> tools = convert_tools(body, ordered, ctx.limits, chat);
  convert_tool_choice(body, tools, ctx.parsing, chat);
  convert_thinking(body, ctx.parsing, max_tokens, chat);
  if (count_tokens) return chat;
  convert_stop_sequences(body, ctx.limits, chat);
  convert_metadata(body, chat);
  for (const char* k : {"temperature", "top_p", "top_k", "stream"})
    if (const json* v = find_field(body, k)) chat[k] = ojson::parse(v->dump());
  return chat;
}

CompletionRequest parse_messages_request(const json& body, const ValidationContext& ctx) {
  return parse_converted(body, ctx, false);
}

int64_t count_message_tokens(const json& body, const ValidationContext& ctx) {
  const CompletionRequest r = parse_converted(body, ctx, true);
  return r.prompts.empty() ? 0 : int64_t(r.prompts[0].size());
}

const char* anthropic_error_type(int status) {
  switch (status) {
    case 400:
    case 405:
      return "invalid_request_error";
    case 408:
      return "timeout_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return status < 500 ? "invalid_request_error" : "api_error";
  }
}

std::string anthropic_error_body(const ApiError& e) {
  ojson err = {{"type", anthropic_error_type(e.status())}, {"message", e.what()}};
  if (e.param()) err["param"] = *e.param();
  return ojson{{"type", "error"}, {"error", std::move(err)}}.dump(-1, ' ', false,
                                                                  ojson::error_handler_t::replace);
}

}  // namespace inferd::server
