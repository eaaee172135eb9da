// The output constraint of a request: response_format (json_object, json_schema), vLLM's
// structured_outputs object, or its older guided_json / guided_regex / guided_choice /
// guided_grammar fields, read into StructuredOutputs. The engine compiles what this gives.
#include <fmt/format.h>

#include "server/protocol.h"

namespace inferd::server {

namespace {

// One constraint found in the body and the field it came from.
struct Found {
  std::string param;
  StructuredOutputs so;
};

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

// response_format: {"type": "text" | "json_object" | "json_schema", "json_schema": {...}}.
std::optional<StructuredOutputs> response_format(const json& rf, const ojson* ordered,
                                                 const RequestLimits& lim) {
  if (!rf.is_object()) wrong_type("response_format", "an object", rf);
  check_schema_bytes(rf, "response_format", lim);
  const json* t = find_field(rf, "type");
  if (!t)
    throw bad_param("response_format.type", "Missing required parameter: 'response_format.type'.");
  if (!t->is_string()) wrong_type("response_format.type", "a string", *t);
  const std::string type = t->get<std::string>();
  StructuredOutputs so;
  if (type == "json_object") {
    so.json_object = true;
    return so;
  }
  if (type == "text") return std::nullopt;
  if (type != "json_schema")
    throw bad_param("response_format.type",
                    fmt::format("Invalid value: '{}'. Supported values are: 'text', "
                                "'json_object' and 'json_schema'.",
                                type));
  const json* js = find_field(rf, "json_schema");
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
  return so;
}

// One key of the structured_outputs object into `so`; false for a key that constrains nothing
// (a false json_object, one of vLLM's backend options).
bool structured_outputs_key(const std::string& k, const json& v, const ojson* ordered,
                            StructuredOutputs& so) {
  const std::string p = "structured_outputs." + k;
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
    if (!v.get<bool>()) return false;
    so.json_object = true;
  } else if (k == "disable_fallback" || k == "disable_any_whitespace" ||
             k == "disable_additional_properties") {
    if (!v.is_boolean()) wrong_type(p, "a boolean", v);
    return false;  // options of vLLM's backends; this one's behaviour is fixed
  } else {
    throw bad_param(p, fmt::format("Invalid '{}': not supported. 'structured_outputs' takes "
                                   "one of 'json', 'regex', 'choice', 'grammar' or "
                                   "'json_object'.",
                                   p));
  }
  return true;
}

// vLLM's structured_outputs object: exactly one of json, regex, choice, grammar, json_object.
StructuredOutputs structured_outputs_object(const json& obj, const ojson* ordered,
                                            const RequestLimits& lim) {
  if (!obj.is_object()) wrong_type("structured_outputs", "an object", obj);
  check_schema_bytes(obj, "structured_outputs", lim);
  StructuredOutputs so;
  std::vector<std::string> given;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.value().is_null()) continue;
    if (structured_outputs_key(it.key(), it.value(), ordered, so))
      given.push_back("structured_outputs." + it.key());
  }
  if (given.empty())
    throw bad_param("structured_outputs",
                    "Invalid 'structured_outputs': expected one of 'json', 'regex', 'choice', "
                    "'grammar' or 'json_object'.");
  if (given.size() > 1)
    throw bad_param(given[1], fmt::format("Invalid 'structured_outputs': '{}' and '{}' cannot be "
                                          "used together; give one constraint.",
                                          given[0], given[1]));
  return so;
}

// vLLM's older guided_json / guided_regex / guided_choice / guided_grammar fields.
void guided_fields(const json& body, const ojson* ordered, const RequestLimits& lim,
                   std::vector<Found>& found) {
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
}

}  // namespace

std::optional<StructuredOutputs> parse_structured_outputs(const json& body, const ojson* ordered,
                                                          const RequestLimits& lim,
                                                          std::string* param) {
  std::vector<Found> found;
  if (const json* rf = find_field(body, "response_format")) {
    if (auto so = response_format(*rf, ordered, lim)) found.push_back({"response_format", *so});
  }
  if (const json* so = find_field(body, "structured_outputs"))
    found.push_back({"structured_outputs", structured_outputs_object(*so, ordered, lim)});
  guided_fields(body, ordered, lim, found);
  if (found.empty()) return std::nullopt;
  if (found.size() > 1)
    throw bad_param(found[1].param,
                    fmt::format("Invalid '{}': '{}' and '{}' cannot be used together; give one "
                                "output constraint.",
                                found[1].param, found[0].param, found[1].param));
  if (param) *param = found[0].param;
  return std::move(found[0].so);
}

}  // namespace inferd::server
