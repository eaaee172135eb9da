#include "server/protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "grammar/json_schema.h"

namespace inferd::server {

namespace {

constexpr int kMaxN = 128;
constexpr size_t kMaxPrompts = 256;

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& got) {
  throw bad_param(param, fmt::format("Invalid type for '{}': expected {}, but got {} instead.",
                                     param, expected, json_type_name(got)));
}

// obj["function"], checked to be an object with a string "name" (a tool, or a tool call in an
// assistant message); a 400 naming the field under `p` otherwise.
const json& function_of(const json& obj, const std::string& p) {
  const json* fn = find_field(obj, "function");
  if (!fn)
    throw bad_param(p + ".function", fmt::format("Missing required parameter: '{}.function'.", p));
  if (!fn->is_object()) wrong_type(p + ".function", "an object", *fn);
  const json* name = find_field(*fn, "name");
  if (!name)
    throw bad_param(p + ".function.name",
                    fmt::format("Missing required parameter: '{}.function.name'.", p));
  if (!name->is_string()) wrong_type(p + ".function.name", "a string", *name);
  return *fn;
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

// The value at `path` in the body as the client ordered it, or null.
const ojson* ordered_at(const ojson* root, std::initializer_list<std::string_view> path) {
  const ojson* v = root;
  for (std::string_view k : path) {
    if (!v || !v->is_object()) return nullptr;
    auto it = v->find(std::string(k));
    if (it == v->end()) return nullptr;
    v = &*it;
  }
  return v;
}

// JSON text of `v` (found at `path`), in the client's key order when the ordered body has it.
std::string ordered_dump(const json& v, const ojson* root,
                         std::initializer_list<std::string_view> path) {
  if (const ojson* o = ordered_at(root, path)) return o->dump();
  return v.dump();
}

void check_schema_bytes(const json& v, const std::string& param, const RequestLimits& lim) {
  if (const size_t bytes = v.dump().size(); bytes > lim.max_schema_bytes)
    throw bad_param(param, fmt::format("Invalid '{}': at most {} bytes of JSON (the schema) are "
                                       "allowed, got {}.",
                                       param, lim.max_schema_bytes, bytes));
}

// A JSON Schema given as an object or as JSON text: its text (client's key order).
std::string schema_text(const json& v, const std::string& param, const ojson* root,
                        std::initializer_list<std::string_view> path) {
  if (v.is_object() || v.is_boolean()) return ordered_dump(v, root, path);
  if (!v.is_string()) wrong_type(param, "an object (a JSON Schema) or a string", v);
  const std::string& text = v.get_ref<const std::string&>();
  json parsed;
  try {
    parsed = json::parse(text);
  } catch (const json::exception& e) {
    throw bad_param(
        param, fmt::format("Invalid '{}': the schema is not valid JSON ({}).", param, e.what()));
  }
  if (!parsed.is_object() && !parsed.is_boolean())
    throw bad_param(param, fmt::format("Invalid '{}': a JSON Schema is an object, but got {}.",
                                       param, json_type_name(parsed)));
  return text;
}

std::string nonempty_string(const json& v, const std::string& param) {
  if (!v.is_string()) wrong_type(param, "a string", v);
  if (v.get_ref<const std::string&>().empty())
    throw bad_param(param, fmt::format("Invalid '{}': empty string.", param));
  return v.get<std::string>();
}

std::vector<std::string> choice_list(const json& v, const std::string& param) {
  if (!v.is_array()) wrong_type(param, "an array of strings", v);
  if (v.empty())
    throw bad_param(param,
                    fmt::format("Invalid '{}': empty array. Expected at least one choice.", param));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) wrong_type(fmt::format("{}[{}]", param, i), "a string", v[i]);
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

// OpenAI's rule for function and schema names.
bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// The request's tools, checked; `template_tools` gets them for the chat template (client's key
// order when known).
std::vector<ToolSpec> parse_tools(const json& body, const ojson* ordered, const RequestLimits& lim,
                                  ojson& template_tools) {
  std::vector<ToolSpec> specs;
  const json* tools = find_field(body, "tools");
  if (!tools) return specs;
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
  const ojson* otools = ordered_at(ordered, {"tools"});
  if (otools && (!otools->is_array() || otools->size() != tools->size())) otools = nullptr;
  for (size_t i = 0; i < tools->size(); ++i) {
    const json& t = (*tools)[i];
    const std::string p = fmt::format("tools[{}]", i);
    if (!t.is_object()) wrong_type(p, "an object", t);
    if (const json* type = find_field(t, "type")) {
      if (!type->is_string()) wrong_type(p + ".type", "a string", *type);
      if (type->get<std::string>() != "function")
        throw bad_param(p + ".type", fmt::format("Invalid value: '{}'. Supported values are: "
                                                 "'function'.",
                                                 type->get<std::string>()));
    }
    const json* fn = &function_of(t, p);
    ToolSpec spec;
    spec.name = (*fn)["name"].get<std::string>();
    if (!valid_name(spec.name))
      throw bad_param(p + ".function.name",
                      fmt::format("Invalid '{}.function.name': '{}' must be 1 to 64 letters, "
                                  "digits, underscores or dashes.",
                                  p, spec.name));
    if (const json* d = find_field(*fn, "description"); d && !d->is_string())
      wrong_type(p + ".function.description", "a string", *d);
    if (const json* st = find_field(*fn, "strict")) {
      if (!st->is_boolean()) wrong_type(p + ".function.strict", "a boolean", *st);
      spec.strict = st->get<bool>();
    }
    if (const json* params = find_field(*fn, "parameters")) {
      if (!params->is_object())
        wrong_type(p + ".function.parameters", "an object (a JSON Schema)", *params);
      const ojson* op = otools ? ordered_at(&(*otools)[i], {"function", "parameters"}) : nullptr;
      spec.parameters = op ? *op : ojson::parse(params->dump());
    } else {
      spec.parameters = {{"type", "object"}, {"properties", ojson::object()}};
    }
    specs.push_back(std::move(spec));
  }
  if (!tools->empty()) template_tools = otools ? *otools : ojson::parse(tools->dump());
  return specs;
}

// tool_choice (vLLM's rules): "none" hides the tools; "auto" needs --enable-auto-tool-choice and
// a parser; "required" and a named function are enforced by a grammar in the parser's format
// (vLLM's own formats without a parser).
void apply_tool_choice(const json& body, const std::vector<ToolSpec>& tools,
                       const ChatParsing& parsing, const Generator& gen, CompletionRequest& r,
                       ChatTemplateArgs& args) {
  std::string mode = tools.empty() ? "none" : "auto";
  std::string named;
  if (const json* tc = find_field(body, "tool_choice")) {
    if (tc->is_string()) {
      mode = tc->get<std::string>();
      if (mode != "none" && mode != "auto" && mode != "required")
        throw bad_param("tool_choice",
                        fmt::format("Invalid value: '{}'. Supported values are: 'none', 'auto', "
                                    "'required', or an object naming a function.",
                                    mode));
    } else if (tc->is_object()) {
      if (const json* type = find_field(*tc, "type")) {
        if (!type->is_string() || type->get<std::string>() != "function")
          throw bad_param("tool_choice.type", "Invalid 'tool_choice.type': expected 'function'.");
      }
      const json* fn = find_field(*tc, "function");
      if (!fn)
        throw bad_param("tool_choice.function",
                        "Missing required parameter: 'tool_choice.function'.");
      if (!fn->is_object()) wrong_type("tool_choice.function", "an object", *fn);
      const json* name = find_field(*fn, "name");
      if (!name)
        throw bad_param("tool_choice.function.name",
                        "Missing required parameter: 'tool_choice.function.name'.");
      if (!name->is_string()) wrong_type("tool_choice.function.name", "a string", *name);
      mode = "function";
      named = name->get<std::string>();
    } else {
      wrong_type("tool_choice", "a string or an object", *tc);
    }
  }
  const bool parallel = get_bool(body, "parallel_tool_calls").value_or(true);
  if (mode == "none") {
    args.tools = nullptr;
    return;
  }
  if (tools.empty()) {
    if (mode == "auto") return;
    throw bad_param("tool_choice",
                    fmt::format("Invalid 'tool_choice': {} needs 'tools'.",
                                mode == "function" ? "a named function" : "'required'"));
  }
  SamplingParams& sp = r.params;
  if (mode == "auto") {
    if (!parsing.enable_auto_tool_choice || !parsing.tool_call_parser)
      throw bad_param("tool_choice",
                      "\"auto\" tool choice requires --enable-auto-tool-choice and "
                      "--tool-call-parser to be set on the server; use tool_choice \"none\", "
                      "\"required\" or a named function instead.");
    r.output.tools = *parsing.tool_call_parser;
    r.output.single_call = !parallel;
  } else {
    if (sp.structured_outputs)
      throw bad_param("tool_choice",
                      "Invalid 'tool_choice': 'required' or a named function cannot be used "
                      "together with response_format or structured outputs (both constrain the "
                      "output).");
    std::vector<ToolSpec> chosen;
    std::vector<size_t> index;
    for (size_t i = 0; i < tools.size(); ++i)
      if (mode != "function" || tools[i].name == named) {
        chosen.push_back(tools[i]);
        index.push_back(i);
      }
    if (chosen.empty())
      throw bad_param("tool_choice.function.name",
                      fmt::format("Invalid 'tool_choice.function.name': no tool named '{}' in "
                                  "'tools'.",
                                  named));
    if (mode == "function") chosen.resize(1), index.resize(1);
    const ToolCallFormat format = parsing.tool_call_parser ? *parsing.tool_call_parser
                                  : mode == "function"     ? ToolCallFormat::kArguments
                                                           : ToolCallFormat::kJsonArray;
    const bool single = mode == "function" || !parallel;
    StructuredOutputs so;
    // Mistral's [TOOL_CALLS] is a special token, which no grammar writes: the output is made to
    // start with it (begin_tokens) and the grammar takes over at the array.
    bool mistral_marker = true;
    if (format == ToolCallFormat::kMistral) {
      const std::vector<int32_t> marker = gen.encode("[TOOL_CALLS]", false);
      if (marker.size() == 1) {
        so.begin_tokens = marker;
        mistral_marker = false;
      }
    }
    try {
      so.grammar = tool_call_grammar(format, chosen, single, mistral_marker);
    } catch (const std::exception& all) {
      // Name the tool whose parameters cannot be enforced.
      for (size_t k = 0; k < chosen.size(); ++k) {
        try {
          (void)grammar::json_schema_to_gbnf(chosen[k].parameters,
                                             {"root", "p-", chosen[k].strict});
        } catch (const std::exception& e) {
          const std::string p = fmt::format("tools[{}].function.parameters", index[k]);
          throw bad_param(p, fmt::format("Invalid '{}': {}", p, e.what()));
        }
      }
      throw bad_param("tools", fmt::format("Invalid 'tools': the tool calls cannot be enforced: {}",
                                           all.what()));
    }
    sp.structured_outputs = std::move(so);
    r.constraint_param = "tools";
    r.output.tools = format;
    r.output.function_name = named;
    r.output.single_call = single;
  }
  // Mistral's [TOOL_CALLS] is a special token: keep it in the text the parser reads.
  if (r.output.tools == ToolCallFormat::kMistral && !find_field(body, "skip_special_tokens"))
    sp.skip_special_tokens = false;
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

std::optional<StructuredOutputs> parse_structured_outputs(const json& body, const ojson* ordered,
                                                          const RequestLimits& lim,
                                                          std::string* param) {
  struct Found {
    std::string param;
    StructuredOutputs so;
  };
  std::vector<Found> found;

  if (const json* rf = find_field(body, "response_format")) {
    if (!rf->is_object()) wrong_type("response_format", "an object", *rf);
    check_schema_bytes(*rf, "response_format", lim);
    const json* t = find_field(*rf, "type");
    if (!t)
      throw bad_param("response_format.type",
                      "Missing required parameter: 'response_format.type'.");
    if (!t->is_string()) wrong_type("response_format.type", "a string", *t);
    const std::string type = t->get<std::string>();
    StructuredOutputs so;
    if (type == "json_object") {
      so.json_object = true;
      found.push_back({"response_format", so});
    } else if (type == "json_schema") {
      const json* js = find_field(*rf, "json_schema");
      if (!js)
        throw bad_param("response_format.json_schema",
                        "Missing required parameter: 'response_format.json_schema'.");
      if (!js->is_object()) wrong_type("response_format.json_schema", "an object", *js);
      const json* name = find_field(*js, "name");
      if (!name)
        throw bad_param("response_format.json_schema.name",
                        "Missing required parameter: 'response_format.json_schema.name'.");
      if (!name->is_string()) wrong_type("response_format.json_schema.name", "a string", *name);
      if (!valid_name(name->get<std::string>()))
        throw bad_param("response_format.json_schema.name",
                        fmt::format("Invalid 'response_format.json_schema.name': '{}' must be 1 "
                                    "to 64 letters, digits, underscores or dashes.",
                                    name->get<std::string>()));
      if (auto v = find_field(*js, "strict"); v && !v->is_boolean())
        wrong_type("response_format.json_schema.strict", "a boolean", *v);
      if (auto v = find_field(*js, "description"); v && !v->is_string())
        wrong_type("response_format.json_schema.description", "a string", *v);
      const json* schema = find_field(*js, "schema");
      if (schema) {
        if (!schema->is_object())
          wrong_type("response_format.json_schema.schema", "an object (a JSON Schema)", *schema);
        so.json = ordered_dump(*schema, ordered, {"response_format", "json_schema", "schema"});
      } else {
        so.json_object = true;  // no schema: any JSON object
      }
      found.push_back({"response_format", so});
    } else if (type != "text") {
      throw bad_param("response_format.type",
                      fmt::format("Invalid value: '{}'. Supported values are: 'text', "
                                  "'json_object' and 'json_schema'.",
                                  type));
    }
  }

  if (const json* so_obj = find_field(body, "structured_outputs")) {
    if (!so_obj->is_object()) wrong_type("structured_outputs", "an object", *so_obj);
    check_schema_bytes(*so_obj, "structured_outputs", lim);
    StructuredOutputs so;
    std::vector<std::string> given;
    for (auto it = so_obj->begin(); it != so_obj->end(); ++it) {
      const std::string& k = it.key();
      const json& v = it.value();
      const std::string p = "structured_outputs." + k;
      if (v.is_null()) continue;
      if (k == "json") {
        so.json = schema_text(v, p, ordered, {"structured_outputs", "json"});
      } else if (k == "regex") {
        so.regex = nonempty_string(v, p);
      } else if (k == "choice") {
        so.choice = choice_list(v, p);
      } else if (k == "grammar") {
        so.grammar = nonempty_string(v, p);
      } else if (k == "json_object") {
        if (!v.is_boolean()) wrong_type(p, "a boolean", v);
        if (!v.get<bool>()) continue;
        so.json_object = true;
      } else if (k == "disable_fallback" || k == "disable_any_whitespace" ||
                 k == "disable_additional_properties") {
        if (!v.is_boolean()) wrong_type(p, "a boolean", v);
        continue;  // options of vLLM's backends; this one's behaviour is fixed
      } else {
        throw bad_param(p, fmt::format("Invalid '{}': not supported. 'structured_outputs' takes "
                                       "one of 'json', 'regex', 'choice', 'grammar' or "
                                       "'json_object'.",
                                       p));
      }
      given.push_back(p);
    }
    if (given.empty())
      throw bad_param("structured_outputs",
                      "Invalid 'structured_outputs': expected one of 'json', 'regex', 'choice', "
                      "'grammar' or 'json_object'.");
    if (given.size() > 1)
      throw bad_param(given[1], fmt::format("Invalid 'structured_outputs': '{}' and '{}' cannot be "
                                            "used together; give one constraint.",
                                            given[0], given[1]));
    found.push_back({"structured_outputs", so});
  }

  if (const json* v = find_field(body, "guided_json")) {
    check_schema_bytes(*v, "guided_json", lim);
    StructuredOutputs so;
    so.json = schema_text(*v, "guided_json", ordered, {"guided_json"});
    found.push_back({"guided_json", so});
  }
  if (const json* v = find_field(body, "guided_regex")) {
    check_schema_bytes(*v, "guided_regex", lim);
    StructuredOutputs so;
    so.regex = nonempty_string(*v, "guided_regex");
    found.push_back({"guided_regex", so});
  }
  if (const json* v = find_field(body, "guided_choice")) {
    check_schema_bytes(*v, "guided_choice", lim);
    StructuredOutputs so;
    so.choice = choice_list(*v, "guided_choice");
    found.push_back({"guided_choice", so});
  }
  if (const json* v = find_field(body, "guided_grammar")) {
    check_schema_bytes(*v, "guided_grammar", lim);
    StructuredOutputs so;
    so.grammar = nonempty_string(*v, "guided_grammar");
    found.push_back({"guided_grammar", so});
  }
  if (found.empty()) return std::nullopt;
  if (found.size() > 1)
    throw bad_param(found[1].param,
                    fmt::format("Invalid '{}': '{}' and '{}' cannot be used together; give one "
                                "output constraint.",
                                found[1].param, found[0].param, found[1].param));
  if (param) *param = found[0].param;
  return std::move(found[0].so);
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
      // An assistant turn of tool calls only: empty text, as vLLM renders it (templates such as
      // Qwen3's test `'</think>' in message.content`, which fails on none).
      om["content"] = "";
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
      for (size_t j = 0; j < tool_calls->size(); ++j) {
        const json& c = (*tool_calls)[j];
        const std::string pc = fmt::format("{}.tool_calls[{}]", p, j);
        if (!c.is_object()) wrong_type(pc, "an object", c);
        const json* fn = &function_of(c, pc);
        if (const json* a = find_field(*fn, "arguments"); a && !a->is_string() && !a->is_object())
          wrong_type(pc + ".function.arguments", "a string", *a);
        if (const json* id = find_field(c, "id"); id && !id->is_string())
          wrong_type(pc + ".id", "a string", *id);
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

  // output constraint; schemas and tools are read again with the client's key order
  std::optional<ojson> ordered_body;
  if (!ctx.raw_body.empty() &&
      (body.contains("response_format") || body.contains("structured_outputs") ||
       body.contains("guided_json") || body.contains("tools"))) {
    try {
      ordered_body = ojson::parse(ctx.raw_body);
    } catch (const std::exception&) {
    }
  }
  const ojson* ordered = ordered_body ? &*ordered_body : nullptr;
  sp.structured_outputs = parse_structured_outputs(body, ordered, lim, &r.constraint_param);

  // prompt
  if (chat) {
    const json* msgs = find_field(body, "messages");
    if (!msgs) throw bad_param("messages", "Missing required parameter: 'messages'.");
    ChatTemplateArgs args;
    args.messages = normalize_messages(*msgs, lim.max_messages);
    const std::vector<ToolSpec> tools = parse_tools(body, ordered, lim, args.tools);
    apply_tool_choice(body, tools, ctx.parsing, gen, r, args);
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
    if (ctx.parsing.reasoning_parser) {
      // The reasoning parser splits the output; a constraint starts after the reasoning unless
      // the prompt already closed it (Qwen3's enable_thinking=false).
      const PromptReasoning pr = prompt_reasoning(text);
      r.output.reasoning = *ctx.parsing.reasoning_parser;
      r.output.starts_in_reasoning = starts_in_reasoning(*r.output.reasoning, pr);
      if (sp.structured_outputs && pr != PromptReasoning::kClosed) {
        const std::vector<int32_t> close =
            encode_checked(gen, std::string(kThinkClose), false, "messages");
        if (close.size() == 1) sp.structured_outputs->start_after_token = close[0];
      }
    }
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
