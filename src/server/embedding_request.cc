// /v1/embeddings bodies into an EmbeddingRequest: the inputs (text, token ids, a batch of either,
// or vLLM's chat `messages`), truncation, the pooling options, the encoding of the answer.
#include "server/embedding_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>

#include "inferd/request_validation.h"
#include "media/image_source.h"
#include "server/chat_request.h"

namespace inferd::server {

namespace {

constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// The fields this route reads; any other is a 400 naming it.
constexpr std::array kKnownFields = {"input",
                                     "model",
                                     "encoding_format",
                                     "dimensions",
                                     "user",
                                     "truncate_prompt_tokens",
                                     "truncation_side",
                                     "add_special_tokens",
                                     "normalize",
                                     "use_activation",
                                     "priority",
                                     "messages",
                                     "add_generation_prompt",
                                     "continue_final_message",
                                     "chat_template_kwargs",
                                     "embed_dtype",
                                     "endianness"};
// vLLM's fields this server does not implement: a 400 saying so (when set).
constexpr std::array kUnsupportedFields = {"chat_template", "mm_processor_kwargs",
                                           "media_io_kwargs", "cache_salt", "request_id"};

void check_fields(const json& body) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    if (std::find(kKnownFields.begin(), kKnownFields.end(), k) != kKnownFields.end()) continue;
    if (std::find(kUnsupportedFields.begin(), kUnsupportedFields.end(), k) !=
        kUnsupportedFields.end()) {
      if (it->is_null()) continue;
      throw bad_param(k, fmt::format("Invalid '{}': not supported by this server.", k));
    }
    if (k == "padding") {  // vLLM's; only the default is supported
      if (it->is_null() || (it->is_string() && it->get<std::string>() == "do_not_pad")) continue;
      throw bad_param(k, "Invalid 'padding': only 'do_not_pad' is supported by this server.");
    }
    throw bad_param(k, fmt::format("Unrecognized request argument supplied: {}", k));
  }
}

// encoding_format, embed_dtype, endianness.
void encoding(const json& body, EmbeddingRequest& r) {
  if (auto f = get_string(body, "encoding_format")) {
    if (*f == "base64")
      r.base64 = true;
    else if (*f != "float")
      throw bad_param("encoding_format",
                      fmt::format("Invalid value for 'encoding_format': '{}'. Supported values "
                                  "are: 'float' and 'base64'.",
                                  *f));
  }
  if (auto d = get_string(body, "embed_dtype"); d && *d != "float32")
    throw bad_param("embed_dtype", fmt::format("Invalid value for 'embed_dtype': '{}'. Only "
                                               "'float32' is supported by this server.",
                                               *d));
  if (auto e = get_string(body, "endianness")) {
    if (*e == "big")
      r.big_endian = true;
    else if (*e != "native" && *e != "little")
      throw bad_param("endianness", fmt::format("Invalid value for 'endianness': '{}'. Supported "
                                                "values are: 'native', 'little' and 'big'.",
                                                *e));
  }
}

// dimensions (Matryoshka models only, and only the sizes the model lists), normalize /
// use_activation (vLLM's older and newer names of one switch).
void pooling_fields(const json& body, const std::string& model, const Generator& gen,
                    EmbeddingRequest& r) {
  if (auto d = get_int(body, "dimensions", kInt32Min, kInt32Max)) {
    const EngineConfig::Pooling pool = gen.pooling();
    if (!pool.matryoshka)
      throw bad_param("dimensions",
                      fmt::format("Model \"{}\" does not support matryoshka representation, "
                                  "changing output dimensions will lead to poor results.",
                                  model));
    if (*d < 1)
      throw bad_param("dimensions", fmt::format("Invalid 'dimensions': expected a value >= 1, "
                                                "but got {} instead.",
                                                *d));
    if (!pool.dimensions.empty() && std::find(pool.dimensions.begin(), pool.dimensions.end(),
                                              int32_t(*d)) == pool.dimensions.end())
      throw bad_param("dimensions",
                      fmt::format("Model \"{}\" only supports [{}] matryoshka dimensions, got {}; "
                                  "other output dimensions will lead to poor results.",
                                  model, fmt::join(pool.dimensions, ", "), *d));
    r.pooling.dimensions = int32_t(*d);
  }
  const std::optional<bool> normalize = get_bool(body, "normalize");
  const std::optional<bool> activation = get_bool(body, "use_activation");
  if (normalize && activation && *normalize != *activation)
    throw bad_param("use_activation",
                    "Invalid 'use_activation': 'normalize' and 'use_activation' are the same "
                    "switch and were given different values.");
  r.pooling.normalize = normalize ? normalize : activation;
}

