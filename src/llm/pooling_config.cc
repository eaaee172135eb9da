// --task and the model's pooling (see pooling_config.h).
#include "llm/pooling_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/logging.h"

namespace inferd {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The JSON of `path` (named by `shown` in errors); nullopt when the file does not exist.
std::optional<json> read_json(const fs::path& path, const std::string& shown) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  if (!in) fail("{}: cannot be read", shown);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", shown, e.what());
  }
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// sentence-transformers' pooling_mode_* keys (and the newer "pooling_mode" string) -> a type.
PoolingType pooling_type_of(const json& cfg, const std::string& shown) {
  constexpr const char* kExpected =
      "expected one of pooling_mode_lasttoken, pooling_mode_mean_tokens, pooling_mode_cls_token";
  std::optional<PoolingType> type;
  std::string chosen;
  auto choose = [&](PoolingType t, const std::string& key) {
    if (type && *type != t)
      fail("{}: both {} and {} are set: inferd pools one way ({})", shown, chosen, key, kExpected);
    type = t;
    chosen = key;
  };
  for (auto it = cfg.begin(); it != cfg.end(); ++it) {
    const std::string& k = it.key();
    if (k == "pooling_mode" && it->is_string()) {
      const std::string m = it->get<std::string>();
      if (m == "lasttoken")
        choose(PoolingType::kLast, k);
      else if (m == "mean")
        choose(PoolingType::kMean, k);
      else if (m == "cls")
        choose(PoolingType::kCls, k);
      else
        fail("{}: pooling_mode '{}' is not supported: expected lasttoken, mean or cls", shown, m);
      continue;
    }
    if (k.rfind("pooling_mode_", 0) != 0 || !it->is_boolean() || !it->get<bool>()) continue;
    if (k == "pooling_mode_lasttoken")
      choose(PoolingType::kLast, k);
    else if (k == "pooling_mode_mean_tokens")
      choose(PoolingType::kMean, k);
    else if (k == "pooling_mode_cls_token")
      choose(PoolingType::kCls, k);
    else
      fail("{}: {} is not supported: {}", shown, k, kExpected);
  }
  if (!type) fail("{}: no pooling mode is set: {}", shown, kExpected);
  if (auto ip = cfg.find("include_prompt"); ip != cfg.end() && ip->is_boolean() && !ip->get<bool>())
    fail(
        "{}: include_prompt false (pooling without the prompt's instruction tokens) is not "
        "supported",
        shown);
  return *type;
}

// What the other sentence-transformers files say that would change the vectors.
void check_sentence_transformers_extras(const fs::path& dir) {
  if (auto sb = read_json(dir / "sentence_bert_config.json", "sentence_bert_config.json")) {
    if (auto lc = sb->find("do_lower_case"); lc != sb->end() && lc->is_boolean() && lc->get<bool>())
      fail(
          "sentence_bert_config.json: do_lower_case true (lower-casing the input before "
          "tokenization) is not supported");
  }
  if (auto st = read_json(dir / "config_sentence_transformers.json",
                          "config_sentence_transformers.json")) {
    if (auto dp = st->find("default_prompt_name"); dp != st->end() && dp->is_string())
      LOG_WARN(
          "config_sentence_transformers.json: default_prompt_name '{}' is not applied (as in "
          "vLLM): clients prepend the prompt themselves",
          dp->get<std::string>());
  }
}

}  // namespace

bool has_sentence_transformers_config(const std::string& model_dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(model_dir) / "modules.json", ec);
}

EngineConfig::Pooling read_sentence_transformers_pooling(const std::string& model_dir,
                                                         EngineConfig::Pooling defaults) {
  const fs::path dir(model_dir);
  EngineConfig::Pooling p = defaults;
  const std::optional<json> modules = read_json(dir / "modules.json", "modules.json");
  if (!modules) return p;
  if (!modules->is_array()) fail("modules.json: expected an array of modules");
  std::optional<std::string> pooling_path;
  bool normalize = false;
  for (size_t i = 0; i < modules->size(); ++i) {
    const json& m = (*modules)[i];
    const std::string type = m.is_object() && m.contains("type") && m["type"].is_string()
                                 ? m["type"].get<std::string>()
                                 : std::string();
    if (type.empty()) fail("modules.json: module {} has no type", i);
    if (ends_with(type, ".Transformer")) continue;
    if (ends_with(type, ".Normalize")) {
      normalize = true;
      continue;
    }
    if (ends_with(type, ".Pooling")) {
      if (pooling_path) fail("modules.json: more than one Pooling module");
      pooling_path = m.contains("path") && m["path"].is_string() ? m["path"].get<std::string>()
                                                                 : std::string();
      continue;
    }
    fail(
        "modules.json: module {} ({}) is not supported: inferd runs Transformer, Pooling and "
        "Normalize modules",
        i, type);
  }
  if (pooling_path) {
    const std::string shown = (fs::path(*pooling_path) / "config.json").string();
    const std::optional<json> cfg = read_json(dir / *pooling_path / "config.json", shown);
    if (!cfg) fail("modules.json names a Pooling module whose {} does not exist", shown);
    if (!cfg->is_object()) fail("{}: expected an object", shown);
    p.type = pooling_type_of(*cfg, shown);
  }
  p.normalize = normalize;
  check_sentence_transformers_extras(dir);
  return p;
}

