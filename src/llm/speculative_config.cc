// --speculative-config (see speculative_config.h).
#include "llm/speculative_config.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"

namespace inferd {

namespace {

using nlohmann::json;

constexpr const char* kFlag = "--speculative-config";

// An integer field: nullopt when absent or null; an Error naming it when not an integer in
// [lo, hi].
std::optional<int32_t> int_field(const json& j, const char* key, int64_t lo, int64_t hi) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer())
    fail("{}: \"{}\" must be an integer, got {}", kFlag, key, it->dump());
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) fail("{}: \"{}\" is {}: expected {}..{}", kFlag, key, v, lo, hi);
  return int32_t(v);
}

std::string string_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (!it->is_string()) fail("{}: \"{}\" must be a string, got {}", kFlag, key, it->dump());
  return it->get<std::string>();
}

std::optional<int32_t> num_speculative_tokens(const json& j) {
  const std::optional<int32_t> k = int_field(j, "num_speculative_tokens", 1, kMaxSpeculativeTokens);
  if (!k) fail("{}: \"num_speculative_tokens\" is missing (1..{})", kFlag, kMaxSpeculativeTokens);
  return k;
}

SpeculativeConfig draft_model_config(const json& j, const std::string& model, bool eagle3) {
  const char* name = eagle3 ? "eagle3" : "draft_model";
  if (model.empty())
    fail("{}: method {} needs \"model\" (the {}'s path)", kFlag, name,
         eagle3 ? "EAGLE-3 head" : "draft");
  for (const char* key : {"prompt_lookup_min", "prompt_lookup_max"})
    if (j.contains(key) && !j[key].is_null())
      fail("{}: \"{}\" is for method ngram, not {}", kFlag, key, name);
  SpeculativeConfig c;
  c.method = eagle3 ? SpeculativeConfig::Method::kEagle3 : SpeculativeConfig::Method::kDraftModel;
  c.model = model;
  c.num_speculative_tokens = *num_speculative_tokens(j);
  if (auto d = int_field(j, "disable_by_batch_size", 0, 1 << 20)) c.disable_by_batch_size = *d;
  return c;
}

}  // namespace

SpeculativeConfig parse_speculative_config(const std::string& json_text) {
  SpeculativeConfig c;
  if (json_text.empty()) return c;
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", kFlag, e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object, got {}", kFlag, j.dump());
  static const char* const kKnown[] = {"method",
                                       "model",
                                       "num_speculative_tokens",
                                       "prompt_lookup_min",
                                       "prompt_lookup_max",
                                       "draft_tensor_parallel_size",
                                       "disable_by_batch_size"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : kKnown) known = known || it.key() == k;
    if (!known) {
      fail(
          "{}: unknown field \"{}\": expected method, model, num_speculative_tokens, "
          "prompt_lookup_min, prompt_lookup_max, draft_tensor_parallel_size or "
          "disable_by_batch_size",
          kFlag, it.key());
    }
  }
  std::string method = string_field(j, "method");
  const std::string model = string_field(j, "model");
  // vLLM infers the method from "model" when it is absent ("ngram" or a draft's path).
  if (method.empty()) {
    if (model.empty())
      fail("{}: \"method\" is missing: expected ngram, draft_model or eagle3", kFlag);
    method = model == "ngram" || model == "[ngram]" ? "ngram" : "draft_model";
  }
  const std::optional<int32_t> tp = int_field(j, "draft_tensor_parallel_size", 1, 1 << 20);
  if (tp && *tp != 1)
    fail(
        "{}: \"draft_tensor_parallel_size\" {}: only 1 is supported (tensor parallelism is "
        "issue 33)",
        kFlag, *tp);
  if (method == "eagle")
    fail(
        "{}: method \"eagle\" (EAGLE-1/2 heads) is not supported: expected ngram, draft_model "
        "or eagle3",
        kFlag);
  if (method == "draft_model" || method == "eagle3")
    return draft_model_config(j, model, method == "eagle3");
  if (method != "ngram")
    fail("{}: unknown \"method\" \"{}\": expected ngram, draft_model or eagle3", kFlag, method);
  if (!model.empty() && model != "ngram" && model != "[ngram]")
    fail("{}: method ngram takes no \"model\", got \"{}\"", kFlag, model);
  const std::optional<int32_t> k = num_speculative_tokens(j);
  std::optional<int32_t> lo = int_field(j, "prompt_lookup_min", 1, 1024);
  std::optional<int32_t> hi = int_field(j, "prompt_lookup_max", 1, 1024);
  // vLLM's defaults: both 5 when neither is given, else the one given for the other.
  if (!lo && !hi) lo = hi = 5;
  if (!lo) lo = hi;
  if (!hi) hi = lo;
  if (*lo > *hi)
    fail("{}: \"prompt_lookup_min\" {} is larger than \"prompt_lookup_max\" {}", kFlag, *lo, *hi);
  c.method = SpeculativeConfig::Method::kNgram;
  c.num_speculative_tokens = *k;
  c.prompt_lookup_min = *lo;
  c.prompt_lookup_max = *hi;
  if (auto d = int_field(j, "disable_by_batch_size", 0, 1 << 20)) c.disable_by_batch_size = *d;
  return c;
}

