// GGUF metadata -> GgufVocab (see gguf_tokenizer.h).
#include "llm/gguf_tokenizer.h"

#include "model/loader/gguf_model.h"

#include <limits>
#include <string>

#include "core/error.h"

namespace inferd {

namespace {

constexpr const char* kTemplatePrefix = "tokenizer.chat_template.";

const GgufValue* find(const GgufMetadata& kv, const std::string& key) {
  auto it = kv.find(key);
  return it == kv.end() ? nullptr : &it->second;
}

const GgufValue& array_of(const GgufMetadata& kv, const std::string& key, GgufValueType elem,
                          const char* what) {
  const GgufValue* v = find(kv, key);
  if (!v) fail("GGUF: missing key '{}' (the tokenizer needs it)", key);
  bool ok = v->is_array();
  if (ok && elem == GgufValueType::kString) ok = v->elem_type == GgufValueType::kString;
  if (ok && elem == GgufValueType::kFloat32) {
    ok = v->elem_type == GgufValueType::kFloat32 || v->elem_type == GgufValueType::kFloat64;
  }
  if (ok && elem == GgufValueType::kInt32) {
    ok = v->elem_type != GgufValueType::kString && v->elem_type != GgufValueType::kBool &&
         v->elem_type != GgufValueType::kFloat32 && v->elem_type != GgufValueType::kFloat64 &&
         v->elem_type != GgufValueType::kArray;
  }
  if (!ok) fail("GGUF key '{}': expected an array of {}", key, what);
  return *v;
}

std::optional<int32_t> token_id(const GgufMetadata& kv, const std::string& key) {
  const GgufValue* v = find(kv, key);
  if (!v) return std::nullopt;
  const int64_t id = v->as_int(key);
  if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
    fail("GGUF key '{}': token id {} is out of range", key, id);
  }
  return static_cast<int32_t>(id);
}

std::optional<bool> flag(const GgufMetadata& kv, const std::string& key) {
  const GgufValue* v = find(kv, key);
  if (!v) return std::nullopt;
  return v->as_bool(key);
}

void read_templates(const GgufMetadata& kv, GgufVocab& out) {
  if (const GgufValue* t = find(kv, "tokenizer.chat_template")) {
    out.chat_template = t->as_string("tokenizer.chat_template");
  }
  if (const GgufValue* names = find(kv, "tokenizer.chat_templates")) {
    if (!names->is_array() || names->elem_type != GgufValueType::kString) {
      fail("GGUF key 'tokenizer.chat_templates': expected an array of strings");
    }
    for (const std::string& name : names->strings) {
      const std::string key = kTemplatePrefix + name;
      const GgufValue* t = find(kv, key);
      if (!t) fail("GGUF: tokenizer.chat_templates names '{}' but '{}' is missing", name, key);
      out.named_chat_templates.emplace_back(name, t->as_string(key));
    }
    return;
  }
  for (auto it = kv.lower_bound(kTemplatePrefix);
       it != kv.end() && it->first.rfind(kTemplatePrefix, 0) == 0; ++it) {
    out.named_chat_templates.emplace_back(it->first.substr(std::string(kTemplatePrefix).size()),
                                          it->second.as_string(it->first));
  }
}

}  // namespace

GgufVocab gguf_vocab_from_metadata(const GgufMetadata& kv) {
  GgufVocab out;
  const GgufValue* model = find(kv, "tokenizer.ggml.model");
  if (!model) fail("GGUF: missing key 'tokenizer.ggml.model' (the file holds no tokenizer)");
  out.model = model->as_string("tokenizer.ggml.model");
  if (const GgufValue* pre = find(kv, "tokenizer.ggml.pre")) {
    out.pre = pre->as_string("tokenizer.ggml.pre");
  }
  out.tokens = array_of(kv, "tokenizer.ggml.tokens", GgufValueType::kString, "strings").strings;
  if (find(kv, "tokenizer.ggml.scores")) {
    const auto& s = array_of(kv, "tokenizer.ggml.scores", GgufValueType::kFloat32, "floats");
    out.scores.assign(s.floats.begin(), s.floats.end());
  }
  if (find(kv, "tokenizer.ggml.token_type")) {
    const auto& t = array_of(kv, "tokenizer.ggml.token_type", GgufValueType::kInt32, "integers");
    out.token_types.reserve(t.ints.size());
    for (size_t i = 0; i < t.ints.size(); ++i) {
      if (t.ints[i] < 1 || t.ints[i] > 6) {
        fail("GGUF tokenizer.ggml.token_type[{}] is {}: expected 1 to 6", i, t.ints[i]);
      }
      out.token_types.push_back(static_cast<int32_t>(t.ints[i]));
    }
  }
  if (find(kv, "tokenizer.ggml.merges")) {
    out.merges = array_of(kv, "tokenizer.ggml.merges", GgufValueType::kString, "strings").strings;
  }
  out.bos_id = token_id(kv, "tokenizer.ggml.bos_token_id");
  out.eos_id = token_id(kv, "tokenizer.ggml.eos_token_id");
  out.unk_id = token_id(kv, "tokenizer.ggml.unknown_token_id");
  out.pad_id = token_id(kv, "tokenizer.ggml.padding_token_id");
  out.sep_id = token_id(kv, "tokenizer.ggml.seperator_token_id");
  out.eot_id = token_id(kv, "tokenizer.ggml.eot_token_id");
  out.eom_id = token_id(kv, "tokenizer.ggml.eom_token_id");
  out.add_bos = flag(kv, "tokenizer.ggml.add_bos_token");
  out.add_eos = flag(kv, "tokenizer.ggml.add_eos_token");
  out.add_space_prefix = flag(kv, "tokenizer.ggml.add_space_prefix");
  read_templates(kv, out);
  validate_gguf_vocab(out);
  return out;
}

Tokenizer tokenizer_from_gguf_metadata(const GgufMetadata& kv) {
  return tokenizer_from_gguf_vocab(gguf_vocab_from_metadata(kv));
}

GgufVocab gguf_vocab_from_file(const GgufFile& file) {
  try {
    return gguf_vocab_from_metadata(file.metadata());
  } catch (const Error& e) {
    fail("{}: {}", file.path(), e.what());
  }
}

Tokenizer tokenizer_from_gguf_file(const GgufFile& file) {
  const GgufVocab v = gguf_vocab_from_file(file);
  try {
    return tokenizer_from_gguf_vocab(v);
  } catch (const Error& e) {
    fail("{}: {}", file.path(), e.what());
  }
}

ModelVocabSource ModelVocabSource::open(const std::string& path) {
  ModelVocabSource s;
  s.path = path;
  if (is_gguf_model_path(path)) s.gguf = gguf_vocab_from_file(GgufFile::open(path));
  return s;
}

Tokenizer ModelVocabSource::tokenizer() const {
  return gguf ? tokenizer_from_gguf_vocab(*gguf) : Tokenizer::from_dir(path);
}

nlohmann::ordered_json ModelVocabSource::tokenizer_config() const {
  if (!gguf) return nlohmann::ordered_json();
  return nlohmann::ordered_json::parse(gguf_vocab_tokenizer_config(*gguf).dump());
}

std::vector<int32_t> ModelVocabSource::extra_stop_ids() const {
  return gguf ? gguf->stop_ids() : std::vector<int32_t>{};
}

}  // namespace inferd
