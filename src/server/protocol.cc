#include "server/protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace inferd::server {

namespace {

constexpr int kMaxN = 128;
constexpr size_t kMaxPrompts = 256;

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& got) {
  throw bad_param(param, fmt::format("Invalid type for '{}': expected {}, but got {} instead.",
                                     param, expected, json_type_name(got)));
}

std::string fmt_num(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) return fmt::format("{}", int64_t(v));
  return fmt::format("{}", v);
}

bool is_integral(const json& v) {
  if (v.is_number_integer()) return true;
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9.2e18;
  }
  return false;
}

int64_t as_int(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                             : int64_t(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return int64_t(v.get<double>());
}

int64_t int_value(const json& v, const std::string& param, int64_t lo, int64_t hi) {
  if (!is_integral(v)) wrong_type(param, "an integer", v);
  const int64_t x = as_int(v);
  if (x < lo)
    throw bad_param(param, fmt::format("Invalid '{}': integer below minimum value. Expected a "
                                       "value >= {}, but got {} instead.",
                                       param, lo, x));
  if (x > hi)
    throw bad_param(param, fmt::format("Invalid '{}': integer above maximum value. Expected a "
                                       "value <= {}, but got {} instead.",
                                       param, hi, x));
  return x;
}

std::vector<int32_t> token_list(const json& v, const std::string& param, int32_t vocab) {
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    ids.push_back(int32_t(int_value(v[i], fmt::format("{}[{}]", param, i), 0, vocab - 1)));
  return ids;
}

std::string content_text(const json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, "a string or an array of content parts", content);
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string pp = fmt::format("{}[{}]", param, j);
    if (!part.is_object()) wrong_type(pp, "an object", part);
    const json* type = find_field(part, "type");
    if (!type || !type->is_string())
      throw bad_param(pp + ".type", fmt::format("Missing or invalid '{}.type'.", pp));
    const std::string t = type->get<std::string>();
    if (t != "text")
      throw bad_param(pp + ".type",
                      fmt::format("Invalid '{}.type': content parts of type '{}' are not "
                                  "supported by this model (only 'text').",
                                  pp, t));
    const json* tx = find_field(part, "text");
    if (!tx || !tx->is_string()) {
      if (!tx)
        throw bad_param(pp + ".text", fmt::format("Missing required parameter: '{}.text'.", pp));
      wrong_type(pp + ".text", "a string", *tx);
    }
    if (!text.empty()) text += "\n";
    text += tx->get<std::string>();
  }
  return text;
}

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

std::string prompt_param(bool chat) {
  return chat ? "messages" : "prompt";
}

}  // namespace

std::string json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a decimal";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    default:
      return "an unsupported value";
  }
}

json parse_json_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1E999
    throw ApiError(400,
                   fmt::format("We could not parse the JSON body of your request. ({})", e.what()),
                   "invalid_request_error", std::nullopt, "invalid_json");
  }
  if (!j.is_object())
    throw ApiError(
        400, fmt::format("The request body must be a JSON object, but got {}.", json_type_name(j)),
        "invalid_request_error", std::nullopt, "invalid_json");
  return j;
}

const json* find_field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> get_bool(const json& obj, const char* name) {
  const json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

std::optional<int64_t> get_int(const json& obj, const char* name, int64_t lo, int64_t hi) {
  const json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  return int_value(*v, name, lo, hi);
}

std::optional<double> get_number(const json& obj, const char* name, double lo, double hi) {
  const json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x))
    throw bad_param(name, fmt::format("Invalid '{}': not a finite number.", name));
  if (x < lo)
    throw bad_param(name, fmt::format("Invalid '{}': decimal below minimum value. Expected a "
                                      "value >= {}, but got {} instead.",
                                      name, fmt_num(lo), fmt_num(x)));
  if (x > hi)
    throw bad_param(name, fmt::format("Invalid '{}': decimal above maximum value. Expected a "
                                      "value <= {}, but got {} instead.",
                                      name, fmt_num(hi), fmt_num(x)));
  return x;
}

