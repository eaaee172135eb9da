// See gguf_hf_metadata.h.
#include "gguf_hf_metadata.h"

#include <cctype>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <variant>
#include <vector>

namespace inferd::testing {

using nlohmann::json;

namespace {

const std::string kSpace = "\xe2\x96\x81";  // ▁

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// convert_hf_to_gguf.py's does_token_look_special.
bool looks_special(const std::string& t) {
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (starts_with(t, "<|") && ends_with(t, "|>")) return true;
  if (starts_with(t, "<\xef\xbd\x9c") && ends_with(t, "\xef\xbd\x9c>")) return true;  // <｜ ｜>
  return starts_with(t, "<unused") && ends_with(t, ">");
}

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && starts_with(t, "<0x") && t.back() == '>' &&
         std::isxdigit(static_cast<unsigned char>(t[3])) &&
         std::isxdigit(static_cast<unsigned char>(t[4]));
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<double> scores;
  std::vector<int64_t> types;
};

void add_special_vocab(const json& tj, const json& cfg, GgufMetadata& kv) {
  const std::pair<const char*, const char*> kinds[] = {
      {"bos", "bos_token_id"},       {"eos", "eos_token_id"},     {"unk", "unknown_token_id"},
      {"sep", "seperator_token_id"}, {"pad", "padding_token_id"}, {"cls", "cls_token_id"},
      {"mask", "mask_token_id"}};
  for (const auto& [typ, key] : kinds) {
    const std::string add = std::string("add_") + typ + "_token";
    if ((add == "add_bos_token" || add == "add_eos_token") && cfg.contains(add) &&
        cfg[add].is_boolean()) {
      kv["tokenizer.ggml." + add] = gguf_bool(cfg[add].get<bool>());
    }
    const std::string name = std::string(typ) + "_token";
    if (!cfg.contains(name)) continue;
    const json& e = cfg[name];
    std::string content;
    if (e.is_string()) {
      content = e.get<std::string>();
    } else if (e.is_object() && e.contains("content") && e["content"].is_string()) {
      content = e["content"].get<std::string>();
    } else {
      continue;
    }
    for (const json& a : tj.value("added_tokens", json::array())) {
      if (a["content"] == content) {
        kv[std::string("tokenizer.ggml.") + key] = gguf_u32(a["id"].get<uint32_t>());
        break;
      }
    }
  }
  if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      kv["tokenizer.chat_template"] = gguf_string(ct.get<std::string>());
    } else if (ct.is_array()) {
      std::vector<std::string> names;
      for (const json& t : ct) {
        const std::string n = t.value("name", "");
        if (n == "default") {
          kv["tokenizer.chat_template"] = gguf_string(t["template"].get<std::string>());
        } else if (!n.empty()) {
          names.push_back(n);
          kv["tokenizer.chat_template." + n] = gguf_string(t["template"].get<std::string>());
        }
      }
      if (!names.empty()) kv["tokenizer.chat_templates"] = gguf_strings(names);
    }
  }
}

Vocab gpt2_vocab(const json& tj) {
  std::map<int64_t, std::string> by_id;
  for (auto it = tj["model"]["vocab"].begin(); it != tj["model"]["vocab"].end(); ++it) {
    by_id[it.value().get<int64_t>()] = it.key();
  }
  std::map<std::string, const json*> added;
  for (const json& a : tj["added_tokens"]) {
    by_id[a["id"].get<int64_t>()] = a["content"].get<std::string>();
    added[a["content"].get<std::string>()] = &a;
  }
  Vocab v;
  const int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  for (int64_t i = 0; i < n; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      v.tokens.push_back("[PAD" + std::to_string(i) + "]");
      v.types.push_back(5);
      continue;
    }
    std::string t = it->second;
    auto a = added.find(t);
    if (a == added.end()) {
      v.types.push_back(1);
    } else if (a->second->value("special", false) || looks_special(t)) {
      v.types.push_back(3);
    } else {
      replace_all(t, kSpace, " ");
      v.types.push_back(4);
    }
    v.tokens.push_back(t);
  }
  return v;
}

std::vector<std::string> gguf_merges(const json& merges) {
  std::vector<std::string> out;
  for (const json& m : merges) {
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
      continue;
    }
    std::string parts[2] = {m[0].get<std::string>(), m[1].get<std::string>()};
    for (auto& p : parts) replace_all(p, " ", "\xc4\xa0");  // chr(ord(' ') + 256)
    out.push_back(parts[0] + " " + parts[1]);
  }
  return out;
}

