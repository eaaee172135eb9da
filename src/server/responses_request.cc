// POST /v1/responses bodies: checked, and converted into the chat request they run as (see
// responses_request.h).
#include "server/responses_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string_view>

namespace inferd::server {

namespace {

// Fields of OpenAI's request this server takes; some of them (background, truncation,
// service_tier, include) only with the value that asks for nothing (check_fields).
constexpr std::string_view kFields[] = {"model",
                                        "input",
                                        "instructions",
                                        "max_output_tokens",
                                        "temperature",
                                        "top_p",
                                        "tools",
                                        "tool_choice",
                                        "parallel_tool_calls",
                                        "text",
                                        "reasoning",
                                        "stream",
                                        "stream_options",
                                        "store",
                                        "previous_response_id",
                                        "metadata",
                                        "user",
                                        "include",
                                        "truncation",
                                        "background",
                                        "service_tier",
                                        "safety_identifier",
                                        "prompt_cache_key"};

// Fields of OpenAI's request this server does not implement: a 400 when given (not null).
constexpr std::string_view kUnsupported[] = {"conversation", "prompt", "context_management",
                                             "max_tool_calls", "top_logprobs"};

[[noreturn]] void unsupported(const std::string& param, const std::string& why) {
  throw ApiError(400, fmt::format("Unsupported parameter: '{}': {}", param, why),
                 "invalid_request_error", param, "unsupported_parameter");
}

const std::string& string_of(const json& v, const std::string& param) {
  if (!v.is_string()) wrong_type(param, "a string", v);
  return v.get_ref<const std::string&>();
}

// Unknown fields, and the fields of OpenAI's API whose asking this server cannot honour.
void check_fields(const json& body) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (std::find(std::begin(kUnsupported), std::end(kUnsupported), it.key()) !=
        std::end(kUnsupported)) {
      if (it.value().is_null()) continue;
      unsupported(it.key(), "not supported by this server.");
    }
    if (it.key() == "prompt_cache_retention") {
      if (auto v = get_string(body, "prompt_cache_retention"); v && *v != "in-memory")
        unsupported(it.key(), "only 'in-memory' (the prefix cache) is supported by this server.");
      continue;
    }
    if (std::find(std::begin(kFields), std::end(kFields), it.key()) == std::end(kFields))
      throw ApiError(400, fmt::format("Unknown parameter: '{}'.", it.key()),
                     "invalid_request_error", it.key(), "unknown_parameter");
  }
  if (auto v = get_bool(body, "background"); v && *v)
    unsupported("background", "background responses are not supported by this server.");
  if (auto v = get_string(body, "truncation"); v && *v != "disabled") {
    if (*v != "auto")
      throw bad_param("truncation", fmt::format("Invalid value: '{}'. Supported values are: "
                                                "'auto' and 'disabled'.",
                                                *v));
    unsupported("truncation", "'auto' is not supported by this server (only 'disabled').");
  }
  if (auto v = get_string(body, "service_tier"); v && *v != "auto" && *v != "default")
    unsupported("service_tier", fmt::format("'{}' is not supported by this server (only 'auto' "
                                            "and 'default').",
                                            *v));
  if (const json* inc = find_field(body, "include")) {
    if (!inc->is_array()) wrong_type("include", "an array", *inc);
    for (size_t i = 0; i < inc->size(); ++i) {
      const std::string p = fmt::format("include[{}]", i);
      unsupported(p, fmt::format("'{}' is not supported by this server.", string_of((*inc)[i], p)));
    }
  }
  (void)get_string(body, "safety_identifier");
  (void)get_string(body, "prompt_cache_key");
  (void)get_string(body, "user");
  const bool stream = get_bool(body, "stream").value_or(false);
  if (const json* so = find_field(body, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    if (!stream)
      throw bad_param("stream_options",
                      "Invalid 'stream_options': stream_options can only be set when stream is "
                      "true.");
    for (auto it = so->begin(); it != so->end(); ++it) {
      if (it.key() != "include_obfuscation")
        throw ApiError(400, fmt::format("Unknown parameter: 'stream_options.{}'.", it.key()),
                       "invalid_request_error", "stream_options." + it.key(), "unknown_parameter");
    }
    (void)get_bool(*so, "include_obfuscation");
  }
}

// metadata: at most 16 pairs, keys up to 64 characters, string values up to 512.
ojson metadata_of(const json& body) {
  const json* md = find_field(body, "metadata");
  if (!md) return nullptr;
  if (!md->is_object()) wrong_type("metadata", "an object", *md);
  if (md->size() > 16)
    throw bad_param("metadata", fmt::format("Invalid 'metadata': at most 16 pairs are allowed, "
                                            "got {}.",
                                            md->size()));
  for (auto it = md->begin(); it != md->end(); ++it) {
    const std::string p = "metadata." + it.key();
    if (it.key().size() > 64)
      throw bad_param(
          p, fmt::format("Invalid 'metadata': key '{}' is longer than 64 characters.", it.key()));
    if (string_of(it.value(), p).size() > 512)
      throw bad_param(p, fmt::format("Invalid '{}': a value may be at most 512 characters.", p));
  }
  return ojson::parse(md->dump());
}

// The text of content given as a string or as text parts (`kinds`: the part types accepted).
std::string parts_text(const json& content, const std::string& p,
                       std::initializer_list<std::string_view> kinds) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(p, "a string or an array of content parts", content);
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string pp = fmt::format("{}[{}]", p, j);
    if (!part.is_object()) wrong_type(pp, "an object", part);
    const json* type = find_field(part, "type");
    if (!type)
      throw bad_param(pp + ".type", fmt::format("Missing required parameter: '{}.type'.", pp));
    const std::string& t = string_of(*type, pp + ".type");
    if (std::find(kinds.begin(), kinds.end(), t) == kinds.end()) {
      std::string list;
      for (std::string_view k : kinds) list += fmt::format("{}'{}'", list.empty() ? "" : ", ", k);
      throw bad_param(pp + ".type", fmt::format("Invalid value: '{}'. Supported values are: {} "
                                                "(files and audio are not supported by "
                                                "this model).",
                                                t, list));
    }
    if (t == "input_image") {  // checked here, taken by the chat request (chat_content)
      const json* url = find_field(part, "image_url");
      if (!url) {
        if (find_field(part, "file_id"))
          throw bad_param(pp + ".file_id", fmt::format("Invalid '{}.file_id': files are not "
                                                       "supported; send 'image_url'.",
                                                       pp));
        throw bad_param(pp + ".image_url",
                        fmt::format("Missing required parameter: '{}.image_url'.", pp));
      }
      (void)string_of(*url, pp + ".image_url");
      continue;
    }
    const char* key = t == "refusal" ? "refusal" : "text";
    const json* tx = find_field(part, key);
    if (!tx)
      throw bad_param(pp + "." + key, fmt::format("Missing required parameter: '{}.{}'.", pp, key));
    if (!text.empty()) text += "\n";
    text += string_of(*tx, pp + "." + key);
  }
  return text;
}

