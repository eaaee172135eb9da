// The --models file in YAML (models_yaml.h): yaml-cpp's node tree to nlohmann JSON, typing plain
// scalars by YAML 1.2's core schema, with the line of every mapping key.
#include "router/models_yaml.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <regex>
#include <set>

#include "core/error.h"

namespace inferd::router {

namespace {

using json = nlohmann::json;

// A plain (unquoted) scalar typed as YAML 1.2's core schema types it.
json plain_scalar(const std::string& s) {
  static const std::set<std::string> kNull{"", "~", "null", "Null", "NULL"};
  static const std::set<std::string> kTrue{"true", "True", "TRUE"};
  static const std::set<std::string> kFalse{"false", "False", "FALSE"};
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (kNull.count(s)) return nullptr;
  if (kTrue.count(s)) return true;
  if (kFalse.count(s)) return false;
  try {
    if (std::regex_match(s, kInt)) return std::stoll(s);
    if (std::regex_match(s, kFloat)) return std::stod(s);
  } catch (const std::out_of_range&) {
  }
  return s;  // out of range, or text: a string
}

json convert(const YAML::Node& node, const json::json_pointer& at, const std::string& source,
             std::map<std::string, int>& lines) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      // "!": a quoted scalar; an explicit !!str.
      if (tag == "!" || tag == "tag:yaml.org,2002:str") return node.Scalar();
      return plain_scalar(node.Scalar());
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (size_t i = 0; i < node.size(); ++i)
        out.push_back(convert(node[i], at / i, source, lines));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (auto it = node.begin(); it != node.end(); ++it) {
        const int line = it->first.Mark().line + 1;
        if (!it->first.IsScalar())
          fail("{}:{}: a key must be a plain name (a scalar), not a list or mapping", source, line);
        const std::string key = it->first.Scalar();
        if (out.contains(key))
          fail("{}:{}: duplicate key '{}' (given on line {} already)", source, line, key,
               lines[(at / key).to_string()]);
        lines[(at / key).to_string()] = line;
        out[key] = convert(it->second, at / key, source, lines);
      }
      return out;
    }
  }
  return nullptr;
}

}  // namespace

YamlAsJson yaml_to_json(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) fail("{}: not YAML: {}", source, e.msg);
    fail("{}:{}: not YAML: {}", source, e.mark.line + 1, e.msg);
  }
  YamlAsJson out;
  out.doc = convert(root, json::json_pointer(), source, out.key_lines);
  return out;
}

bool is_yaml_models_file(const std::string& source, const std::string& text) {
  const std::string ext = std::filesystem::path(source).extension().string();
  if (ext == ".yaml" || ext == ".yml") return true;
  if (ext == ".json") return false;
  const size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string::npos && text[first] != '{' && text[first] != '[';
}

}  // namespace inferd::router