void read_matryoshka(const std::string& model_dir, EngineConfig::Pooling& pooling) {
  const std::optional<json> cfg = read_json(fs::path(model_dir) / "config.json", "config.json");
  if (!cfg || !cfg->is_object()) return;
  if (auto m = cfg->find("is_matryoshka"); m != cfg->end() && !m->is_null()) {
    if (!m->is_boolean()) fail("config.json: is_matryoshka must be true or false");
    pooling.matryoshka = m->get<bool>();
  }
  if (auto d = cfg->find("matryoshka_dimensions"); d != cfg->end() && !d->is_null()) {
    if (!d->is_array()) fail("config.json: matryoshka_dimensions must be an array of sizes");
    pooling.dimensions.clear();
    for (const json& v : *d) {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > (1 << 24))
        fail("config.json: matryoshka_dimensions holds {}: expected positive sizes", v.dump());
      pooling.dimensions.push_back(int32_t(v.get<int64_t>()));
    }
    if (!pooling.dimensions.empty()) pooling.matryoshka = true;
  }
}

void apply_pooler_config(const std::string& json_text, EngineConfig::Pooling& pooling) {
  json cfg;
  try {
    cfg = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("--pooler-config: not valid JSON ({})", e.what());
  }
  if (!cfg.is_object()) fail("--pooler-config: expected a JSON object");
  std::optional<bool> normalize;
  std::string normalize_key;
  std::optional<PoolingType> type;
  for (auto it = cfg.begin(); it != cfg.end(); ++it) {
    const std::string& k = it.key();
    const json& v = *it;
    if (v.is_null()) continue;
    if (k == "pooling_type" || k == "seq_pooling_type") {
      const std::string t = v.is_string() ? v.get<std::string>() : std::string();
      PoolingType pt;
      if (t == "LAST")
        pt = PoolingType::kLast;
      else if (t == "MEAN")
        pt = PoolingType::kMean;
      else if (t == "CLS")
        pt = PoolingType::kCls;
      else
        fail("--pooler-config: {} {} is not supported: expected \"LAST\", \"MEAN\" or \"CLS\"", k,
             v.dump());
      if (type && *type != pt) fail("--pooler-config: pooling_type and seq_pooling_type disagree");
      type = pt;
    } else if (k == "normalize" || k == "use_activation") {
      if (!v.is_boolean()) fail("--pooler-config: {} must be true or false", k);
      if (normalize && *normalize != v.get<bool>())
        fail("--pooler-config: normalize and use_activation disagree");
      normalize = v.get<bool>();
      normalize_key = k;
    } else if (k == "task") {
      if (v != "embed")
        fail("--pooler-config: task {} is not supported: expected \"embed\"", v.dump());
    } else if (k == "enable_chunked_processing") {
      if (v != false) fail("--pooler-config: enable_chunked_processing is not supported");
    } else {
      fail(
          "--pooler-config: key '{}' is not supported: expected pooling_type (\"LAST\", "
          "\"MEAN\", \"CLS\") and normalize",
          k);
    }
  }
  if (type) pooling.type = *type;
  if (normalize) pooling.normalize = *normalize;
}

void resolve_task_and_pooling(const std::string& model_dir, const std::string& task,
                              const std::string& pooler_config, EngineConfig& engine) {
  if (task == "generate") {
    engine.task = ModelTask::kGenerate;
  } else if (task == "embed") {
    engine.task = ModelTask::kEmbed;
  } else if (task == "auto") {
    engine.task =
        has_sentence_transformers_config(model_dir) ? ModelTask::kEmbed : ModelTask::kGenerate;
  } else {
    fail("unknown --task '{}': expected generate, embed or auto", task);
  }
  if (engine.task == ModelTask::kGenerate) {
    if (!pooler_config.empty())
      fail("--pooler-config applies to embedding models: add --task embed");
    return;
  }
  // Embeddings: last-token pooling, normalised (vLLM's defaults for --task embed), then the
  // model's sentence-transformers config, its Matryoshka sizes, and the flag over all of them.
  EngineConfig::Pooling p = read_sentence_transformers_pooling(model_dir, EngineConfig::Pooling{});
  read_matryoshka(model_dir, p);
  if (!pooler_config.empty()) apply_pooler_config(pooler_config, p);
  engine.pooling = std::move(p);
}

}  // namespace inferd