// A message item's content for the chat request: its text, or, when it has input_image parts,
// the chat form of its parts (text and image_url) in order.
ojson chat_content(const json& content, const std::string& p) {
  const std::string text =
      parts_text(content, p + ".content", {"output_text", "input_text", "refusal", "input_image"});
  if (!content.is_array()) return text;
  bool images = false;
  for (const json& part : content) images |= part.value("type", "") == "input_image";
  if (!images) return text;
  ojson parts = ojson::array();
  for (const json& part : content) {
    const std::string t = part.value("type", "");
    if (t == "input_image") {
      parts.push_back({{"type", "image_url"}, {"image_url", {{"url", part["image_url"]}}}});
    } else {
      parts.push_back({{"type", "text"}, {"text", part[t == "refusal" ? "refusal" : "text"]}});
    }
  }
  return parts;
}

const json& required(const json& obj, const char* name, const std::string& p) {
  const json* v = find_field(obj, name);
  if (!v)
    throw bad_param(p + "." + name, fmt::format("Missing required parameter: '{}.{}'.", p, name));
  return *v;
}

// One input item, checked, in its canonical shape.
ojson input_item(const json& it, const std::string& p) {
  if (!it.is_object()) wrong_type(p, "an object", it);
  std::string type = "message";
  if (const json* t = find_field(it, "type")) type = string_of(*t, p + ".type");
  if (type == "message") {
    const std::string& role = string_of(required(it, "role", p), p + ".role");
    if (role != "user" && role != "assistant" && role != "system" && role != "developer")
      throw bad_param(p + ".role", fmt::format("Invalid value: '{}'. Supported values are: "
                                               "'user', 'assistant', 'system' and 'developer'.",
                                               role));
    const json& content = required(it, "content", p);
    if (role == "assistant")
      (void)parts_text(content, p + ".content", {"output_text", "input_text", "refusal"});
    else
      (void)parts_text(content, p + ".content", {"input_text", "input_image"});
    return {{"type", "message"}, {"role", role}, {"content", ojson::parse(content.dump())}};
  }
  if (type == "function_call") {
    ojson item = {{"type", "function_call"}};
    for (const char* k : {"call_id", "name", "arguments"})
      item[k] = string_of(required(it, k, p), fmt::format("{}.{}", p, k));
    if (const json* id = find_field(it, "id")) item["id"] = string_of(*id, p + ".id");
    return item;
  }
  if (type == "function_call_output") {
    const std::string& call_id = string_of(required(it, "call_id", p), p + ".call_id");
    const json& output = required(it, "output", p);
    (void)parts_text(output, p + ".output", {"input_text"});
    return {{"type", "function_call_output"},
            {"call_id", call_id},
            {"output", ojson::parse(output.dump())}};
  }
  if (type == "reasoning") {
    ojson item = {{"type", "reasoning"}, {"summary", ojson::array()}};
    if (const json* c = find_field(it, "content")) {
      (void)parts_text(*c, p + ".content", {"reasoning_text"});
      item["content"] = ojson::parse(c->dump());
    }
    if (const json* id = find_field(it, "id")) item["id"] = string_of(*id, p + ".id");
    return item;
  }
  throw bad_param(p + ".type", fmt::format("Invalid value: '{}'. Supported values are: 'message', "
                                           "'function_call', 'function_call_output' and "
                                           "'reasoning'.",
                                           type));
}

