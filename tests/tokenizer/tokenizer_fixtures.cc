#include "tokenizer_fixtures.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace inferd::testing {

using nlohmann::json;

namespace {

const std::string kFixtureDir = std::string(INFERD_TEST_DATA_DIR) + "/tokenizer_fixtures";
const std::string kTokenizerDir = std::string(INFERD_TEST_DATA_DIR) + "/tokenizers";

bool is_line_terminator_free(std::string_view s) {
  return s.find('\n') == std::string_view::npos && s.find('\r') == std::string_view::npos &&
         s.find("\xE2\x80\xA8") == std::string_view::npos &&
         s.find("\xE2\x80\xA9") == std::string_view::npos;
}

// deriveWordPiece of tools/make_tokenizer_fixtures.mjs.
json derive_wordpiece(const json& j, const json& opts) {
  json vocab = json::object();
  int n = 0;
  for (const json& s : opts.at("specials")) vocab[s.get<std::string>()] = n++;
  std::vector<std::pair<int64_t, std::string>> entries;
  for (auto it = j.at("model").at("vocab").begin(); it != j.at("model").at("vocab").end(); ++it) {
    entries.emplace_back(it.value().get<int64_t>(), it.key());
  }
  std::sort(entries.begin(), entries.end());
  const std::string meta = "\xE2\x96\x81";
  for (const auto& [id, tok] : entries) {
    if (tok.size() >= 2 && tok.front() == '<' && tok.back() == '>' &&
        is_line_terminator_free(std::string_view(tok).substr(1, tok.size() - 2))) {
      continue;  // /^<.*>$/ (byte tokens and the like)
    }
    const std::string w = tok.rfind(meta, 0) == 0 ? tok.substr(meta.size()) : "##" + tok;
    if (w.empty() || w == "##" || vocab.contains(w)) continue;
    vocab[w] = n++;
  }
  return json{{"type", "WordPiece"},
              {"unk_token", "[UNK]"},
              {"continuing_subword_prefix", "##"},
              {"max_input_chars_per_word", opts.value("max_chars", 100)},
              {"vocab", std::move(vocab)}};
}

}  // namespace

json apply_tokenizer_patch(const json& base, const json& patch) {
  json j = base;
  if (patch.is_null()) return j;
  if (patch.contains("wordpiece_from_vocab")) {
    j["model"] = derive_wordpiece(j, patch["wordpiece_from_vocab"]);
    j["added_tokens"] = json::array();
  }
  if (patch.contains("set")) {
    for (auto it = patch["set"].begin(); it != patch["set"].end(); ++it) j[it.key()] = it.value();
  }
  if (patch.contains("model_set")) {
    for (auto it = patch["model_set"].begin(); it != patch["model_set"].end(); ++it) {
      j["model"][it.key()] = it.value();
    }
  }
  if (patch.value("drop_special_added", false)) {
    json kept = json::array();
    for (const json& t : j["added_tokens"]) {
      if (!t.value("special", false)) kept.push_back(t);
    }
    j["added_tokens"] = kept;
  }
  if (patch.contains("added_tokens_append")) {
    int64_t next = static_cast<int64_t>(j["model"]["vocab"].size());
    for (const json& v : j["model"]["vocab"]) next = std::max(next, v.get<int64_t>() + 1);
    for (const json& t : j["added_tokens"]) next = std::max(next, t["id"].get<int64_t>() + 1);
    for (const json& t : patch["added_tokens_append"]) {
      json e = t;
      const std::string content = t["content"].get<std::string>();
      e["id"] = j["model"]["vocab"].contains(content) ? j["model"]["vocab"][content].get<int64_t>()
                                                      : next++;
      j["added_tokens"].push_back(e);
    }
  }
  return j;
}

std::vector<std::string> tokenizer_fixture_names() {
  std::vector<std::string> real = {"llama2", "llama3", "llama3_1",
                                   "qwen3",  "gemma3", "deepseek_v3"};
  std::vector<std::string> variants;
  if (std::filesystem::is_directory(kFixtureDir)) {
    for (const auto& e : std::filesystem::directory_iterator(kFixtureDir)) {
      const std::string f = e.path().filename().string();
      if (f.rfind("v_", 0) == 0 && e.path().extension() == ".json") {
        variants.push_back(e.path().stem().string());
      }
    }
  }
  std::sort(variants.begin(), variants.end());
  real.insert(real.end(), variants.begin(), variants.end());
  return real;
}

const std::vector<std::string>& fixture_corpus() {
  static const std::vector<std::string> corpus = [] {
    std::vector<std::string> out;
    const json corpus_json = read_json(kFixtureDir + "/corpus.json");
    for (const json& t : corpus_json.at("cases")) {
      out.push_back(t.get<std::string>());
    }
    return out;
  }();
  return corpus;
}

const json& tokenizer_fixture(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<json>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[name];
  if (!slot) slot = std::make_unique<json>(read_json(kFixtureDir + "/" + name + ".json"));
  return *slot;
}

std::string tokenizer_dir(const std::string& base) {
  const std::string dir = kTokenizerDir + "/" + base;
  if (!std::filesystem::is_regular_file(dir + "/tokenizer.json")) {
    throw std::runtime_error("tokenizer files missing: " + dir +
                             "/tokenizer.json not found; run scripts/fetch-test-data.sh first");
  }
  return dir;
}

const Tokenizer& fixture_tokenizer(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  static std::map<std::string, std::unique_ptr<json>> bases;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[name];
  if (slot) return *slot;
  const json& fx = tokenizer_fixture(name);
  const std::string base = fx.at("base").get<std::string>();
  const std::string dir = tokenizer_dir(base);
  const auto size = std::filesystem::file_size(dir + "/tokenizer.json");
  if (size != fx.at("tokenizer_json_size").get<uint64_t>()) {
    throw std::runtime_error(dir + "/tokenizer.json is not the file the fixtures were made with (" +
                             std::to_string(size) + " bytes, expected " +
                             fx.at("tokenizer_json_size").dump() +
                             "); delete it and run scripts/fetch-test-data.sh");
  }
  if (fx.at("patch").is_null()) {
    slot = std::make_unique<Tokenizer>(Tokenizer::from_dir(dir));
  } else {
    auto& b = bases[base];
    if (!b) b = std::make_unique<json>(read_json(dir + "/tokenizer.json"));
    slot =
        std::make_unique<Tokenizer>(Tokenizer::from_json(apply_tokenizer_patch(*b, fx["patch"])));
  }
  return *slot;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

}  // namespace inferd::testing