// truncate_prompt_tokens (-1: max_model_len; k: keep k tokens) and truncation_side ("left", the
// default, keeps the last k as vLLM documents; "right" the first k). 0 when not asked.
struct Truncation {
  int32_t keep = 0;
  bool keep_first = false;
};

Truncation truncation(const json& body, int32_t max_model_len) {
  Truncation t;
  if (auto k = get_int(body, "truncate_prompt_tokens", -1, kInt32Max)) {
    if (*k == 0)
      throw bad_param("truncate_prompt_tokens",
                      "Invalid 'truncate_prompt_tokens': expected -1 (the model's maximum "
                      "length) or a number of tokens >= 1, but got 0 instead.");
    if (*k > max_model_len)
      throw bad_param("truncate_prompt_tokens",
                      fmt::format("Invalid 'truncate_prompt_tokens': {} is more than the model's "
                                  "maximum context length ({} tokens).",
                                  *k, max_model_len));
    t.keep = *k == -1 ? max_model_len : int32_t(*k);
  }
  if (auto side = get_string(body, "truncation_side")) {
    if (*side != "left" && *side != "right")
      throw bad_param("truncation_side",
                      fmt::format("Invalid value for 'truncation_side': '{}'. Supported values "
                                  "are: 'left' and 'right'.",
                                  *side));
    t.keep_first = *side == "right";
  }
  return t;
}

// One input as token ids; `param` names it in errors ("input", "input[3]").
struct InputSource {
  std::string param;
  bool ids = false;  // given as token ids (their text is decoded for the log)
};

// input: a string, an array of strings, an array of token ids, or an array of arrays of them.
std::vector<InputSource> text_or_token_inputs(const json& in, const Generator& gen,
                                              bool add_special, EmbeddingRequest& r) {
  std::vector<InputSource> src;
  auto add_text = [&](const json& v, const std::string& param) {
    const std::string text = nonempty_string(v, param);
    r.inputs.push_back(encode_checked(gen, text, add_special, "input"));
    r.input_texts.push_back(text);
    src.push_back({param, false});
  };
  auto add_ids = [&](const json& v, const std::string& param) {
    if (v.empty())
      throw bad_param(param, fmt::format("Invalid '{}': empty array of token ids.", param));
    r.inputs.push_back(int32_list(v, param));
    r.input_texts.emplace_back();
    src.push_back({param, true});
  };
  if (in.is_string()) {
    add_text(in, "input");
    return src;
  }
  if (!in.is_array())
    wrong_type("input", "a string, an array of strings or an array of token ids", in);
  if (in.empty())
    throw bad_param("input",
                    "Invalid 'input': empty array. Expected an array with minimum length 1, but "
                    "got an empty array instead.");
  const json& first = in[0];
  if (first.is_number()) {
    add_ids(in, "input");
    return src;
  }
  if (in.size() > kMaxEmbeddingInputs)
    throw bad_param("input",
                    fmt::format("Invalid 'input': array too long. Expected an array with maximum "
                                "length {}, but got an array with length {} instead.",
                                kMaxEmbeddingInputs, in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string p = fmt::format("input[{}]", i);
    if (first.is_string())
      add_text(in[i], p);
    else if (first.is_array() && in[i].is_array())
      add_ids(in[i], p);
    else if (first.is_array())
      wrong_type(p, "an array of token ids", in[i]);
    else
      wrong_type(p, "a string, a token id or an array of token ids", in[i]);
  }
  return src;
}

// vLLM's chat-style input: `messages` rendered by the chat template (no generation prompt unless
// asked; the template adds the special tokens unless add_special_tokens).
std::vector<InputSource> chat_input(const json& body, const ValidationContext& ctx,
                                    EmbeddingRequest& r) {
  const Generator& gen = *ctx.generator;
  ChatTemplateArgs args;
  args.messages = normalize_messages(*find_field(body, "messages"), ctx.limits.max_messages);
  args.add_generation_prompt = get_bool(body, "add_generation_prompt").value_or(false);
  args.continue_final_message = get_bool(body, "continue_final_message").value_or(false);
  if (args.continue_final_message && args.add_generation_prompt)
    throw bad_param("continue_final_message",
                    "Invalid 'continue_final_message': cannot be used together with "
                    "add_generation_prompt.");
  if (const json* kw = find_field(body, "chat_template_kwargs")) {
    if (!kw->is_object()) wrong_type("chat_template_kwargs", "an object", *kw);
    args.kwargs = ojson::parse(kw->dump());
  }
  std::string text;
  try {
    text = gen.apply_chat_template(args);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw bad_param("messages",
                    fmt::format("The chat template failed on these messages: {}", e.what()));
  }
  r.inputs.push_back(
      encode_checked(gen, text, get_bool(body, "add_special_tokens").value_or(false), "messages"));
  r.input_texts.push_back(std::move(text));
  return {{"messages", false}};
}

// Truncation, then each input checked: not empty, ids inside the vocabulary, within
// max_model_len.
void check_inputs(const std::vector<InputSource>& src, const Truncation& t, const Generator& gen,
                  EmbeddingRequest& r) {
  const int32_t max_len = gen.max_model_len();
  const int32_t vocab = gen.vocab_size();
  for (size_t k = 0; k < r.inputs.size(); ++k) {
    std::vector<int32_t>& ids = r.inputs[k];
    const std::string& p = src[k].param;
    if (t.keep > 0 && int32_t(ids.size()) > t.keep) {
      if (t.keep_first)
        ids.resize(size_t(t.keep));
      else
        ids.erase(ids.begin(), ids.end() - t.keep);
    }
    if (ids.empty()) throw bad_param(p, fmt::format("Invalid '{}': the input has no tokens.", p));
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= vocab)
        throw bad_param(
            src[k].ids ? fmt::format("{}[{}]", p, i) : p,
            fmt::format("Invalid '{}': token id {} is outside the vocabulary "
                        "(0..{}).",
                        src[k].ids ? fmt::format("{}[{}]", p, i) : p, ids[i], vocab - 1));
    if (int64_t(ids.size()) > max_len)
      throw ApiError(400,
                     fmt::format("This model's maximum context length is {} tokens. However, "
                                 "'{}' has {} tokens. Please reduce the length of the input, or "
                                 "set truncate_prompt_tokens.",
                                 max_len, p, ids.size()),
                     "invalid_request_error", p, kContextLengthExceeded);
    if (src[k].ids) r.input_texts[k] = gen.decode(ids, false);
  }
}

}  // namespace