ojson input_items(const json& body, size_t max_items) {
  const json* in = find_field(body, "input");
  if (!in) throw bad_param("input", "Missing required parameter: 'input'.");
  if (in->is_string())
    return ojson::array({{{"type", "message"}, {"role", "user"}, {"content", *in}}});
  if (!in->is_array()) wrong_type("input", "a string or an array of input items", *in);
  if (in->size() > max_items)
    throw bad_param("input", fmt::format("Invalid 'input': array too long. Expected an array with "
                                         "maximum length {}, but got an array with length {} "
                                         "instead.",
                                         max_items, in->size()));
  ojson items = ojson::array();
  for (size_t i = 0; i < in->size(); ++i)
    items.push_back(input_item((*in)[i], fmt::format("input[{}]", i)));
  return items;
}

// tools: function tools only, converted to the chat shape (their parameters in the client's key
// order).
ojson chat_tools(const json& tools, const ojson* ordered) {
  if (!tools.is_array()) wrong_type("tools", "an array", tools);
  const ojson* otools = ordered_at(ordered, {"tools"});
  if (otools && (!otools->is_array() || otools->size() != tools.size())) otools = nullptr;
  ojson out = ojson::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const std::string p = fmt::format("tools[{}]", i);
    if (!t.is_object()) wrong_type(p, "an object", t);
    const std::string& type = string_of(required(t, "type", p), p + ".type");
    if (type != "function")
      throw bad_param(p + ".type", fmt::format("Invalid value: '{}'. Supported values are: "
                                               "'function' (built-in tools such as web_search, "
                                               "file_search or mcp are not supported by this "
                                               "server).",
                                               type));
    ojson fn = ojson::object();
    for (auto it = t.begin(); it != t.end(); ++it) {
      const std::string& k = it.key();
      if (k == "type") continue;
      if (k != "name" && k != "description" && k != "parameters" && k != "strict")
        throw ApiError(400, fmt::format("Unknown parameter: '{}.{}'.", p, k),
                       "invalid_request_error", p + "." + k, "unknown_parameter");
      if (it.value().is_null()) continue;
      const ojson* o = otools ? ordered_at(&(*otools)[i], {k}) : nullptr;
      fn[k] = o ? *o : ojson::parse(it.value().dump());
    }
    (void)required(t, "name", p);
    out.push_back({{"type", "function"}, {"function", std::move(fn)}});
  }
  return out;
}

// tool_choice: "none" | "auto" | "required" | {"type": "function", "name": ...}.
ojson chat_tool_choice(const json& tc) {
  if (tc.is_string()) return ojson(tc.get<std::string>());
  if (!tc.is_object()) wrong_type("tool_choice", "a string or an object", tc);
  const std::string& type = string_of(required(tc, "type", "tool_choice"), "tool_choice.type");
  if (type != "function")
    throw bad_param("tool_choice.type", fmt::format("Invalid value: '{}'. Supported values are: "
                                                    "'function' (built-in tools are not "
                                                    "supported by this server).",
                                                    type));
  const std::string& name = string_of(required(tc, "name", "tool_choice"), "tool_choice.name");
  return {{"type", "function"}, {"function", {{"name", name}}}};
}

