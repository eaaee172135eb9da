// The prompt of a chat request: messages, tools, the chat template.
#include "server/chat_request.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "media/image_hash.h"
#include "media/image_prompt.h"
#include "server/tool_request.h"

namespace inferd::server {

namespace {

// Where the images of a chat request go: the generator's image processor, the limits, and the
// request's list (null `out`: the endpoint takes no images).
struct ImageSink {
  const Generator* gen = nullptr;
  const MediaLimits* limits = nullptr;
  std::vector<media::PixelValues>* out = nullptr;
  std::string model;  // the request's model, named when it takes no images
};

// The url of an image_url part (OpenAI's {"url": ...}; a bare string as vLLM also takes).
const std::string& image_url_of(const json& part, const std::string& pp) {
  const json* iu = find_field(part, "image_url");
  if (!iu)
    throw bad_param(pp + ".image_url",
                    fmt::format("Missing required parameter: '{}.image_url'.", pp));
  if (iu->is_string()) return iu->get_ref<const std::string&>();
  if (!iu->is_object()) wrong_type(pp + ".image_url", "an object with a 'url'", *iu);
  const json* url = find_field(*iu, "url");
  if (!url)
    throw bad_param(pp + ".image_url.url",
                    fmt::format("Missing required parameter: '{}.image_url.url'.", pp));
  if (!url->is_string()) wrong_type(pp + ".image_url.url", "a string", *url);
  if (const json* d = find_field(*iu, "detail"); d && !d->is_null() && !d->is_string())
    wrong_type(pp + ".image_url.detail", "a string", *d);
  return url->get_ref<const std::string&>();
}

// An image part: fetched or decoded from its data URL, checked and preprocessed into sink.out.
void take_image(const json& part, const std::string& pp, const ImageSink& sink) {
  const std::string& url = image_url_of(part, pp);
  const media::ImageProcessor* proc = sink.gen ? sink.gen->image_processor() : nullptr;
  if (!sink.out || !proc)
    throw bad_param(
        pp + ".type",
        fmt::format("Invalid '{}.type': content parts of type 'image_url' are not "
                    "supported by {} (only 'text'){}.",
                    pp, sink.out ? "this model" : "this endpoint",
                    sink.out ? fmt::format(": model '{}' takes no images", sink.model) : ""));
  if (sink.out->size() >= sink.limits->max_images)
    throw bad_param(pp, fmt::format("Invalid '{}': more than {} images in one request "
                                    "(--max-images-per-request, --limit-mm-per-prompt).",
                                    pp, sink.limits->max_images));
  try {
    const std::vector<uint8_t> bytes =
        media::load_media_bytes(url, sink.limits->fetch, pp + ".image_url.url");
    sink.out->push_back(proc->preprocess(media::decode_image(bytes, pp, sink.limits->decode)));
  } catch (const Error& e) {
    throw bad_param(pp + ".image_url", fmt::format("Invalid image: {}", e.what()));
  }
}

// A message's content as the template takes it: a string (text parts joined by newlines), or,
// when it has images, its parts in order as {"type": "image"} and {"type": "text", "text": ...}
// (what Gemma 3's and Qwen2-VL's templates iterate over).
ojson content_value(const json& content, const std::string& param, const ImageSink& sink) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, "a string or an array of content parts", content);
  std::string text;
  ojson parts = ojson::array();
  bool images = false;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string pp = fmt::format("{}[{}]", param, j);
    if (!part.is_object()) wrong_type(pp, "an object", part);
    const json* type = find_field(part, "type");
    if (!type || !type->is_string())
      throw bad_param(pp + ".type", fmt::format("Missing or invalid '{}.type'.", pp));
    const std::string t = type->get<std::string>();
    if (t == "image_url") {
      take_image(part, pp, sink);
      parts.push_back({{"type", "image"}});
      images = true;
      continue;
    }
    if (t != "text")
      throw bad_param(pp + ".type",
                      fmt::format("Invalid '{}.type': content parts of type '{}' are not "
                                  "supported (expected 'text' or 'image_url').",
                                  pp, t));
    const json* tx = find_field(part, "text");
    if (!tx || !tx->is_string()) {
      if (!tx)
        throw bad_param(pp + ".text", fmt::format("Missing required parameter: '{}.text'.", pp));
      wrong_type(pp + ".text", "a string", *tx);
    }
    parts.push_back({{"type", "text"}, {"text", tx->get<std::string>()}});
    if (!text.empty()) text += "\n";
    text += tx->get<std::string>();
  }
  if (images) return parts;
  return text;
}