EmbeddingRequest parse_embedding_request(const json& body, const ValidationContext& ctx) {
  const Generator& gen = *ctx.generator;
  check_fields(body);
  EmbeddingRequest r;
  r.model = request_model_name(body, ctx);
  if (ctx.lora && ctx.lora->id_of(r.model) >= 0)
    throw bad_param("model", fmt::format("The model `{}` is a LoRA adapter: embeddings come from "
                                         "the base model only.",
                                         r.model));
  encoding(body, r);
  pooling_fields(body, r.model, gen, r);
  if (auto v = get_string(body, "user")) r.user = *v;
  if (auto v = get_int(body, "priority", kInt32Min, kInt32Max)) r.priority = int32_t(*v);
  const Truncation t = truncation(body, gen.max_model_len());
  const json* in = find_field(body, "input");
  const json* msgs = find_field(body, "messages");
  std::vector<InputSource> src;
  if (in && msgs)
    throw bad_param("messages", "Invalid 'messages': give either 'input' or 'messages', not both.");
  if (msgs) {
    src = chat_input(body, ctx, r);
  } else {
    if (!in) throw bad_param("input", "Missing required parameter: 'input'.");
    for (const char* chat_only :
         {"add_generation_prompt", "continue_final_message", "chat_template_kwargs"})
      if (find_field(body, chat_only))
        throw bad_param(chat_only,
                        fmt::format("Invalid '{}': only applies to 'messages' input.", chat_only));
    src = text_or_token_inputs(*in, gen, get_bool(body, "add_special_tokens").value_or(true), r);
  }
  check_inputs(src, t, gen, r);
  return r;
}

std::string embedding_base64(std::span<const float> v, bool big_endian) {
  std::vector<uint8_t> bytes(v.size() * 4);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint32_t u = std::bit_cast<uint32_t>(v[i]);
    for (int b = 0; b < 4; ++b) {
      const int shift = big_endian ? 8 * (3 - b) : 8 * b;
      bytes[i * 4 + size_t(b)] = uint8_t((u >> shift) & 0xff);
    }
  }
  return media::base64_encode(bytes);
}

}  // namespace inferd::server
