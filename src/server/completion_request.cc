// /v1/completions and /v1/chat/completions bodies into a CompletionRequest: the model, streaming,
// the sampling parameters with OpenAI's and vLLM's names, stops, logprobs, the output constraint,
// the prompts (chat: chat_request.cc), and their lengths against the model's context.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "server/chat_request.h"
#include "server/protocol.h"

namespace inferd::server {

namespace {

constexpr int kMaxN = 128;
constexpr size_t kMaxPrompts = 256;
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// max_tokens, or (chat) max_completion_tokens, which takes precedence; `param` names the one given.
struct MaxTokens {
  std::optional<int64_t> value;
  std::string param = "max_tokens";
};

std::string model_name(const json& body, const ValidationContext& ctx) {
  if (auto m = get_string(body, "model")) {
    if (std::find(ctx.model_names.begin(), ctx.model_names.end(), *m) == ctx.model_names.end())
      throw ApiError(404, fmt::format("The model `{}` does not exist.", *m),
                     "invalid_request_error", "model", "model_not_found");
    return *m;
  }
  return ctx.model_names.empty() ? "" : ctx.model_names.front();
}

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

// n, best_of, temperature, top_p, top_k, min_p and the penalties.
void sampling_fields(const json& body, int32_t vocab, SamplingParams& sp) {
  sp.n = int32_t(get_int(body, "n", 1, kMaxN).value_or(1));
  if (const json* bo = find_field(body, "best_of")) {
    if (int_value(*bo, "best_of", 1, kMaxN) != sp.n)
      throw bad_param("best_of", "Invalid 'best_of': only best_of equal to n is supported.");
  }
  if (auto t = get_number(body, "temperature", 0, 2)) sp.temperature = float(*t);
  if (const json* tp = find_field(body, "top_p")) {
    if (!tp->is_number()) wrong_type("top_p", "a number", *tp);
    const double v = tp->get<double>();
    if (!(v > 0 && v <= 1))
      throw bad_param("top_p", fmt::format("Invalid 'top_p': expected a value in (0, 1], but got "
                                           "{} instead.",
                                           fmt_num(v)));
    sp.top_p = float(v);
  }
  if (auto k = get_int(body, "top_k", -1, kInt32Max))
    sp.top_k = *k < 0 ? 0 : int32_t(std::min<int64_t>(*k, vocab));
  if (auto v = get_number(body, "min_p", 0, 1)) sp.min_p = float(*v);
  if (const json* rp = find_field(body, "repetition_penalty")) {
    if (!rp->is_number()) wrong_type("repetition_penalty", "a number", *rp);
    const double v = rp->get<double>();
    if (!(v > 0 && std::isfinite(v)))
      throw bad_param("repetition_penalty",
                      fmt::format("Invalid 'repetition_penalty': expected a value > 0, but got "
                                  "{} instead.",
                                  fmt_num(v)));
    sp.repetition_penalty = float(v);
  }
  if (auto v = get_number(body, "presence_penalty", -2, 2)) sp.presence_penalty = float(*v);
  if (auto v = get_number(body, "frequency_penalty", -2, 2)) sp.frequency_penalty = float(*v);
}

// logit_bias: {"token id": bias in [-100, 100]}.
void logit_bias(const json& body, int32_t vocab, const RequestLimits& lim, SamplingParams& sp) {
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
    if (used != key.size() || key.empty())
      throw bad_param("logit_bias", fmt::format("Invalid key in 'logit_bias': '{}' is not a "
                                                "token id.",
                                                key));
    if (id < 0 || id >= vocab)
      throw bad_param("logit_bias", fmt::format("Invalid key in 'logit_bias': token id {} is "
                                                "outside the vocabulary (size {}).",
                                                id, vocab));
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

MaxTokens max_tokens(const json& body, bool chat, SamplingParams& sp) {
  MaxTokens mt;
  if (chat) {
    mt.value = get_int(body, "max_completion_tokens", 1, std::numeric_limits<int64_t>::max());
    if (mt.value) mt.param = "max_completion_tokens";
  }
  if (!mt.value) mt.value = get_int(body, "max_tokens", 1, std::numeric_limits<int64_t>::max());
  if (auto v = get_int(body, "min_tokens", 0, kInt32Max)) {
    if (mt.value && *v > *mt.value)
      throw bad_param("min_tokens", fmt::format("Invalid 'min_tokens': {} is larger than {} ({}).",
                                                *v, mt.param, *mt.value));
    sp.min_tokens = int32_t(*v);
  }
  return mt;
}

// stop (a string or an array of strings; empty ones are dropped), stop_token_ids and the flags
// around them.
void stop_fields(const json& body, int32_t vocab, const RequestLimits& lim, SamplingParams& sp) {
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
    sp.stop_token_ids = token_list(*sti, "stop_token_ids", vocab);
  }
  if (auto v = get_bool(body, "include_stop_str_in_output")) sp.include_stop_str_in_output = *v;
  if (auto v = get_bool(body, "ignore_eos")) sp.ignore_eos = *v;
  if (auto v = get_bool(body, "skip_special_tokens")) sp.skip_special_tokens = *v;
}

// Chat: logprobs (a boolean) and top_logprobs; completions: logprobs (a count), echo, suffix.
void logprobs_fields(const json& body, bool chat, int32_t max_lp, CompletionRequest& r) {
  if (chat) {
    r.logprobs = get_bool(body, "logprobs").value_or(false);
    if (auto tl = get_int(body, "top_logprobs", 0, max_lp)) {
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
      r.top_logprobs = int32_t(int_value(*lp, "logprobs", 0, max_lp));
    }
    r.echo = get_bool(body, "echo").value_or(false);
    if (auto sfx = get_string(body, "suffix"); sfx && !sfx->empty())
      throw bad_param("suffix", "Invalid 'suffix': suffix is not supported by this model.");
  }
  if (r.logprobs) r.params.logprobs = r.top_logprobs;
  if (find_field(body, "prompt_logprobs"))
    throw bad_param("prompt_logprobs",
                    "Invalid 'prompt_logprobs': prompt logprobs are not "
                    "supported.");
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

// prompt: a string, an array of strings, an array of token ids, or an array of those.
void completion_prompts(const json& body, const Generator& gen, CompletionRequest& r) {
  const int32_t vocab = gen.vocab_size();
  const json* p = find_field(body, "prompt");
  if (!p) throw bad_param("prompt", "Missing required parameter: 'prompt'.");
  const bool add_special = get_bool(body, "add_special_tokens").value_or(true);
  auto add_text = [&](const std::string& s) {
    r.prompts.push_back(encode_checked(gen, s, add_special, "prompt"));
    r.prompt_texts.push_back(s);
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
      r.prompts.push_back(token_list(*p, "prompt", vocab));
      r.prompt_texts.push_back(gen.decode(r.prompts.back(), false));
    } else if (first.is_array()) {
      for (size_t i = 0; i < p->size(); ++i) {
        const std::string pp = fmt::format("prompt[{}]", i);
        if (!(*p)[i].is_array()) wrong_type(pp, "an array of token ids", (*p)[i]);
        r.prompts.push_back(token_list((*p)[i], pp, vocab));
        r.prompt_texts.push_back(gen.decode(r.prompts.back(), false));
      }
    } else {
      wrong_type("prompt[0]", "a string, a token id or an array of token ids", first);
    }
  } else {
    wrong_type("prompt", "a string or an array", *p);
  }
  if (r.prompts.size() * size_t(r.params.n) > size_t(kMaxN) * 4)
    throw bad_param("n", fmt::format("Invalid 'n': {} prompts x n={} is more than {} "
                                     "completions in one request.",
                                     r.prompts.size(), r.params.n, kMaxN * 4));
}

// Each prompt is not empty and fits the model's context with max_tokens.
void check_lengths(const CompletionRequest& r, const MaxTokens& mt, int32_t max_len) {
  const std::string pp = r.chat ? "messages" : "prompt";
  for (const auto& ids : r.prompts) {
    if (ids.empty())
      throw bad_param(pp, fmt::format("Invalid '{}': the prompt is empty (0 tokens).", pp));
    const int64_t plen = int64_t(ids.size());
    if (plen >= max_len)
      throw ApiError(400,
                     fmt::format("This model's maximum context length is {} tokens. However, "
                                 "your {} resulted in {} tokens. Please reduce the length of "
                                 "the {}.",
                                 max_len, pp, plen, pp),
                     "invalid_request_error", pp, "context_length_exceeded");
    if (mt.value && plen + *mt.value > max_len)
      throw ApiError(400,
                     fmt::format("This model's maximum context length is {} tokens. However, "
                                 "you requested {} tokens ({} in the {}, {} in the completion). "
                                 "Please reduce the length of the {} or completion.",
                                 max_len, plen + *mt.value, plen, pp, *mt.value, pp),
                     "invalid_request_error", mt.param, "context_length_exceeded");
  }
}

}  // namespace

CompletionRequest parse_completion_request(const json& body, bool chat,
                                           const ValidationContext& ctx) {
  const Generator& gen = *ctx.generator;
  CompletionRequest r;
  r.chat = chat;
  r.model = model_name(body, ctx);
  streaming(body, r);
  SamplingParams& sp = r.params;
  sampling_fields(body, gen.vocab_size(), sp);
  logit_bias(body, gen.vocab_size(), ctx.limits, sp);
  seed_field(body, sp);
  const MaxTokens mt = max_tokens(body, chat, sp);
  stop_fields(body, gen.vocab_size(), ctx.limits, sp);
  if (auto v = get_string(body, "user")) r.user = *v;
  if (auto v = get_int(body, "priority", std::numeric_limits<int32_t>::min(), kInt32Max))
    r.priority = int32_t(*v);
  logprobs_fields(body, chat, gen.max_logprobs(), r);

  // The output constraint; schemas and tools are read again with the client's key order.
  const std::optional<ojson> ordered = ordered_body(body, ctx);
  const ojson* o = ordered ? &*ordered : nullptr;
  sp.structured_outputs = parse_structured_outputs(body, o, ctx.limits, &r.constraint_param);
  if (chat) {
    parse_chat_prompt(body, o, ctx, r);
  } else {
    completion_prompts(body, gen, r);
  }
  check_lengths(r, mt, gen.max_model_len());
  if (mt.value) sp.max_tokens = int32_t(*mt.value);
  return r;
}

}  // namespace inferd::server
