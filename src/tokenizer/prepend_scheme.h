// Metaspace's prepend_scheme (whether "▁" is put before the first piece, every piece or none),
// read the same way for the Metaspace pre-tokenizer and the Metaspace decoder.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "core/error.h"
#include "tokenizer/json_fields.h"

namespace inferd::tok {

enum class PrependScheme { kFirst, kAlways, kNever };

// "prepend_scheme" (first, always, never), or the older "add_prefix_space" (always / never).
inline PrependScheme prepend_scheme_from(const nlohmann::json& j) {
  if (j.contains("prepend_scheme") && j.at("prepend_scheme").is_string()) {
    const std::string s = j.at("prepend_scheme").get<std::string>();
    if (s == "first") return PrependScheme::kFirst;
    if (s == "always") return PrependScheme::kAlways;
    if (s == "never") return PrependScheme::kNever;
    fail("tokenizer.json: Metaspace prepend_scheme must be first, always or never, got '{}'", s);
  }
  return get_or<bool>(j, "add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
}

}  // namespace inferd::tok