// text: {"format": {"type": "text" | "json_object" | "json_schema", ...}, "verbosity": ...}; the
// chat request's response_format (null for text).
ojson response_format(const json& text, const ojson* ordered) {
  if (!text.is_object()) wrong_type("text", "an object", text);
  for (auto it = text.begin(); it != text.end(); ++it)
    if (it.key() != "format" && it.key() != "verbosity")
      throw ApiError(400, fmt::format("Unknown parameter: 'text.{}'.", it.key()),
                     "invalid_request_error", "text." + it.key(), "unknown_parameter");
  if (auto v = get_string(text, "verbosity"); v && *v != "medium")
    unsupported("text.verbosity", "only 'medium' is supported by this server.");
  const json* f = find_field(text, "format");
  if (!f) return nullptr;
  if (!f->is_object()) wrong_type("text.format", "an object", *f);
  const std::string& type = string_of(required(*f, "type", "text.format"), "text.format.type");
  if (type == "text") return nullptr;
  if (type == "json_object") return {{"type", "json_object"}};
  if (type != "json_schema")
    throw bad_param("text.format.type", fmt::format("Invalid value: '{}'. Supported values are: "
                                                    "'text', 'json_object' and 'json_schema'.",
                                                    type));
  ojson js = ojson::object();
  for (auto it = f->begin(); it != f->end(); ++it) {
    const std::string& k = it.key();
    if (k == "type") continue;
    if (k != "name" && k != "schema" && k != "strict" && k != "description")
      throw ApiError(400, fmt::format("Unknown parameter: 'text.format.{}'.", k),
                     "invalid_request_error", "text.format." + k, "unknown_parameter");
    const ojson* o = ordered_at(ordered, {"text", "format", k});
    js[k] = o ? *o : ojson::parse(it.value().dump());
  }
  (void)string_of(required(*f, "name", "text.format"), "text.format.name");
  (void)required(*f, "schema", "text.format");
  return {{"type", "json_schema"}, {"json_schema", std::move(js)}};
}

// reasoning: {"effort", "summary"}. The effort needs the server's reasoning parser; "none" turns
// thinking off (the template's enable_thinking), the others turn it on and reach templates that
// read reasoning_effort. Returns the chat_template_kwargs (or null).
ojson reasoning_kwargs(const json& r, const ChatParsing& parsing) {
  if (!r.is_object()) wrong_type("reasoning", "an object", r);
  for (auto it = r.begin(); it != r.end(); ++it)
    if (it.key() != "effort" && it.key() != "summary" && it.key() != "generate_summary")
      throw ApiError(400, fmt::format("Unknown parameter: 'reasoning.{}'.", it.key()),
                     "invalid_request_error", "reasoning." + it.key(), "unknown_parameter");
  for (const char* k : {"summary", "generate_summary"})
    if (auto s = get_string(r, k); s && *s != "auto")
      unsupported(std::string("reasoning.") + k,
                  fmt::format("'{}' is not supported by this server (reasoning is returned as "
                              "reasoning_text, not summarized).",
                              *s));
  const auto effort = get_string(r, "effort");
  if (!effort) return nullptr;
  static const char* kEfforts[] = {"none", "minimal", "low", "medium", "high", "xhigh"};
  if (std::none_of(std::begin(kEfforts), std::end(kEfforts),
                   [&](const char* e) { return *effort == e; }))
    throw bad_param("reasoning.effort", fmt::format("Invalid value: '{}'. Supported values are: "
                                                    "'none', 'minimal', 'low', 'medium', 'high' "
                                                    "and 'xhigh'.",
                                                    *effort));
  if (!parsing.reasoning_parser)
    unsupported("reasoning.effort",
                "this server runs no reasoning model (start it with --reasoning-parser).");
  if (*effort == "none") return {{"enable_thinking", false}};
  return {{"enable_thinking", true}, {"reasoning_effort", *effort}};
}