// An assistant message's tool calls, checked, with their arguments as a mapping (templates expect
// one; OpenAI sends a JSON string).
ojson normalize_tool_calls(const json& tool_calls, const std::string& p) {
  if (!tool_calls.is_array()) wrong_type(p + ".tool_calls", "an array", tool_calls);
  ojson calls = ojson::array();
  for (size_t j = 0; j < tool_calls.size(); ++j) {
    const json& c = tool_calls[j];
    const std::string pc = fmt::format("{}.tool_calls[{}]", p, j);
    if (!c.is_object()) wrong_type(pc, "an object", c);
    const json* fn = &function_of(c, pc);
    if (const json* a = find_field(*fn, "arguments"); a && !a->is_string() && !a->is_object())
      wrong_type(pc + ".function.arguments", "a string", *a);
    if (const json* id = find_field(c, "id"); id && !id->is_string())
      wrong_type(pc + ".id", "a string", *id);
    ojson oc = ojson::parse(c.dump());
    if (oc.contains("function") && oc["function"].is_object() &&
        oc["function"].contains("arguments") && oc["function"]["arguments"].is_string()) {
      try {
        oc["function"]["arguments"] = ojson::parse(oc["function"]["arguments"].get<std::string>());
      } catch (const std::exception&) {
      }
    }
    calls.push_back(std::move(oc));
  }
  return calls;
}

// messages[i] (named `p`), checked, as the template expects it.
ojson normalize_message(const json& m, const std::string& p, const ImageSink& sink) {
  static const char* kRoles[] = {"system", "developer", "user", "assistant", "tool", "function"};
  if (!m.is_object()) wrong_type(p, "an object", m);
  const json* role = find_field(m, "role");
  if (!role) throw bad_param(p + ".role", fmt::format("Missing required parameter: '{}.role'.", p));
  if (!role->is_string()) wrong_type(p + ".role", "a string", *role);
  const std::string r = role->get<std::string>();
  if (std::find_if(std::begin(kRoles), std::end(kRoles), [&](const char* k) { return r == k; }) ==
      std::end(kRoles))
    throw bad_param(p + ".role", fmt::format("Invalid value: '{}'. Supported values are: 'system', "
                                             "'developer', 'user', 'assistant', 'tool' and "
                                             "'function'.",
                                             r));
  ojson om = ojson::object();
  om["role"] = r == "developer" ? "system" : r;
  const json* content = find_field(m, "content");
  const json* tool_calls = find_field(m, "tool_calls");
  if (!content) {
    if (r != "assistant" || !tool_calls)
      throw bad_param(p + ".content", fmt::format("Missing required parameter: '{}.content'.", p));
    // An assistant turn of tool calls only: empty text, as vLLM renders it (templates such as
    // Qwen3's test `'</think>' in message.content`, which fails on none).
    om["content"] = "";
  } else {
    om["content"] = content_value(*content, p + ".content", sink);
  }
  if (const json* name = find_field(m, "name")) {
    if (!name->is_string()) wrong_type(p + ".name", "a string", *name);
    om["name"] = *name;
  }
  if (tool_calls) om["tool_calls"] = normalize_tool_calls(*tool_calls, p);
  if (const json* id = find_field(m, "tool_call_id")) {
    if (!id->is_string()) wrong_type(p + ".tool_call_id", "a string", *id);
    om["tool_call_id"] = *id;
  }
  return om;
}

