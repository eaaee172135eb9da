// Tools in a chat request: the tools array and tool_choice.
#include "server/tool_request.h"

#include <fmt/format.h>

#include "grammar/json_schema.h"

namespace inferd::server {

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

namespace {

// What tool_choice asks for: "none", "auto", "required" or "function" (with its name).
struct ToolChoice {
  std::string mode;
  std::string named;
};

ToolChoice parse_tool_choice(const json& body, bool have_tools) {
  ToolChoice c{have_tools ? "auto" : "none", ""};
  const json* tc = find_field(body, "tool_choice");
  if (!tc) return c;
  if (tc->is_string()) {
    c.mode = tc->get<std::string>();
    if (c.mode != "none" && c.mode != "auto" && c.mode != "required")
      throw bad_param("tool_choice",
                      fmt::format("Invalid value: '{}'. Supported values are: 'none', 'auto', "
                                  "'required', or an object naming a function.",
                                  c.mode));
    return c;
  }
  if (!tc->is_object()) wrong_type("tool_choice", "a string or an object", *tc);
  if (const json* type = find_field(*tc, "type")) {
    if (!type->is_string() || type->get<std::string>() != "function")
      throw bad_param("tool_choice.type", "Invalid 'tool_choice.type': expected 'function'.");
  }
  const json* fn = find_field(*tc, "function");
  if (!fn)
    throw bad_param("tool_choice.function", "Missing required parameter: 'tool_choice.function'.");
  if (!fn->is_object()) wrong_type("tool_choice.function", "an object", *fn);
  const json* name = find_field(*fn, "name");
  if (!name)
    throw bad_param("tool_choice.function.name",
                    "Missing required parameter: 'tool_choice.function.name'.");
  if (!name->is_string()) wrong_type("tool_choice.function.name", "a string", *name);
  c.mode = "function";
  c.named = name->get<std::string>();
  return c;
}

// The grammar of the tool calls `chosen` (tools[index[k]]) in `format`. A tool whose parameters
// cannot be enforced is named in the 400.
std::string tool_grammar(ToolCallFormat format, const std::vector<ToolSpec>& chosen,
                         const std::vector<size_t>& index, bool single, bool mistral_marker) {
  try {
    return tool_call_grammar(format, chosen, single, mistral_marker);
  } catch (const std::exception& all) {
    for (size_t k = 0; k < chosen.size(); ++k) {
      try {
        (void)grammar::json_schema_to_gbnf(chosen[k].parameters, {"root", "p-", chosen[k].strict});
      } catch (const std::exception& e) {
        const std::string p = fmt::format("tools[{}].function.parameters", index[k]);
        throw bad_param(p, fmt::format("Invalid '{}': {}", p, e.what()));
      }
    }
    throw bad_param(
        "tools", fmt::format("Invalid 'tools': the tool calls cannot be enforced: {}", all.what()));
  }
}

// "required" or a named function: the output is constrained to tool calls of the chosen tools.
void require_tool_calls(const ToolChoice& choice, const std::vector<ToolSpec>& tools, bool parallel,
                        const ChatParsing& parsing, const Generator& gen, CompletionRequest& r) {
  if (r.params.structured_outputs)
    throw bad_param("tool_choice",
                    "Invalid 'tool_choice': 'required' or a named function cannot be used "
                    "together with response_format or structured outputs (both constrain the "
                    "output).");
  const bool named = choice.mode == "function";
  std::vector<ToolSpec> chosen;
  std::vector<size_t> index;
  for (size_t i = 0; i < tools.size(); ++i)
    if (!named || tools[i].name == choice.named) {
      chosen.push_back(tools[i]);
      index.push_back(i);
    }
  if (chosen.empty())
    throw bad_param("tool_choice.function.name",
                    fmt::format("Invalid 'tool_choice.function.name': no tool named '{}' in "
                                "'tools'.",
                                choice.named));
  if (named) chosen.resize(1), index.resize(1);
  const ToolCallFormat format = parsing.tool_call_parser ? *parsing.tool_call_parser
                                : named                  ? ToolCallFormat::kArguments
                                                         : ToolCallFormat::kJsonArray;
  const bool single = named || !parallel;
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
  so.grammar = tool_grammar(format, chosen, index, single, mistral_marker);
  r.params.structured_outputs = std::move(so);
  r.constraint_param = "tools";
  r.output.tools = format;
  r.output.function_name = choice.named;
  r.output.single_call = single;
}

}  // namespace

void apply_tool_choice(const json& body, const std::vector<ToolSpec>& tools,
                       const ChatParsing& parsing, const Generator& gen, CompletionRequest& r,
                       ChatTemplateArgs& args) {
  const ToolChoice choice = parse_tool_choice(body, !tools.empty());
  const bool parallel = get_bool(body, "parallel_tool_calls").value_or(true);
  if (choice.mode == "none") {
    args.tools = nullptr;
    return;
  }
  if (tools.empty()) {
    if (choice.mode == "auto") return;
    throw bad_param("tool_choice",
                    fmt::format("Invalid 'tool_choice': {} needs 'tools'.",
                                choice.mode == "function" ? "a named function" : "'required'"));
  }
  if (choice.mode == "auto") {
    if (!parsing.enable_auto_tool_choice || !parsing.tool_call_parser)
      throw bad_param("tool_choice",
                      "\"auto\" tool choice requires --enable-auto-tool-choice and "
                      "--tool-call-parser to be set on the server; use tool_choice \"none\", "
                      "\"required\" or a named function instead.");
    r.output.tools = *parsing.tool_call_parser;
    r.output.single_call = !parallel;
  } else {
    require_tool_calls(choice, tools, parallel, parsing, gen, r);
  }
  // Mistral's [TOOL_CALLS] is a special token: keep it in the text the parser reads.
  if (r.output.tools == ToolCallFormat::kMistral && !find_field(body, "skip_special_tokens"))
    r.params.skip_special_tokens = false;
}

}  // namespace inferd::server