// A chat error's param and message, named as the Responses request names them.
ApiError renamed(const ApiError& e) {
  if (!e.param()) return e;
  const std::string& p = *e.param();
  std::string to = p;
  auto starts = [&](std::string_view s) {
    return p == s || (p.starts_with(s) && (p[s.size()] == '.' || p[s.size()] == '['));
  };
  if (starts("messages"))
    to = "input";
  else if (p == "max_tokens")
    to = "max_output_tokens";
  else if (starts("response_format.json_schema"))
    to = "text.format" + p.substr(std::string_view("response_format.json_schema").size());
  else if (starts("response_format"))
    to = "text.format";
  else if (starts("chat_template_kwargs"))
    to = "reasoning";
  else if (starts("tool_choice.function"))
    to = "tool_choice" + p.substr(std::string_view("tool_choice.function").size());
  else if (p.starts_with("tools[")) {
    if (const size_t f = p.find("].function"); f != std::string::npos)
      to = p.substr(0, f + 1) + p.substr(f + std::string_view("].function").size());
  }
  if (to == p) return e;
  std::string msg = e.what();
  for (size_t at = msg.find(p); at != std::string::npos; at = msg.find(p, at + to.size()))
    msg.replace(at, p.size(), to);
  ApiError out(e.status(), msg, e.type(), to, e.code());
  return out.with_retry_after(e.retry_after_s());
}

// The request's settings as the response object shows them.
ojson echo_fields(const json& body, const ojson* ordered, const ojson& metadata) {
  auto given = [&](const char* k, ojson dflt) -> ojson {
    if (const ojson* o = ordered_at(ordered, {k}); o && !o->is_null()) return *o;
    if (const json* v = find_field(body, k)) return ojson::parse(v->dump());
    return dflt;
  };
  ojson e = ojson::object();
  e["instructions"] = given("instructions", nullptr);
  e["max_output_tokens"] = given("max_output_tokens", nullptr);
  e["parallel_tool_calls"] = given("parallel_tool_calls", true);
  e["previous_response_id"] = given("previous_response_id", nullptr);
  ojson reasoning = {{"effort", nullptr}, {"summary", nullptr}};
  const ojson r = given("reasoning", ojson::object());
  for (auto& [k, v] : r.items()) reasoning[k] = v;
  e["reasoning"] = std::move(reasoning);
  e["service_tier"] = "default";
  e["store"] = given("store", true);
  e["temperature"] = given("temperature", 1.0);
  ojson text = {{"format", {{"type", "text"}}}, {"verbosity", "medium"}};
  const ojson t = given("text", ojson::object());
  for (auto& [k, v] : t.items()) text[k] = v;
  e["text"] = std::move(text);
  e["tool_choice"] = given("tool_choice", "auto");
  e["tools"] = given("tools", ojson::array());
  e["top_p"] = given("top_p", 1.0);
  e["truncation"] = "disabled";
  e["user"] = given("user", nullptr);
  e["metadata"] = metadata.is_null() ? ojson::object() : metadata;
  return e;
}

// The conversation: the previous response's input and output items, then this input.
ojson conversation(const json& body, const ValidationContext& ctx, ResponsesStore& store,
                   ResponsesRequest& r) {
  ojson items = ojson::array();
  if (auto prev = get_string(body, "previous_response_id")) {
    r.previous_response_id = *prev;
    const auto stored = store.get(*prev);
    if (!stored)
      throw ApiError(400, fmt::format("Previous response with id '{}' not found.", *prev),
                     "invalid_request_error", "previous_response_id",
                     "previous_response_not_found");
    items = stored->input_items;
    for (const auto& o : stored->response["output"]) items.push_back(o);
  }
  const bool takes_images = ctx.generator && ctx.generator->image_processor();
  const ojson input = input_items(body, ctx.limits.max_messages);
  for (size_t i = 0; i < input.size(); ++i) {
    const ojson& it = input[i];
    // A model without images refuses input_image here, where the part is named as sent.
    if (!takes_images && it.contains("content") && it["content"].is_array()) {
      for (size_t j = 0; j < it["content"].size(); ++j) {
        if (it["content"][j].value("type", "") == "input_image")
          throw bad_param(fmt::format("input[{}].content[{}].type", i, j),
                          fmt::format("Invalid value: 'input_image'. Images are not supported by "
                                      "this model (only 'input_text')."));
      }
    }
    items.push_back(it);
  }
  if (items.size() > ctx.limits.max_messages)
    throw bad_param("input", fmt::format("Invalid 'input': the conversation has {} items, more "
                                         "than the server's limit of {}.",
                                         items.size(), ctx.limits.max_messages));
  return items;
}

}  // namespace