Vocab spm_vocab(const json& tj, const json& cfg) {
  const json& model = tj["model"];
  std::map<std::string, int64_t> first_merge;
  int64_t rank = 0;
  for (const json& m : model["merges"]) {
    std::string piece;
    if (m.is_string()) {
      std::string s = m.get<std::string>();
      piece = s.substr(0, s.find(' ')) + s.substr(s.find(' ') + 1);
    } else {
      piece = m[0].get<std::string>() + m[1].get<std::string>();
    }
    first_merge.emplace(piece, rank++);
  }
  int64_t n = 0;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    n = std::max(n, it.value().get<int64_t>() + 1);
  }
  const json& decoder = cfg.value("added_tokens_decoder", json::object());
  for (auto it = decoder.begin(); it != decoder.end(); ++it)
    n = std::max<int64_t>(n, std::stoll(it.key()) + 1);
  Vocab v;
  for (int64_t i = 0; i < n; ++i) v.tokens.push_back("[PAD" + std::to_string(i) + "]");
  v.scores.assign(static_cast<size_t>(n), -1000.0);
  v.types.assign(static_cast<size_t>(n), 5);
  const std::string unk = model.value("unk_token", json(nullptr)).is_string()
                              ? model["unk_token"].get<std::string>()
                              : std::string();
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    const size_t id = it.value().get<size_t>();
    const std::string& t = it.key();
    v.tokens[id] = t;
    auto fm = first_merge.find(t);
    v.scores[id] = fm == first_merge.end() ? 0.0 : -1.0 - static_cast<double>(fm->second);
    v.types[id] = t == unk ? 2 : is_byte_token(t) ? 6 : 1;
  }
  for (auto it = decoder.begin(); it != decoder.end(); ++it) {
    const size_t id = std::stoul(it.key());
    std::string t = it.value()["content"].get<std::string>();
    if (it.value().value("special", false) || looks_special(t)) {
      v.types[id] = 3;
    } else {
      replace_all(t, kSpace, " ");
      v.types[id] = 4;
    }
    v.scores[id] = -1000.0;
    v.tokens[id] = t;
  }
  return v;
}

}  // namespace

GgufMetadata gguf_metadata_from_hf(const json& tj, const json& cfg, const HfGgufOptions& o) {
  GgufMetadata kv;
  kv["tokenizer.ggml.model"] = gguf_string(o.model);
  if (o.model == "gpt2") {
    const Vocab v = gpt2_vocab(tj);
    kv["tokenizer.ggml.pre"] = gguf_string(o.pre);
    kv["tokenizer.ggml.tokens"] = gguf_strings(v.tokens);
    kv["tokenizer.ggml.token_type"] = gguf_ints(GgufValueType::kInt32, v.types);
    kv["tokenizer.ggml.merges"] = gguf_strings(gguf_merges(tj["model"]["merges"]));
  } else if (o.model == "llama") {
    const Vocab v = spm_vocab(tj, cfg);
    kv["tokenizer.ggml.pre"] = gguf_string(o.pre.empty() ? "default" : o.pre);
    kv["tokenizer.ggml.tokens"] = gguf_strings(v.tokens);
    kv["tokenizer.ggml.scores"] = gguf_floats(v.scores);
    kv["tokenizer.ggml.token_type"] = gguf_ints(GgufValueType::kInt32, v.types);
  } else {
    throw std::invalid_argument("gguf_metadata_from_hf: model " + o.model);
  }
  add_special_vocab(tj, cfg, kv);
  if (o.add_space_prefix) kv["tokenizer.ggml.add_space_prefix"] = gguf_bool(*o.add_space_prefix);
  return kv;
}

json gguf_metadata_json(const GgufMetadata& kv) {
  json out = json::object();
  for (const auto& [key, v] : kv) {
    if (!v.is_array()) {
      std::visit([&](const auto& x) { out[key] = x; }, v.scalar);
    } else if (v.elem_type == GgufValueType::kString) {
      out[key] = v.strings;
    } else if (v.elem_type == GgufValueType::kFloat32 || v.elem_type == GgufValueType::kFloat64) {
      out[key] = v.floats;
    } else if (v.elem_type == GgufValueType::kBool) {
      out[key] = v.bools;
    } else {
      out[key] = v.ints;
    }
  }
  return out;
}

}  // namespace inferd::testing
