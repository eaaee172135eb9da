// The --models file of `inferd serve` in YAML (models_config.h): a YAML document read with
// yaml-cpp and turned into the JSON value the JSON form of the file gives, with the line of each
// mapping key so that errors name it. Plain scalars are typed by YAML 1.2's core schema (the
// YAML 1.2.2 specification, section 10.3: null, true/false, integers, floats; anything else a
// string); quoted scalars are strings. A key given twice in one mapping is an error (YAML 1.2
// requires keys to be unique; yaml-cpp keeps both).
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace inferd::router {

struct YamlAsJson {
  nlohmann::json doc;
  // The 1-based line of each mapping key, by the JSON pointer of its value ("/models/1/dtype").
  std::map<std::string, int> key_lines;
};

// Throws Error naming `source`, the line and the problem (not YAML, a duplicate key, a key that
// is not a scalar).
YamlAsJson yaml_to_json(const std::string& text, const std::string& source);

// Whether a --models file is YAML: its name ends in .yaml or .yml; with another extension (or
// none) but .json, when its first non-blank character opens no JSON object or list.
bool is_yaml_models_file(const std::string& source, const std::string& text);

}  // namespace inferd::router
