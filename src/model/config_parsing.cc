// Reading config.json (config_parsing.h): typed field access with errors naming the field, the
// two generations of rope parameters, the checks of keys inferd does not implement, and the
// pieces several architecture families share (activations, sliding windows, one rope).
#include "model/config_parsing.h"

#include <algorithm>
#include <set>
#include <string_view>

#include "core/error.h"

namespace inferd::config {

int64_t get_int(const json& j, const char* key, const std::string& src, int64_t def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def >= 0) return def;
    fail("{}: missing field '{}' (expected an integer)", src, key);
  }
  if (!it->is_number_integer())
    fail("{}: field '{}' must be an integer, got {}", src, key, it->dump());
  return it->get<int64_t>();
}

double get_num(const json& j, const char* key, const std::string& src, double def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) fail("{}: field '{}' must be a number, got {}", src, key, it->dump());
  return it->get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& src, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail("{}: field '{}' must be true or false, got {}", src, key, it->dump());
  return it->get<bool>();
}

bool is_set(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && !it->is_null();
}

// Values that mean the same: 1 and 1.0, "yarn" and "yarn".
bool same_value(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

// transformers 5 writes the rope parameters as `rope_parameters` (with `rope_theta` inside);
// older configs as top-level `rope_theta` plus `rope_scaling`. Merges both into one flat dict;
// a key given in both places with different values is an error.
json merged_rope_dict(const json& j, const json* nested, const std::string& src,
                      const std::string& where) {
  json out = json::object();
  if (nested != nullptr) {
    if (!nested->is_object()) fail("{}: {} must be an object, got {}", src, where, nested->dump());
    out = *nested;
  }
  auto merge = [&](const std::string& key, const json& v, const std::string& from) {
    if (v.is_null()) return;
    auto it = out.find(key);
    if (it != out.end() && !it->is_null() && !same_value(*it, v)) {
      fail("{}: {}.{} is {} but {} is {}: the two places disagree", src, where, key, it->dump(),
           from, v.dump());
    }
    out[key] = v;
  };
  if (auto it = j.find("rope_theta"); it != j.end()) merge("rope_theta", *it, "rope_theta");
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: rope_scaling must be an object, got {}", src, it->dump());
    for (const auto& [k, v] : it->items()) merge(k, v, "rope_scaling." + k);
  }
  if (auto t = out.find("type"); t != out.end()) {  // the old name of rope_type
    json type = *t;
    out.erase(t);
    merge("rope_type", type, where + ".type");
  }
  return out;
}

std::vector<double> get_factor_list(const json& r, const char* key, const std::string& src,
                                    const std::string& where, int64_t n) {
  auto it = r.find(key);
  if (it == r.end() || !it->is_array())
    fail("{}: {}.{} must be a list of {} numbers (longrope)", src, where, key, n);
  std::vector<double> v;
  for (const auto& e : *it) {
    if (!e.is_number()) fail("{}: {}.{} must hold numbers, got {}", src, where, key, e.dump());
    v.push_back(e.get<double>());
  }
  if (int64_t(v.size()) != n)
    fail("{}: {}.{} has {} entries, expected head_dim / 2 = {}", src, where, key, v.size(), n);
  return v;
}