// The chat template's options: add_generation_prompt, continue_final_message,
// chat_template_kwargs.
void template_options(const json& body, ChatTemplateArgs& args) {
  if (auto v = get_bool(body, "add_generation_prompt")) args.add_generation_prompt = *v;
  if (auto v = get_bool(body, "continue_final_message")) args.continue_final_message = *v;
  if (args.continue_final_message && args.add_generation_prompt &&
      find_field(body, "add_generation_prompt"))
    throw bad_param("continue_final_message",
                    "Invalid 'continue_final_message': cannot be used together with "
                    "add_generation_prompt.");
  if (args.continue_final_message) args.add_generation_prompt = false;
  if (const json* kw = find_field(body, "chat_template_kwargs")) {
    if (!kw->is_object()) wrong_type("chat_template_kwargs", "an object", *kw);
    args.kwargs = ojson::parse(kw->dump());
  }
  // vLLM's documents (RAG): the template's `documents` variable, as transformers passes them.
  if (const json* docs = find_field(body, "documents"); docs && !docs->is_null()) {
    if (!docs->is_array()) wrong_type("documents", "an array of objects", *docs);
    for (size_t i = 0; i < docs->size(); ++i)
      if (!(*docs)[i].is_object())
        wrong_type(fmt::format("documents[{}]", i), "an object", (*docs)[i]);
    args.kwargs["documents"] = ojson::parse(docs->dump());
  }
}

// A request's own chat_template (Jinja text), as vLLM: only when the server trusts it.
void request_template(const json& body, bool trusted, ChatTemplateArgs& args) {
  const json* t = find_field(body, "chat_template");
  if (!t || t->is_null()) return;
  if (!t->is_string()) wrong_type("chat_template", "a string", *t);
  if (!trusted)
    throw bad_param("chat_template",
                    "Chat template is passed with request, but --trust-request-chat-template is "
                    "not set. Refused request with untrusted chat template.");
  if (t->get_ref<const std::string&>().empty())
    throw bad_param("chat_template", "Invalid 'chat_template': empty string.");
  args.template_text = t->get<std::string>();
}

// Chat `echo`, as vLLM: the last message's content when its role is the one the answer takes:
// the assistant's with add_generation_prompt, else its own (normalize_messages joined its parts).
std::string echo_text(const ChatTemplateArgs& args) {
  const ojson& last = args.messages.back();
  if (args.add_generation_prompt && last.value("role", "") != "assistant") return "";
  const auto content = last.find("content");
  return content != last.end() && content->is_string() ? content->get<std::string>() : "";
}

std::string render_template(const Generator& gen, const ChatTemplateArgs& args) {
  try {
    return gen.apply_chat_template(args);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw bad_param("messages",
                    fmt::format("The chat template failed on these messages: {}", e.what()));
  }
}

// The reasoning parser splits the output; a constraint starts after the reasoning unless the
// prompt already closed it (Qwen3's enable_thinking=false).
void start_reasoning(const std::string& prompt, ReasoningFormat format, const Generator& gen,
                     CompletionRequest& r) {
  const PromptReasoning pr = prompt_reasoning(prompt);
  r.output.reasoning = format;
  r.output.starts_in_reasoning = starts_in_reasoning(format, pr);
  if (format == ReasoningFormat::kGptOss) return;  // (constraints apply from the first token)
  if (r.params.structured_outputs && pr != PromptReasoning::kClosed) {
    const std::vector<int32_t> close =
        encode_checked(gen, std::string(kThinkClose), false, "messages");
    if (close.size() == 1) r.params.structured_outputs->start_after_token = close[0];
  }
}

}  // namespace

std::vector<int32_t> encode_checked(const Generator& gen, const std::string& text, bool special,
                                    const char* param) {
  try {
    return gen.encode(text, special);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw bad_param(param, fmt::format("Invalid '{}': {}", param, e.what()));
  }
}