std::optional<std::string> get_string(const json& obj, const char* name) {
  const json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

ojson normalize_messages(const json& messages, size_t max_messages) {
  static const char* kRoles[] = {"system", "developer", "user", "assistant", "tool", "function"};
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
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string p = fmt::format("messages[{}]", i);
    if (!m.is_object()) wrong_type(p, "an object", m);
    const json* role = find_field(m, "role");
    if (!role)
      throw bad_param(p + ".role", fmt::format("Missing required parameter: '{}.role'.", p));
    if (!role->is_string()) wrong_type(p + ".role", "a string", *role);
    const std::string r = role->get<std::string>();
    if (std::find_if(std::begin(kRoles), std::end(kRoles), [&](const char* k) { return r == k; }) ==
        std::end(kRoles))
      throw bad_param(p + ".role",
                      fmt::format("Invalid value: '{}'. Supported values are: 'system', "
                                  "'developer', 'user', 'assistant', 'tool' and 'function'.",
                                  r));
    ojson om = ojson::object();
    om["role"] = r == "developer" ? "system" : r;
    const json* content = find_field(m, "content");
    const json* tool_calls = find_field(m, "tool_calls");
    if (!content) {
      if (r != "assistant" || !tool_calls)
        throw bad_param(p + ".content",
                        fmt::format("Missing required parameter: '{}.content'.", p));
      om["content"] = nullptr;
    } else {
      om["content"] = content_text(*content, p + ".content");
    }
    if (const json* name = find_field(m, "name")) {
      if (!name->is_string()) wrong_type(p + ".name", "a string", *name);
      om["name"] = *name;
    }
    if (tool_calls) {
      if (!tool_calls->is_array()) wrong_type(p + ".tool_calls", "an array", *tool_calls);
      ojson calls = ojson::array();
      for (const auto& c : *tool_calls) {
        ojson oc = ojson::parse(c.dump());
        // Templates expect the arguments as a mapping; OpenAI sends a JSON string.
        if (oc.contains("function") && oc["function"].is_object() &&
            oc["function"].contains("arguments") && oc["function"]["arguments"].is_string()) {
          try {
            oc["function"]["arguments"] =
                ojson::parse(oc["function"]["arguments"].get<std::string>());
          } catch (const std::exception&) {
          }
        }
        calls.push_back(std::move(oc));
      }
      om["tool_calls"] = std::move(calls);
    }
    if (const json* id = find_field(m, "tool_call_id")) {
      if (!id->is_string()) wrong_type(p + ".tool_call_id", "a string", *id);
      om["tool_call_id"] = *id;
    }
    out.push_back(std::move(om));
  }
  return out;
}

