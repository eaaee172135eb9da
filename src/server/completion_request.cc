// /v1/completions and /v1/chat/completions bodies into a CompletionRequest: the model, streaming,
// the sampling parameters with OpenAI's and vLLM's names, stops, logprobs, the output constraint,
// the prompts (chat: chat_request.cc).
//
// What is checked where. Here: the JSON itself (types, integers that fit their int32 field, unknown
// or unsupported fields), OpenAI's own bounds (n <= 128, logit_bias values in [-100, 100];
// temperature is any value >= 0, as vLLM takes it), the sizes of RequestLimits, and fields that
// exist only in this API (best_of, stream_options, top_logprobs needing logprobs, suffix, echo,
// prompt_logprobs, tools). Everything the engine itself requires (ranges of the sampling
// parameters, token ids inside the vocabulary, logprobs within max_logprobs, min_tokens <=
// max_tokens, prompt + max_tokens within max_model_len) is the engine's validate_request
// (include/inferd/request_validation.h), run here before anything is submitted, its errors named by
// the body's fields.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <limits>

#include "inferd/request_validation.h"
#include "server/chat_request.h"
#include "server/protocol.h"

namespace inferd::server {

namespace {

constexpr size_t kMaxPrompts = 256;
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr double kNoBound = std::numeric_limits<double>::max();

// max_tokens, or (chat) max_completion_tokens, which takes precedence; `param` names the one given.
struct MaxTokens {
  std::optional<int64_t> value;
  std::string param = "max_tokens";
};

void streaming(const json& body, CompletionRequest& r) {
  r.stream = get_bool(body, "stream").value_or(false);
  if (const json* so = find_field(body, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    if (!r.stream)
      throw bad_param("stream_options",
                      "Invalid 'stream_options': stream_options can only be set when stream is "
                      "true.");
    if (auto v = get_bool(*so, "include_usage")) r.include_usage = *v;
    if (auto v = get_bool(*so, "continuous_usage_stats")) r.continuous_usage = *v;
  }
}

// n, best_of, temperature, top_p, top_k, min_p and the penalties: their types, and bounds where
// they are tighter than the engine's (n <= --max-n, 128 as OpenAI by default). temperature: any
// value >= 0 (vLLM; OpenAI stops at 2), the engine's check.
void sampling_fields(const json& body, int32_t vocab, const RequestLimits& lim,
                     SamplingParams& sp) {
  const int64_t n = get_int(body, "n", kInt32Min, kInt32Max).value_or(1);
  if (n > lim.max_n)
    throw bad_param("n", fmt::format("Invalid 'n': at most {} choices per request are allowed on "
                                     "this server (--max-n), got {}.",
                                     lim.max_n, n));
  sp.n = int32_t(n);
  if (const json* bo = find_field(body, "best_of")) {
    if (int_value(*bo, "best_of", 1, lim.max_n) != sp.n)
      throw bad_param("best_of", "Invalid 'best_of': only best_of equal to n is supported.");
  }
  if (auto t = get_number(body, "temperature", -kNoBound, kNoBound)) sp.temperature = float(*t);
  if (auto v = get_number(body, "top_p", -kNoBound, kNoBound)) sp.top_p = float(*v);
  // -1 (vLLM) and 0 both turn top_k off; more than the vocabulary keeps every token.
  if (auto k = get_int(body, "top_k", kInt32Min, kInt32Max))
    sp.top_k = *k == -1 ? 0 : int32_t(std::min<int64_t>(*k, vocab));
  if (auto v = get_number(body, "min_p", -kNoBound, kNoBound)) sp.min_p = float(*v);
  if (auto v = get_number(body, "repetition_penalty", -kNoBound, kNoBound))
    sp.repetition_penalty = float(*v);
  if (auto v = get_number(body, "presence_penalty", -kNoBound, kNoBound))
    sp.presence_penalty = float(*v);
  if (auto v = get_number(body, "frequency_penalty", -kNoBound, kNoBound))
    sp.frequency_penalty = float(*v);
}

// logit_bias: {"token id": bias in [-100, 100]} (the engine checks the ids against the vocabulary).
void logit_bias(const json& body, const RequestLimits& lim, SamplingParams& sp) {
  const json* lb = find_field(body, "logit_bias");
  if (!lb) return;
  if (!lb->is_object()) wrong_type("logit_bias", "an object", *lb);
  if (lb->size() > lim.max_logit_bias)
    throw bad_param("logit_bias", fmt::format("Invalid 'logit_bias': at most {} entries are "
                                              "allowed, got {}.",
                                              lim.max_logit_bias, lb->size()));
  for (auto it = lb->begin(); it != lb->end(); ++it) {
    const std::string& key = it.key();
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || key.empty() || id < kInt32Min || id > kInt32Max)
      throw bad_param("logit_bias", fmt::format("Invalid key in 'logit_bias': '{}' is not a "
                                                "token id.",
                                                key));
    if (!it.value().is_number())
      throw bad_param("logit_bias", fmt::format("Invalid value for 'logit_bias[{}]': expected a "
                                                "number, but got {} instead.",
                                                key, json_type_name(it.value())));
    const double b = it.value().get<double>();
    if (!(b >= -100 && b <= 100))
      throw bad_param("logit_bias", fmt::format("Invalid value for 'logit_bias[{}]': expected a "
                                                "value in [-100, 100], but got {} instead.",
                                                key, fmt_num(b)));
    sp.logit_bias.emplace_back(int32_t(id), float(b));
  }
}

void seed_field(const json& body, SamplingParams& sp) {
  if (const json* s = find_field(body, "seed")) {
    if (!is_integral(*s)) wrong_type("seed", "an integer", *s);
    sp.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(as_int(*s));
  }
}

// max_tokens beyond int32 saturates: no context holds it, and the engine's length check answers
// (quoting the value given).
MaxTokens max_tokens(const json& body, bool chat, SamplingParams& sp) {
  constexpr int64_t kAny = std::numeric_limits<int64_t>::max();
  MaxTokens mt;
  if (chat) {
    mt.value = get_int(body, "max_completion_tokens", kInt32Min, kAny);
    if (mt.value) mt.param = "max_completion_tokens";
  }
  if (!mt.value) mt.value = get_int(body, "max_tokens", kInt32Min, kAny);
  // Completions may ask for 0 (the prompt is only scored: echo + logprobs); chat may not (OpenAI).
  if (chat && mt.value && *mt.value < 1)
    throw bad_param(mt.param, fmt::format("Invalid '{}': integer below minimum value. Expected a "
                                          "value >= 1, but got {} instead.",
                                          mt.param, *mt.value));
  if (mt.value) sp.max_tokens = int32_t(std::min(*mt.value, kInt32Max));
  if (auto v = get_int(body, "min_tokens", kInt32Min, kInt32Max)) sp.min_tokens = int32_t(*v);
  return mt;
}

// stop (a string or an array of strings; empty ones are dropped), stop_token_ids and the flags
// around them.
void stop_fields(const json& body, const RequestLimits& lim, SamplingParams& sp) {
  if (const json* st = find_field(body, "stop")) {
    auto check_len = [&](const json& v, const std::string& param) {
      if (v.get_ref<const std::string&>().size() > lim.max_stop_bytes)
        throw bad_param(
            param, fmt::format("Invalid '{}': a stop sequence may be at most {} bytes, "
                               "got {}.",
                               param, lim.max_stop_bytes, v.get_ref<const std::string&>().size()));
    };
    if (st->is_string()) {
      check_len(*st, "stop");
      if (!st->get<std::string>().empty()) sp.stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      if (st->size() > lim.max_stop)
        throw bad_param("stop", fmt::format("Invalid 'stop': at most {} stop sequences are "
                                            "allowed, got {}.",
                                            lim.max_stop, st->size()));
      for (size_t i = 0; i < st->size(); ++i) {
        if (!(*st)[i].is_string()) wrong_type(fmt::format("stop[{}]", i), "a string", (*st)[i]);
        check_len((*st)[i], fmt::format("stop[{}]", i));
        if (!(*st)[i].get<std::string>().empty()) sp.stop.push_back((*st)[i].get<std::string>());
      }
    } else {
      wrong_type("stop", "a string or an array of strings", *st);
    }
  }
  if (const json* sti = find_field(body, "stop_token_ids")) {
    if (!sti->is_array()) wrong_type("stop_token_ids", "an array", *sti);
    sp.stop_token_ids = int32_list(*sti, "stop_token_ids");
  }
  if (auto v = get_bool(body, "include_stop_str_in_output")) sp.include_stop_str_in_output = *v;
  if (auto v = get_bool(body, "ignore_eos")) sp.ignore_eos = *v;
  if (auto v = get_bool(body, "skip_special_tokens")) sp.skip_special_tokens = *v;
  if (auto v = get_bool(body, "spaces_between_special_tokens"))
    sp.spaces_between_special_tokens = *v;
}

// Chat: logprobs (a boolean) and top_logprobs; completions: logprobs (a count), echo, suffix.
void logprobs_fields(const json& body, bool chat, CompletionRequest& r) {
  if (chat) {
    r.logprobs = get_bool(body, "logprobs").value_or(false);
    if (auto tl = get_int(body, "top_logprobs", kInt32Min, kInt32Max)) {
      if (!r.logprobs)
        throw bad_param("top_logprobs",
                        "Invalid 'top_logprobs': 'logprobs' must be set to true when "
                        "'top_logprobs' is used.");
      r.top_logprobs = int32_t(*tl);
    }
  } else {
    if (const json* lp = find_field(body, "logprobs")) {
      if (lp->is_boolean()) wrong_type("logprobs", "an integer", *lp);
      r.logprobs = true;
      r.top_logprobs = int32_t(int_value(*lp, "logprobs", kInt32Min, kInt32Max));
    }
    r.echo = get_bool(body, "echo").value_or(false);
    if (auto sfx = get_string(body, "suffix"); sfx && !sfx->empty())
      throw bad_param("suffix", "Invalid 'suffix': suffix is not supported by this model.");
  }
  if (r.logprobs) r.params.logprobs = r.top_logprobs;
  if (auto v = get_bool(body, "return_tokens_as_token_ids")) r.tokens_as_ids = *v;
  if (auto v = get_bool(body, "return_token_ids")) r.return_token_ids = *v;
  // vLLM's prompt_logprobs (-1, vLLM's "the whole vocabulary", is out of range here), and the
  // prompt's logprobs that echo + logprobs show (lm-evaluation-harness scores prompts so).
  if (auto pl = get_int(body, "prompt_logprobs", kInt32Min, kInt32Max)) {
    if (r.stream)
      throw bad_param("prompt_logprobs",
                      "Invalid 'prompt_logprobs': prompt logprobs are not available when "
                      "'stream' is true.");
    r.prompt_logprobs = int32_t(*pl);
    r.params.prompt_logprobs = r.prompt_logprobs;
  }
  if (r.echo && r.logprobs)
    r.params.prompt_logprobs = std::max(r.params.prompt_logprobs.value_or(0), r.top_logprobs);
}

// Fields of OpenAI's or vLLM's schema that would change the answer and that inferd does not do:
// each is a 400 naming it (rather than an answer that silently ignores it). A value that asks
// for nothing (null, false, [], {}, modalities ["text"], length_penalty 1) passes.
void refuse_unsupported(const json& body, bool chat) {
  struct Unsupported {
    const char* field;
    bool chat_only;
    const char* why;
  };
  static const Unsupported kFields[] = {
      {"functions", true, "the deprecated functions are not supported; use tools"},
      {"function_call", true, "the deprecated function_call is not supported; use tool_choice"},
      {"audio", true, "audio output is not supported"},
      {"modalities", true, "only the \"text\" modality is supported"},
      {"web_search_options", true, "web search is not supported"},
      {"reasoning_effort", true,
       "reasoning_effort is not supported; pass the model's own switch in chat_template_kwargs "
       "(for example {\"enable_thinking\": false})"},
      {"verbosity", true, "verbosity is not supported"},
      {"use_beam_search", false, "beam search is not supported"},
      {"length_penalty", false, "length_penalty applies to beam search, which is not supported"},
      {"bad_words", false, "bad_words is not supported; use logit_bias"},
      {"allowed_token_ids", false, "allowed_token_ids is not supported; use logit_bias"},
      {"logits_processors", false, "custom logits processors are not supported"},
      {"prompt_embeds", false, "prompt embeddings are not supported"},
      {"mm_processor_kwargs", false, "this server runs no multimodal model"},
      {"cache_salt", false, "cache_salt (prefix-cache isolation) is not supported"},
      {"kv_transfer_params", false, "KV-cache transfer is not supported"},
      {"vllm_xargs", false, "vllm_xargs is not supported"},
      {"guided_whitespace_pattern", false, "guided_whitespace_pattern is not supported"},
  };
  for (const Unsupported& u : kFields) {
    if (u.chat_only && !chat) continue;
    const json* v = find_field(body, u.field);
    if (!v || v->is_null() || (v->is_boolean() && !v->get<bool>()) ||
        ((v->is_array() || v->is_object()) && v->empty()))
      continue;
    const std::string f = u.field;
    if (f == "modalities" && *v == json::array({"text"})) continue;
    if (f == "length_penalty" && v->is_number() && v->get<double>() == 1.0) continue;
    throw bad_param(f, fmt::format("Invalid '{}': {}.", f, u.why));
  }
}

// vLLM's request_id: it becomes the answer's id and the X-Request-Id header, so it is kept to
// characters that are safe there.
std::string request_id_field(const json& body) {
  const std::optional<std::string> id = get_string(body, "request_id");
  if (!id) return {};
  const bool ok =
      !id->empty() && id->size() <= 128 && std::all_of(id->begin(), id->end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
               c == ':';
      });
  if (!ok)
    throw bad_param("request_id",
                    "Invalid 'request_id': expected 1 to 128 letters, digits or '-', '_', '.', "
                    "':'.");
  return *id;
}

// The body with the client's key order, when it has a schema or tools (they are generated in that
// order); nullopt otherwise.
std::optional<ojson> ordered_body(const json& body, const ValidationContext& ctx) {
  if (ctx.raw_body.empty() ||
      !(body.contains("response_format") || body.contains("structured_outputs") ||
        body.contains("guided_json") || body.contains("tools")))
    return std::nullopt;
  try {
    return ojson::parse(ctx.raw_body);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// prompt: a string, an array of strings, an array of token ids, or an array of those. Returns,
// per prompt, the field its token ids came from ("prompt", "prompt[k]"; empty for text); their
// text is decoded once the engine's validation has checked them (decode_token_prompts).
std::vector<std::string> completion_prompts(const json& body, const Generator& gen,
                                            const RequestLimits& lim, CompletionRequest& r) {
  const json* p = find_field(body, "prompt");
  if (!p) throw bad_param("prompt", "Missing required parameter: 'prompt'.");
  const bool add_special = get_bool(body, "add_special_tokens").value_or(true);
  std::vector<std::string> id_fields;
  auto add_text = [&](const std::string& s) {
    r.prompts.push_back(encode_checked(gen, s, add_special, "prompt"));
    r.prompt_texts.push_back(s);
    id_fields.emplace_back();
  };
  auto add_ids = [&](const json& v, const std::string& field) {
    r.prompts.push_back(int32_list(v, field));
    r.prompt_texts.emplace_back();
    id_fields.push_back(field);
  };
  if (p->is_string()) {
    add_text(p->get<std::string>());
  } else if (p->is_array()) {
    if (p->empty()) throw bad_param("prompt", "Invalid 'prompt': empty array.");
    if (p->size() > kMaxPrompts)
      throw bad_param("prompt", fmt::format("Invalid 'prompt': at most {} prompts per request, "
                                            "got {}.",
                                            kMaxPrompts, p->size()));
    const json& first = (*p)[0];
    if (first.is_string()) {
      for (size_t i = 0; i < p->size(); ++i) {
        if (!(*p)[i].is_string()) wrong_type(fmt::format("prompt[{}]", i), "a string", (*p)[i]);
        add_text((*p)[i].get<std::string>());
      }
    } else if (first.is_number()) {
      add_ids(*p, "prompt");
    } else if (first.is_array()) {
      for (size_t i = 0; i < p->size(); ++i) {
        const std::string pp = fmt::format("prompt[{}]", i);
        if (!(*p)[i].is_array()) wrong_type(pp, "an array of token ids", (*p)[i]);
        add_ids((*p)[i], pp);
      }
    } else {
      wrong_type("prompt[0]", "a string, a token id or an array of token ids", first);
    }
  } else {
    wrong_type("prompt", "a string or an array", *p);
  }
  if (int64_t(r.prompts.size()) * r.params.n > int64_t(lim.max_n) * 4)
    throw bad_param("n", fmt::format("Invalid 'n': {} prompts x n={} is more than {} "
                                     "completions in one request (4 x --max-n).",
                                     r.prompts.size(), r.params.n, int64_t(lim.max_n) * 4));
  return id_fields;
}

// Completions without max_tokens: 16, as OpenAI and vLLM (chat: up to the end of the context).
// Like vLLM, never past the context: a prompt within 16 tokens of max_model_len gets what is left
// (with several prompts, the least any of them has; a prompt with no room at all is the engine's
// context-length error).
void default_max_tokens(const Generator& gen, CompletionRequest& r) {
  constexpr int32_t kDefault = 16;
  int32_t room = kDefault;
  for (const auto& p : r.prompts) {
    const int64_t left = int64_t(gen.max_model_len()) - int64_t(p.size());
    if (left >= 1) room = int32_t(std::min<int64_t>(room, left));
  }
  r.params.max_tokens = room;
}

// vLLM's truncate_prompt_tokens: keep the last k tokens of each prompt (-1: max_model_len). The
// text of a cut prompt (echo, the log) becomes the text of what is kept.
void truncate_prompts(const json& body, const Generator& gen, CompletionRequest& r) {
  const std::optional<int64_t> k = get_int(body, "truncate_prompt_tokens", kInt32Min, kInt32Max);
  if (!k) return;
  const int64_t max_len = gen.max_model_len();
  if (*k < -1 || *k == 0)
    throw bad_param("truncate_prompt_tokens",
                    fmt::format("Invalid 'truncate_prompt_tokens': expected -1 (max_model_len) or "
                                "a count of at least 1, got {}.",
                                *k));
  if (*k > max_len)
    throw bad_param("truncate_prompt_tokens",
                    fmt::format("truncate_prompt_tokens value ({}) is greater than max_model_len "
                                "({}). Please, select a smaller truncation size.",
                                *k, max_len));
  const size_t keep = size_t(*k == -1 ? max_len : *k);
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    std::vector<int32_t>& p = r.prompts[i];
    if (p.size() <= keep) continue;
    p.erase(p.begin(), p.end() - std::ptrdiff_t(keep));
    // Text prompts (and chat's rendered one); token-id prompts are decoded after validation.
    if (i < r.prompt_texts.size() && !r.prompt_texts[i].empty())
      r.prompt_texts[i] = gen.decode(p, false);
  }
}

// --max-prompt-tokens and --max-output-tokens: a prompt or a max_tokens over the server's limit is
// a 400 naming it; a request that leaves max_tokens out gets at most the limit (and never more
// than its context has room for).
void apply_token_limits(const RequestLimits& lim, const MaxTokens& mt, const Generator& gen,
                        CompletionRequest& r) {
  const std::string pp = r.chat ? "messages" : "prompt";
  if (lim.max_prompt_tokens > 0) {
    for (size_t k = 0; k < r.prompts.size(); ++k) {
      if (r.prompts[k].size() > size_t(lim.max_prompt_tokens))
        throw bad_param(pp, fmt::format("Invalid '{}': the prompt{} is {} tokens, more than this "
                                        "server's limit of {} (--max-prompt-tokens).",
                                        pp, r.prompts.size() > 1 ? fmt::format(" {}", k) : "",
                                        r.prompts[k].size(), lim.max_prompt_tokens));
    }
  }
  if (lim.max_output_tokens <= 0) return;
  if (mt.value && *mt.value > lim.max_output_tokens)
    throw bad_param(mt.param, fmt::format("Invalid '{}': at most {} tokens may be generated per "
                                          "request on this server (--max-output-tokens), got {}.",
                                          mt.param, lim.max_output_tokens, *mt.value));
  if (r.params.max_tokens) return;
  int32_t room = lim.max_output_tokens;
  for (const auto& p : r.prompts) {
    const int64_t left = int64_t(gen.max_model_len()) - int64_t(p.size());
    if (left >= 1) room = int32_t(std::min<int64_t>(room, left));
  }
  r.params.max_tokens = room;
}

void decode_token_prompts(const Generator& gen, const std::vector<std::string>& id_fields,
                          CompletionRequest& r) {
  for (size_t k = 0; k < id_fields.size(); ++k) {
    if (!id_fields[k].empty()) r.prompt_texts[k] = gen.decode(r.prompts[k], false);
  }
}

// OpenAI's error for a prompt, or a prompt plus max_tokens, past the model's context.
ApiError context_length_error(const InvalidFieldError& e, const CompletionRequest& r,
                              const MaxTokens& mt, int64_t plen, int32_t max_len) {
  const std::string pp = r.chat ? "messages" : "prompt";
  if (e.param() != mt.param || !mt.value)
    return ApiError(400,
                    fmt::format("This model's maximum context length is {} tokens. However, "
                                "your {} resulted in {} tokens. Please reduce the length of "
                                "the {}.",
                                max_len, pp, plen, pp),
                    "invalid_request_error", pp, kContextLengthExceeded);
  return ApiError(400,
                  fmt::format("This model's maximum context length is {} tokens. However, "
                              "you requested {} tokens ({} in the {}, {} in the completion). "
                              "Please reduce the length of the {} or completion.",
                              max_len, plen + *mt.value, plen, pp, *mt.value, pp),
                  "invalid_request_error", mt.param, kContextLengthExceeded);
}

// The engine's validation (validate_request) of the request of each prompt, before anything is
// submitted; its errors name the body's fields: the prompt ("messages", "prompt", "prompt[0][3]"),
// max_tokens or max_completion_tokens, logprobs or top_logprobs, the constraint's field.
void validate_for_engine(const CompletionRequest& r, const MaxTokens& mt,
                         const std::vector<std::string>& id_fields, const Generator& gen) {
  const std::string pp = r.chat ? "messages" : "prompt";
  const RequestBounds bounds{gen.vocab_size(), gen.max_model_len(), gen.max_logprobs(), true};
  constexpr std::string_view kIds = "prompt_token_ids";
  GenerateRequest gr;
  gr.params = r.params;
  for (size_t k = 0; k < r.prompts.size(); ++k) {
    const std::string& ids_field = k < id_fields.size() ? id_fields[k] : std::string();
    auto name = [&](std::string_view field) -> std::string {
      if (field == kIds) return pp;
      if (field.starts_with(kIds))  // prompt_token_ids[i]
        return ids_field.empty() ? pp : ids_field + std::string(field.substr(kIds.size()));
      if (field == "max_tokens") return mt.param;
      if (field == "logprobs") return r.chat ? "top_logprobs" : "logprobs";
      if (field.starts_with("structured_outputs") && !r.constraint_param.empty())
        return r.constraint_param;
      return std::string(field);
    };
    gr.prompt_token_ids = r.prompts[k];
    try {
      validate_request(gr, bounds, name);
    } catch (const InvalidFieldError& e) {
      if (e.code() == kContextLengthExceeded)
        throw context_length_error(e, r, mt, int64_t(r.prompts[k].size()), gen.max_model_len());
      throw bad_param(e.param(), e.what());
    }
  }
}

}  // namespace

std::string request_model_name(const json& body, const ValidationContext& ctx) {
  if (auto m = get_string(body, "model")) {
    if (std::find(ctx.model_names.begin(), ctx.model_names.end(), *m) == ctx.model_names.end() &&
        !(ctx.lora && ctx.lora->id_of(*m) >= 0))
      throw ApiError(404, fmt::format("The model `{}` does not exist.", *m),
                     "invalid_request_error", "model", "model_not_found");
    return *m;
  }
  return ctx.model_names.empty() ? "" : ctx.model_names.front();
}

bool invocation_is_chat(const json& body) {
  if (body.is_object() && body.contains("messages")) return true;
  if (body.is_object() && body.contains("prompt")) return false;
  throw ApiError(400,
                 "Cannot find suitable handler for request. Expected one of: "
                 "ChatCompletionRequest (a body with 'messages'), CompletionRequest (a body "
                 "with 'prompt').",
                 "invalid_request_error");
}

CompletionRequest parse_completion_request(const json& body, bool chat,
                                           const ValidationContext& ctx) {
  const Generator& gen = *ctx.generator;
  CompletionRequest r;
  r.chat = chat;
  r.model = request_model_name(body, ctx);
  r.lora_adapter_id = ctx.lora ? ctx.lora->id_of(r.model) : -1;
  streaming(body, r);
  SamplingParams& sp = r.params;
  sampling_fields(body, gen.vocab_size(), ctx.limits, sp);
  logit_bias(body, ctx.limits, sp);
  seed_field(body, sp);
  const MaxTokens mt = max_tokens(body, chat, sp);
  stop_fields(body, ctx.limits, sp);
  if (auto v = get_string(body, "user")) r.user = *v;
  r.request_id = request_id_field(body);
  refuse_unsupported(body, chat);
  if (auto v = get_int(body, "priority", kInt32Min, kInt32Max)) r.priority = int32_t(*v);
  logprobs_fields(body, chat, r);

  // The output constraint; schemas and tools are read again with the client's key order.
  const std::optional<ojson> ordered = ordered_body(body, ctx);
  const ojson* o = ordered ? &*ordered : nullptr;
  sp.structured_outputs = parse_structured_outputs(body, o, ctx.limits, &r.constraint_param);
  std::vector<std::string> id_fields;
  if (chat) {
    parse_chat_prompt(body, o, ctx, r);
  } else {
    id_fields = completion_prompts(body, gen, ctx.limits, r);
  }
  truncate_prompts(body, gen, r);
  if (!chat && !mt.value) default_max_tokens(gen, r);
  apply_token_limits(ctx.limits, mt, gen, r);
  validate_for_engine(r, mt, id_fields, gen);
  decode_token_prompts(gen, id_fields, r);
  return r;
}

}  // namespace inferd::server
