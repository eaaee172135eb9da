// The answers `inferd serve` and `inferd router` build alike: JSON text, JSON and error responses
// in OpenAI's shape, 405 with its Allow header, the CORS preflight, and the metrics label of a
// path.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/http.h"

namespace inferd::server {

// `j` as compact JSON text; invalid UTF-8 in strings is replaced (U+FFFD), never thrown on.
std::string dump_json(const nlohmann::ordered_json& j);
// Seconds since the Unix epoch (the "created" fields).
int64_t unix_now();
// n random lowercase hex digits (response and request ids).
std::string random_hex(size_t n);
// The first max_bytes bytes of `s` (cut at a UTF-8 boundary) for one request log line: quotes,
// backslashes and control characters escaped, "...(N bytes)" when cut (--log-prompts).
std::string log_excerpt(const std::string& s, size_t max_bytes);

// `body` as application/json.
Response json_response(int status, std::string body);
// `e` as OpenAI's error JSON, with Retry-After when it has one and WWW-Authenticate on a 401.
Response error_response(const ApiError& e, unsigned version = 11);
// 405 method_not_allowed for `method` on `path`, with an Allow header of `allowed`.
Response method_not_allowed(const std::string& method, const std::string& path,
                            const char* allowed);
// RequestHandler::http_error's answer (bad HTTP, body too large: 413 request_too_large).
Response http_layer_error(int status, const std::string& message, unsigned version);

// True for a CORS preflight: OPTIONS from an `origin` with Access-Control-Request-Method.
bool is_cors_preflight(const Request& req, const std::string& origin);
// The answer to a preflight (the CORS headers themselves are added by the caller). Throws
// ApiError 400 (cors_origin) when the origin is not allowed.
Response cors_preflight(const Request& req, const std::string& origin, bool origin_ok);

// The handler label of a path for metrics: known routes only, so that arbitrary paths cannot
// grow the label set.
std::string handler_label(const std::string& path);

}  // namespace inferd::server