namespace {

// The placeholders of the rendered prompt expanded into each image's tokens (as the model's HF
// processor does), the prompt tokenized, and each image's run of image tokens found: its span.
void place_images(const Generator& gen, std::string& text, bool add_special, CompletionRequest& r) {
  const media::ImagePromptFormat* f = gen.image_prompt_format();
  if (f == nullptr) {  // a generator that places no images (test fakes): the text as rendered
    r.prompts.push_back(encode_checked(gen, text, add_special, "messages"));
    return;
  }
  try {
    text = media::expand_image_placeholders(text, r.images, *f, "the rendered chat template");
  } catch (const Error& e) {
    throw bad_param("messages", fmt::format("Invalid 'messages': {}", e.what()));
  }
  std::vector<int32_t> ids = encode_checked(gen, text, add_special, "messages");
  const std::vector<int32_t> tok = encode_checked(gen, f->image_token(), false, "messages");
  INFERD_CHECK(tok.size() == 1, "the image token '{}' is {} tokens", f->image_token(), tok.size());
  size_t i = 0;
  for (size_t k = 0; k < r.images.size(); ++k) {
    while (i < ids.size() && ids[i] != tok[0]) ++i;
    size_t e = i;
    while (e < ids.size() && ids[e] == tok[0]) ++e;
    const int64_t want = f->tokens_for(r.images[k]);
    if (int64_t(e - i) != want)
      throw bad_param("messages",
                      fmt::format("Invalid 'messages': image {} takes {} '{}' tokens in the "
                                  "tokenized prompt where {} were expected (the text holds image "
                                  "tokens of its own?)",
                                  k, e - i, f->image_token(), want));
    ImageInput in;
    in.position = int32_t(i);
    in.num_tokens = int32_t(want);
    in.pixels = std::make_shared<const media::PixelValues>(r.images[k]);
    in.hash = media::image_hash(*in.pixels);
    r.image_inputs.push_back(std::move(in));
    i = e;
  }
  while (i < ids.size() && ids[i] != tok[0]) ++i;
  if (i < ids.size())
    throw bad_param("messages", fmt::format("Invalid 'messages': the prompt holds more '{}' "
                                            "tokens than its {} image(s) take",
                                            f->image_token(), r.images.size()));
  r.prompts.push_back(std::move(ids));
}

ojson normalize_all(const json& messages, size_t max_messages, const ImageSink& sink) {
  if (!messages.is_array()) wrong_type("messages", "an array", messages);
  if (messages.empty())
    throw bad_param("messages",
                    "Invalid 'messages': empty array. Expected an array with minimum "
                    "length 1, but got an empty array instead.");
  if (messages.size() > max_messages)
    throw bad_param("messages", fmt::format("Invalid 'messages': array too long. Expected an array "
                                            "with maximum length {}, but got an array with length "
                                            "{} instead.",
                                            max_messages, messages.size()));
  ojson out = ojson::array();
  for (size_t i = 0; i < messages.size(); ++i)
    out.push_back(normalize_message(messages[i], fmt::format("messages[{}]", i), sink));
  return out;
}

}  // namespace

ojson normalize_messages(const json& messages, size_t max_messages) {
  return normalize_all(messages, max_messages, ImageSink{});
}

void parse_chat_prompt(const json& body, const ojson* ordered, const ValidationContext& ctx,
                       CompletionRequest& r) {
  const Generator& gen = *ctx.generator;
  const json* msgs = find_field(body, "messages");
  if (!msgs) throw bad_param("messages", "Missing required parameter: 'messages'.");
  ChatTemplateArgs args;
  args.messages = normalize_all(*msgs, ctx.limits.max_messages,
                                ImageSink{ctx.generator, &ctx.media, &r.images, r.model});
  const std::vector<ToolSpec> tools = parse_tools(body, ordered, ctx.limits, args.tools);
  apply_tool_choice(body, tools, ctx.parsing, gen, r, args);
  template_options(body, args);
  request_template(body, ctx.trust_request_chat_template, args);
  const bool add_special = get_bool(body, "add_special_tokens").value_or(false);
  std::string text = render_template(gen, args);
  if (get_bool(body, "echo").value_or(false)) r.chat_echo = echo_text(args);
  if (r.images.empty()) {
    r.prompts.push_back(encode_checked(gen, text, add_special, "messages"));
  } else {
    place_images(gen, text, add_special, r);
  }
  if (ctx.parsing.reasoning_parser) start_reasoning(text, *ctx.parsing.reasoning_parser, gen, r);
  // Harmony's channel markers are special tokens: keep them in the text the parser reads.
  if (ctx.parsing.reasoning_parser == ReasoningFormat::kGptOss &&
      !find_field(body, "skip_special_tokens"))
    r.params.skip_special_tokens = false;
  r.prompt_texts.push_back(std::move(text));
}

}  // namespace inferd::server