namespace {

// token text -> id of a tokenizer.json (model.vocab and added_tokens).
std::map<std::string, int64_t> vocabulary_of(const std::filesystem::path& file) {
  std::ifstream in(file);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: {}: not valid JSON ({})", kFlag, file.string(), e.what());
  }
  std::map<std::string, int64_t> v;
  if (auto m = j.find("model"); m != j.end() && m->is_object()) {
    if (auto vocab = m->find("vocab"); vocab != m->end() && vocab->is_object()) {
      for (auto it = vocab->begin(); it != vocab->end(); ++it)
        if (it->is_number_integer()) v[it.key()] = it->get<int64_t>();
    } else if (vocab != m->end() && vocab->is_array()) {  // Unigram: [[piece, score], ...]
      for (size_t i = 0; i < vocab->size(); ++i)
        if ((*vocab)[i].is_array() && !(*vocab)[i].empty() && (*vocab)[i][0].is_string())
          v[(*vocab)[i][0].get<std::string>()] = int64_t(i);
    }
  }
  if (auto a = j.find("added_tokens"); a != j.end() && a->is_array()) {
    for (const json& t : *a)
      if (t.contains("content") && t["content"].is_string() && t.contains("id") &&
          t["id"].is_number_integer())
        v[t["content"].get<std::string>()] = t["id"].get<int64_t>();
  }
  return v;
}

}  // namespace

void check_draft_vocabulary(const std::string& target_dir, const std::string& draft_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(draft_dir))
    fail("{}: \"model\" '{}': not a model directory", kFlag, draft_dir);
  const fs::path t = fs::path(target_dir) / "tokenizer.json";
  const fs::path d = fs::path(draft_dir) / "tokenizer.json";
  if (!fs::is_regular_file(t) || !fs::is_regular_file(d)) return;
  const auto a = vocabulary_of(t), b = vocabulary_of(d);
  for (const auto& [text, id] : a) {
    auto it = b.find(text);
    if (it == b.end() || it->second != id)
      fail(
          "{}: the draft model's tokenizer ({}) differs from the target's ({}): token {} is id {} "
          "in the target, {} in the draft; a draft model must share the target's vocabulary",
          kFlag, d.string(), t.string(), json(text).dump(), id,
          it == b.end() ? std::string("absent") : std::to_string(it->second));
  }
  if (b.size() != a.size())
    fail(
        "{}: the draft model's tokenizer ({}) has {} tokens, the target's ({}) {}; a draft "
        "model must share the target's vocabulary",
        kFlag, d.string(), b.size(), t.string(), a.size());
}

}  // namespace inferd
