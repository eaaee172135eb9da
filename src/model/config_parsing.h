// Reading config.json, for config.cc and the architecture files (models/*.cc): typed access to
// fields with errors naming the field and the expectation, the two generations of rope parameters
// (transformers 5's `rope_parameters` and the older `rope_theta` + `rope_scaling`), the check of
// keys that change the math and that an architecture does not implement, and the pieces several
// families share (SiLU activation, sliding windows, one rope for every layer).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace inferd::config {

using json = nlohmann::json;

// An integer field; absent or null gives `def` when def >= 0, else an error naming the field.
int64_t get_int(const json& j, const char* key, const std::string& src, int64_t def = -1);
double get_num(const json& j, const char* key, const std::string& src, double def);
bool get_bool(const json& j, const char* key, const std::string& src, bool def);
bool is_set(const json& j, const char* key);  // present and not null
// Values that mean the same: 1 and 1.0, "yarn" and "yarn".
bool same_value(const json& a, const json& b);

// The rope parameters of `j` merged into one flat dict: `nested` (rope_parameters or one entry of
// it) with top-level rope_theta and rope_scaling; a key given in both places with different values
// is an error naming both (`where` names the nested place).
json merged_rope_dict(const json& j, const json* nested, const std::string& src,
                      const std::string& where);
// One rope from a merged dict; `top` is the whole config (Phi-3's top-level
// original_max_position_embeddings wins over the dict's).
RopeConfig parse_rope(const json& r, const ModelConfig& c, const json& top, double default_theta,
                      const std::string& src, const std::string& where);
// config.json's rope_parameters, or null.
const json* rope_parameters(const json& j);
// rope_parameters holds one entry per layer type ("full_attention", "sliding_attention").
bool rope_per_layer_type(const json* rp);
// Every layer's rope from rope_parameters / rope_theta + rope_scaling (default theta 10000);
// rope_parameters per layer type is an error.
void parse_single_rope(const json& j, const std::string& src, ModelConfig& c);

// Keys that change the math (soft-capping, multipliers, experts, partial rotary, ...): each one
// set to a non-neutral value stops the load, naming it, unless the architecture lists it in
// `handled`.
void reject_unhandled_keys(const json& j, const std::string& src,
                           std::initializer_list<std::string_view> handled = {});
// hidden_act, when set, must be "silu".
void check_silu_activation(const json& j, const std::string& src);

// layer_types (validated: num_hidden_layers entries of "full_attention" / "sliding_attention"),
// or empty when the config has none.
std::vector<std::string> layer_types(const json& j, const std::string& src, const ModelConfig& c);
bool any_sliding(const std::vector<std::string>& types);
// No sliding-window attention: layer_types marking sliding layers or a sliding_window is an error.
void parse_no_sliding_window(const json& j, const std::string& src, ModelConfig& c);
// One window for every layer (Mistral, Phi-3): sliding_window (absent: `absent_default`; null
// or 0: none).
void parse_window_on_every_layer(const json& j, const std::string& src, ModelConfig& c,
                                 int64_t absent_default);

// Qwen2 / Qwen3: the window is used only with use_sliding_window, by the layers at or above
// max_window_layers (or those layer_types marks).
void parse_qwen_windows(const json& j, const std::string& src, ModelConfig& c);
// mlp_bias = true is an error (no family inferd serves has MLP biases).
void reject_mlp_bias(const json& j, const std::string& src);

}  // namespace inferd::config