CompletionRequest parse_completion_request(const json& body, bool chat,
                                           const ValidationContext& ctx) {
  const Generator& gen = *ctx.generator;
  const RequestLimits& lim = ctx.limits;
  CompletionRequest r;
  r.chat = chat;
  const int32_t vocab = gen.vocab_size();
  const int32_t max_len = gen.max_model_len();

  // model
  if (auto m = get_string(body, "model")) {
    if (std::find(ctx.model_names.begin(), ctx.model_names.end(), *m) == ctx.model_names.end())
      throw ApiError(404, fmt::format("The model `{}` does not exist.", *m),
                     "invalid_request_error", "model", "model_not_found");
    r.model = *m;
  } else {
    r.model = ctx.model_names.empty() ? "" : ctx.model_names.front();
  }

  // streaming
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

  SamplingParams& sp = r.params;
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
  if (auto k = get_int(body, "top_k", -1, std::numeric_limits<int32_t>::max()))
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
  if (const json* lb = find_field(body, "logit_bias")) {
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
        throw bad_param("logit_bias",
                        fmt::format("Invalid key in 'logit_bias': token id {} is outside the "
                                    "vocabulary (size {}).",
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
  if (const json* s = find_field(body, "seed")) {
    if (!is_integral(*s)) wrong_type("seed", "an integer", *s);
    sp.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(as_int(*s));
  }

  // max tokens (chat: max_completion_tokens takes precedence)
  std::optional<int64_t> max_tokens;
  std::string max_tokens_param = "max_tokens";
  if (chat) {
    max_tokens = get_int(body, "max_completion_tokens", 1, std::numeric_limits<int64_t>::max());
    if (max_tokens) max_tokens_param = "max_completion_tokens";
  }
  if (!max_tokens) max_tokens = get_int(body, "max_tokens", 1, std::numeric_limits<int64_t>::max());
  if (auto v = get_int(body, "min_tokens", 0, std::numeric_limits<int32_t>::max())) {
    if (max_tokens && *v > *max_tokens)
      throw bad_param("min_tokens", fmt::format("Invalid 'min_tokens': {} is larger than {} ({}).",
                                                *v, max_tokens_param, *max_tokens));
    sp.min_tokens = int32_t(*v);
  }

  // stop
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
  if (auto v = get_string(body, "user")) r.user = *v;
  if (auto v = get_int(body, "priority", std::numeric_limits<int32_t>::min(),
                       std::numeric_limits<int32_t>::max()))
    r.priority = int32_t(*v);

  // logprobs
  const int32_t max_lp = gen.max_logprobs();
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
  if (r.logprobs) sp.logprobs = r.top_logprobs;
  if (find_field(body, "prompt_logprobs"))
    throw bad_param("prompt_logprobs",
                    "Invalid 'prompt_logprobs': prompt logprobs are not "
                    "supported.");

  if (const json* rf = find_field(body, "response_format")) {
    if (!rf->is_object()) wrong_type("response_format", "an object", *rf);
    if (const size_t bytes = rf->dump().size(); bytes > lim.max_schema_bytes)
      throw bad_param("response_format",
                      fmt::format("Invalid 'response_format': at most {} bytes of JSON (the "
                                  "schema) are allowed, got {}.",
                                  lim.max_schema_bytes, bytes));
    const json* t = find_field(*rf, "type");
    if (!t || !t->is_string() || t->get<std::string>() != "text")
      throw bad_param("response_format",
                      "Invalid 'response_format': only {\"type\": \"text\"} is supported.");
  }

  // prompt
  if (chat) {
    const json* msgs = find_field(body, "messages");
    if (!msgs) throw bad_param("messages", "Missing required parameter: 'messages'.");
    ChatTemplateArgs args;
    args.messages = normalize_messages(*msgs, lim.max_messages);
    if (const json* tools = find_field(body, "tools")) {
      if (!tools->is_array()) wrong_type("tools", "an array", *tools);
      if (tools->size() > lim.max_tools)
        throw bad_param("tools", fmt::format("Invalid 'tools': array too long. Expected an array "
                                             "with maximum length {}, but got an array with "
                                             "length {} instead.",
                                             lim.max_tools, tools->size()));
      if (const size_t bytes = tools->dump().size(); bytes > lim.max_tools_bytes)
        throw bad_param("tools", fmt::format("Invalid 'tools': at most {} bytes of JSON are "
                                             "allowed, got {}.",
                                             lim.max_tools_bytes, bytes));
      for (size_t i = 0; i < tools->size(); ++i) {
        const json& t = (*tools)[i];
        const std::string p = fmt::format("tools[{}]", i);
        if (!t.is_object()) wrong_type(p, "an object", t);
        const json* fn = find_field(t, "function");
        if (!fn || !fn->is_object())
          throw bad_param(p + ".function",
                          fmt::format("Missing required parameter: '{}.function'.", p));
        const json* name = find_field(*fn, "name");
        if (!name || !name->is_string())
          throw bad_param(p + ".function.name",
                          fmt::format("Missing required parameter: '{}.function.name'.", p));
      }
      if (!tools->empty()) args.tools = ojson::parse(tools->dump());
    }
    if (const json* tc = find_field(body, "tool_choice")) {
      if (!(tc->is_string() &&
            (tc->get<std::string>() == "none" || tc->get<std::string>() == "auto")))
        throw bad_param("tool_choice",
                        "Invalid 'tool_choice': only 'none' and 'auto' are "
                        "supported.");
      if (tc->get<std::string>() == "none") args.tools = nullptr;
    }
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
    const bool add_special = get_bool(body, "add_special_tokens").value_or(false);
    std::string text;
    try {
      text = gen.apply_chat_template(args);
    } catch (const ApiError&) {
      throw;
    } catch (const Error& e) {
      throw bad_param("messages",
                      fmt::format("The chat template failed on these messages: {}", e.what()));
    }
    r.prompts.push_back(encode_checked(gen, text, add_special, "messages"));
    r.prompt_texts.push_back(std::move(text));
  } else {
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
    if (r.prompts.size() * size_t(sp.n) > size_t(kMaxN) * 4)
      throw bad_param("n", fmt::format("Invalid 'n': {} prompts x n={} is more than {} "
                                       "completions in one request.",
                                       r.prompts.size(), sp.n, kMaxN * 4));
  }

  // lengths
  const std::string pp = prompt_param(chat);
  for (const auto& ids : r.prompts) {
    if (ids.empty())
      throw bad_param(pp, fmt::format("Invalid '{}': the prompt is empty (0 tokens).", pp));
    const int64_t plen = int64_t(ids.size());
    if (plen >= max_len)
      throw ApiError(400,
                     fmt::format("This model's maximum context length is {} tokens. However, "
                                 "your {} resulted in {} tokens. Please reduce the length of "
                                 "the {}.",
                                 max_len, chat ? "messages" : "prompt", plen, pp),
                     "invalid_request_error", pp, "context_length_exceeded");
    if (max_tokens && plen + *max_tokens > max_len)
      throw ApiError(400,
                     fmt::format("This model's maximum context length is {} tokens. However, "
                                 "you requested {} tokens ({} in the {}, {} in the completion). "
                                 "Please reduce the length of the {} or completion.",
                                 max_len, plen + *max_tokens, plen, chat ? "messages" : "prompt",
                                 *max_tokens, pp),
                     "invalid_request_error", max_tokens_param, "context_length_exceeded");
  }
  if (max_tokens) sp.max_tokens = int32_t(*max_tokens);
  return r;
}

ojson tokenize_body(const json& body, const Generator& gen, const RequestLimits& limits) {
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