ojson items_to_messages(const ojson& items, const std::string& param) {
  ojson messages = ojson::array();
  std::map<std::string, std::string> names;  // call_id -> function name
  for (size_t i = 0; i < items.size(); ++i) {
    const json it = json::parse(items[i].dump());
    const std::string p = fmt::format("{}[{}]", param, i);
    const std::string type = it.value("type", "message");
    if (type == "message") {
      const std::string role = it["role"].get<std::string>();
      messages.push_back({{"role", role}, {"content", chat_content(it["content"], p)}});
    } else if (type == "function_call") {
      ojson call = {{"id", it["call_id"]},
                    {"type", "function"},
                    {"function", {{"name", it["name"]}, {"arguments", it["arguments"]}}}};
      names[it["call_id"].get<std::string>()] = it["name"].get<std::string>();
      // Calls that follow an assistant message (or each other) belong to that message.
      if (!messages.empty() && messages.back()["role"] == "assistant") {
        ojson& last = messages.back();
        if (!last.contains("tool_calls")) last["tool_calls"] = ojson::array();
        last["tool_calls"].push_back(std::move(call));
      } else {
        messages.push_back(
            {{"role", "assistant"}, {"content", ""}, {"tool_calls", ojson::array({call})}});
      }
    } else if (type == "function_call_output") {
      const std::string id = it["call_id"].get<std::string>();
      ojson m = {{"role", "tool"},
                 {"tool_call_id", id},
                 {"content", parts_text(it["output"], p + ".output", {"input_text"})}};
      if (auto n = names.find(id); n != names.end()) m["name"] = n->second;
      messages.push_back(std::move(m));
    }
    // reasoning items: not sent back to the model.
  }
  return messages;
}

ResponsesRequest parse_responses_request(const json& body, const ValidationContext& ctx,
                                         ResponsesStore& store) {
  check_fields(body);
  std::optional<ojson> ordered;
  if (!ctx.raw_body.empty()) {
    try {
      ordered = ojson::parse(ctx.raw_body);
    } catch (const std::exception&) {
    }
  }
  const ojson* o = ordered ? &*ordered : nullptr;
  ResponsesRequest r;
  const ojson metadata = metadata_of(body);
  r.store = get_bool(body, "store").value_or(true);
  r.input_items = conversation(body, ctx, store, r);

  ojson chat = ojson::object();
  if (const json* m = find_field(body, "model")) chat["model"] = ojson::parse(m->dump());
  ojson messages = ojson::array();
  if (auto ins = get_string(body, "instructions"); ins && !ins->empty())
    messages.push_back({{"role", "system"}, {"content", *ins}});
  for (auto& m : items_to_messages(r.input_items, "input")) messages.push_back(std::move(m));
  if (messages.empty()) throw bad_param("input", "Invalid 'input': no messages to respond to.");
  chat["messages"] = std::move(messages);
  for (auto [from, to] : {std::pair{"max_output_tokens", "max_tokens"},
                          {"temperature", "temperature"},
                          {"top_p", "top_p"},
                          {"user", "user"},
                          {"parallel_tool_calls", "parallel_tool_calls"},
                          {"stream", "stream"}})
    if (const json* v = find_field(body, from)) chat[to] = ojson::parse(v->dump());
  if (const json* t = find_field(body, "tools")) chat["tools"] = chat_tools(*t, o);
  if (const json* tc = find_field(body, "tool_choice")) chat["tool_choice"] = chat_tool_choice(*tc);
  if (const json* t = find_field(body, "text")) {
    if (ojson rf = response_format(*t, o); !rf.is_null()) chat["response_format"] = std::move(rf);
  }
  if (const json* rs = find_field(body, "reasoning")) {
    if (ojson kw = reasoning_kwargs(*rs, ctx.parsing); !kw.is_null())
      chat["chat_template_kwargs"] = std::move(kw);
  }

  const std::string text = chat.dump();
  ValidationContext cctx = ctx;
  cctx.raw_body = text;
  try {
    r.chat = parse_completion_request(json::parse(text), true, cctx);
  } catch (const ApiError& e) {
    throw renamed(e);
  }
  // The engine's compile error for the constraint names the Responses field.
  if (r.chat.constraint_param == "response_format") r.chat.constraint_param = "text.format";
  r.echo = echo_fields(body, o, metadata);
  return r;
}

}  // namespace inferd::server