RopeConfig parse_rope(const json& r, const ModelConfig& c, const json& top, double default_theta,
                      const std::string& src, const std::string& where) {
  RopeConfig rc;
  const std::string type = r.contains("rope_type") && r["rope_type"].is_string()
                               ? r["rope_type"].get<std::string>()
                               : std::string("default");
  static const std::set<std::string> kCommon = {"rope_type", "rope_theta"};
  std::set<std::string> allowed = kCommon;
  if (type == "default") {
    rc.type = RopeType::kDefault;
  } else if (type == "linear" || type == "dynamic") {
    rc.type = type == "linear" ? RopeType::kLinear : RopeType::kDynamic;
    allowed.insert("factor");
    if (!is_set(r, "factor")) fail("{}: {} needs 'factor' for rope_type '{}'", src, where, type);
  } else if (type == "llama3") {
    rc.type = RopeType::kLlama3;
    allowed.insert(
        {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"});
    for (const char* k : {"factor", "low_freq_factor", "high_freq_factor"})
      if (!is_set(r, k)) fail("{}: {} needs '{}' for rope_type 'llama3'", src, where, k);
  } else if (type == "yarn") {
    rc.type = RopeType::kYarn;
    allowed.insert({"factor", "original_max_position_embeddings", "attention_factor", "beta_fast",
                    "beta_slow", "mscale", "mscale_all_dim", "truncate"});
  } else if (type == "longrope") {
    rc.type = RopeType::kLongrope;
    allowed.insert({"factor", "original_max_position_embeddings", "attention_factor",
                    "short_factor", "long_factor"});
  } else {
    fail(
        "{}: unsupported rope type '{}' in {}: expected default, linear, dynamic, llama3, yarn "
        "or longrope",
        src, type, where);
  }
  for (const auto& [k, v] : r.items()) {
    if (k == "partial_rotary_factor") {
      if (!v.is_null() && (!v.is_number() || v.get<double>() != 1.0))
        fail("{}: {}.partial_rotary_factor = {} is not supported (only 1.0)", src, where, v.dump());
      continue;
    }
    if (!allowed.contains(k) && !v.is_null())
      fail("{}: {}.{} is not supported for rope_type '{}'", src, where, k, type);
  }
  rc.theta = get_num(r, "rope_theta", src, default_theta);
  if (!(rc.theta > 1.0)) fail("{}: {}.rope_theta must be > 1, got {}", src, where, rc.theta);
  rc.factor = get_num(r, "factor", src, 1.0);
  rc.low_freq_factor = get_num(r, "low_freq_factor", src, 1.0);
  rc.high_freq_factor = get_num(r, "high_freq_factor", src, 4.0);
  if (rc.type == RopeType::kLlama3 || rc.type == RopeType::kYarn ||
      rc.type == RopeType::kLongrope) {
    // transformers: a top-level original_max_position_embeddings (Phi-3) wins; else the one in
    // the rope dict; else max_position_embeddings.
    if (is_set(top, "original_max_position_embeddings")) {
      rc.original_max_position = get_int(top, "original_max_position_embeddings", src);
    } else {
      rc.original_max_position =
          get_int(r, "original_max_position_embeddings", src, c.max_position_embeddings);
    }
    if (rc.original_max_position <= 0)
      fail("{}: original_max_position_embeddings must be positive", src);
  }
  if (rc.type == RopeType::kYarn || rc.type == RopeType::kLongrope) {
    if (!is_set(r, "factor"))  // transformers: the ratio of the two lengths
      rc.factor = double(c.max_position_embeddings) / double(rc.original_max_position);
    rc.attention_factor = get_num(r, "attention_factor", src, -1.0);
  }
  if (rc.type == RopeType::kYarn) {
    rc.beta_fast = get_num(r, "beta_fast", src, 32.0);
    rc.beta_slow = get_num(r, "beta_slow", src, 1.0);
    rc.mscale = get_num(r, "mscale", src, 0.0);
    rc.mscale_all_dim = get_num(r, "mscale_all_dim", src, 0.0);
    rc.truncate = get_bool(r, "truncate", src, true);
  }
  if (rc.type == RopeType::kLongrope) {
    rc.short_factor = get_factor_list(r, "short_factor", src, where, c.head_dim / 2);
    rc.long_factor = get_factor_list(r, "long_factor", src, where, c.head_dim / 2);
  }
  if (!(rc.factor > 0)) fail("{}: {}.factor must be positive, got {}", src, where, rc.factor);
  return rc;
}

void reject_unhandled_keys(const json& j, const std::string& src,
                           std::initializer_list<std::string_view> handled) {
  for (const char* k :
       {"attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar",
        "embedding_multiplier", "logits_scaling", "residual_multiplier", "attention_multiplier",
        "num_experts", "num_local_experts", "no_rope_layers", "use_qk_norm"}) {
    if (std::find(handled.begin(), handled.end(), std::string_view(k)) != handled.end()) continue;
    if (is_set(j, k)) fail("{}: '{}' is set ({}) but not supported", src, k, j[k].dump());
  }
  if (is_set(j, "partial_rotary_factor") && get_num(j, "partial_rotary_factor", src, 1.0) != 1.0)
    fail("{}: partial_rotary_factor = {} is not supported (only 1.0)", src,
         j["partial_rotary_factor"].dump());
  if (get_bool(j, "use_bidirectional_attention", src, false))
    fail("{}: use_bidirectional_attention=true is not supported", src);
}

void check_silu_activation(const json& j, const std::string& src) {
  if (auto it = j.find("hidden_act"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || *it != "silu")
      fail("{}: unsupported hidden_act {}: expected \"silu\"", src, it->dump());
  }
}

std::vector<std::string> layer_types(const json& j, const std::string& src, const ModelConfig& c) {
  std::vector<std::string> types;
  if (auto it = j.find("layer_types"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || int64_t(it->size()) != c.num_layers)
      fail("{}: layer_types must be a list of num_hidden_layers ({}) strings", src, c.num_layers);
    for (const auto& t : *it) {
      if (!t.is_string() || (t != "full_attention" && t != "sliding_attention")) {
        fail(
            "{}: unsupported layer type {} in layer_types: expected \"full_attention\" or "
            "\"sliding_attention\"",
            src, t.dump());
      }
      types.push_back(t.get<std::string>());
    }
  }
  return types;
}

bool any_sliding(const std::vector<std::string>& types) {
  return std::find(types.begin(), types.end(), "sliding_attention") != types.end();
}

void parse_no_sliding_window(const json& j, const std::string& src, ModelConfig& c) {
  c.layer_sliding.assign(size_t(c.num_layers), 0);
  if (any_sliding(layer_types(j, src, c)))
    fail("{}: layer_types marks sliding_attention layers, which {} does not have", src,
         c.architecture);
  if (is_set(j, "sliding_window"))
    fail("{}: sliding_window is set but {} has no sliding-window attention", src, c.architecture);
}

void parse_window_on_every_layer(const json& j, const std::string& src, ModelConfig& c,
                                 int64_t absent_default) {
  (void)layer_types(j, src, c);  // validated, not used: the window applies to every layer
  c.layer_sliding.assign(size_t(c.num_layers), 0);
  auto it = j.find("sliding_window");
  c.sliding_window = it == j.end() ? absent_default : get_int(j, "sliding_window", src, 0);
  if (c.sliding_window > 0) c.layer_sliding.assign(size_t(c.num_layers), 1);
  if (c.sliding_window < 0) fail("{}: sliding_window must be positive", src);
}

void parse_qwen_windows(const json& j, const std::string& src, ModelConfig& c) {
  c.layer_sliding.assign(size_t(c.num_layers), 0);
  const std::vector<std::string> types = layer_types(j, src, c);
  if (get_bool(j, "use_sliding_window", src, false)) {
    c.sliding_window = get_int(j, "sliding_window", src, 4096);
    if (c.sliding_window <= 0) fail("{}: sliding_window must be positive", src);
    if (!types.empty()) {
      for (size_t i = 0; i < types.size(); ++i)
        c.layer_sliding[i] = types[i] == "sliding_attention";
    } else {
      const int64_t from = get_int(j, "max_window_layers", src, 28);
      for (int64_t i = from; i < c.num_layers; ++i) c.layer_sliding[size_t(i)] = 1;
    }
  } else if (any_sliding(types)) {
    fail("{}: layer_types marks sliding_attention layers but use_sliding_window is false", src);
  }
}

void reject_mlp_bias(const json& j, const std::string& src) {
  if (get_bool(j, "mlp_bias", src, false)) fail("{}: mlp_bias=true is not supported", src);
}

const json* rope_parameters(const json& j) {
  if (auto it = j.find("rope_parameters"); it != j.end() && !it->is_null()) return &*it;
  return nullptr;
}

bool rope_per_layer_type(const json* rp) {
  return rp != nullptr && rp->is_object() &&
         (rp->contains("full_attention") || rp->contains("sliding_attention"));
}

void parse_single_rope(const json& j, const std::string& src, ModelConfig& c) {
  const json* rp = rope_parameters(j);
  if (rope_per_layer_type(rp))
    fail("{}: rope_parameters per layer type is not supported for {}", src, c.architecture);
  const json rope = merged_rope_dict(j, rp, src, rp ? "rope_parameters" : "rope_scaling");
  c.rope = parse_rope(rope, c, j, 10000.0, src, rp ? "rope_parameters" : "rope_scaling");
}

}  // namespace inferd::config
