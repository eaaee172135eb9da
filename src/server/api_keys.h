// API keys, shared by `inferd serve` and `inferd router`: where they come from (--api-key, the
// INFERD_API_KEY environment variable, --api-key-file) and the check of a request's
// `Authorization: Bearer KEY` header against them in time that does not depend on key contents.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace inferd::server {

// The keys of an --api-key-file: one a line; surrounding whitespace is trimmed; blank lines and
// lines starting with '#' are ignored. Throws Error naming the file when it cannot be read or holds
// no key.
std::vector<std::string> read_api_key_file(const std::string& path);

// All keys: each value split at commas (the flag may be repeated; INFERD_API_KEY may list several,
// as vLLM's VLLM_API_KEY), plus the keys of `file` when it is not empty. Empty: no auth.
std::vector<std::string> collect_api_keys(const std::vector<std::string>& values,
                                          const std::string& file);

// True when `token` equals one of `keys`. Every key is compared, each over the longer of the two
// lengths, without an early exit: the time depends on lengths only, never on where bytes differ.
bool api_key_matches(std::string_view token, const std::vector<std::string>& keys);

// Checks an Authorization header value against `keys` (none: everything passes). Throws ApiError
// 401 (invalid_api_key) when the header is missing, not a Bearer token, or the wrong key.
void check_bearer(std::string_view authorization, const std::vector<std::string>& keys);

}  // namespace inferd::server
