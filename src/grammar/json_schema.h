// JSON Schema -> GBNF (structured outputs' `json`, response_format json_schema, tool parameters)
// and the grammar of any JSON object (response_format json_object).
//
// Coverage: type (and type unions), properties / required / additionalProperties, enum / const,
// anyOf / oneOf, allOf (when it merges simply), $ref into the same document ("#", "#/$defs/x",
// "#/definitions/x", any local JSON pointer) including recursion, items / prefixItems (and draft-7
// tuple `items: [...]` with additionalItems) / minItems / maxItems, string minLength / maxLength
// (in code points) / pattern / format (date, time, date-time, uuid, email, ipv4), integer and
// number minimum / maximum / exclusiveMinimum / exclusiveMaximum, boolean, null. Annotations
// (title, description, examples, default, $schema, $id, $comment, deprecated, readOnly, writeOnly,
// ...) and keywords no validator knows are ignored; a keyword that would change what is valid but
// is not supported (patternProperties, not, if, uniqueItems: true, multipleOf, ...) is a
// GrammarError naming the keyword and its JSON pointer path.
//
// The grammar produces a subset of the valid documents, chosen so that generation ends:
//   - properties come in the schema's order (JSON text order when the schema is given as text;
//     the nlohmann::json overload sees them sorted by name); required ones always appear, optional
//     ones may be left out; additional properties (when allowed) come after the known ones, with
//     names that are not known property names and are written without escapes;
//   - whitespace between tokens is bounded: nothing, one space, or a newline and up to 20 spaces or
//     tabs; none before or after the top-level value;
//   - numbers without bounds have at most 15 integer digits, 15 fraction digits and 2 exponent
//     digits (3 would allow 1e999, which JavaScript reads as Infinity); integers without bounds
//     at most 15 digits; a one-sided bound gets the other side at +-(10^15 - 1);
//   - number bounds that are not integers are rounded inwards (minimum 0.5 -> 1); bounded numbers
//     are written without exponents;
//   - strings never hold raw control characters, \u escapes of surrogates, or (with a pattern)
//     other control characters than \b \f \n \r \t; strings without maxLength are unbounded;
//   - a schema without `type` takes the type its keywords imply (properties -> object, ...);
//   - oneOf is treated as anyOf: an output matching two alternatives is produced although oneOf
//     rejects it (write disjoint alternatives);
//   - minLength/maxLength together with pattern or format is a GrammarError.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace inferd::grammar {

struct JsonSchemaOptions {
  std::string root = "root";  // name of the rule matching the whole value
  std::string prefix;         // prefix of every other rule name (several schemas in one grammar)
  // OpenAI's strict mode: additionalProperties defaults to false (instead of true).
  bool strict = false;
};

// GBNF rules whose rule `options.root` matches the JSON texts valid under `schema` (see above).
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema,
                                const JsonSchemaOptions& options = {});
std::string json_schema_to_gbnf(const nlohmann::json& schema,
                                const JsonSchemaOptions& options = {});
// The schema as JSON text (keeps the properties' order); text that does not parse is a
// GrammarError.
std::string json_schema_text_to_gbnf(std::string_view schema_text,
                                     const JsonSchemaOptions& options = {});

// GBNF for any JSON object (response_format json_object).
std::string json_object_gbnf(std::string_view root = "root", std::string_view prefix = "");

}  // namespace inferd::grammar
