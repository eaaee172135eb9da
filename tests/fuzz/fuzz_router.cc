// Fuzz target: what `inferd router` reads (src/router): a client's request body as the proxy
// takes it (parse_json_body, the `model` field, the prompt key and the prefix index it routes by,
// the body written back out), and what replicas answer (the SSE stream's preamble and usage
// events through UsageTap, a response's usage, the /v1/models list and the /metrics page the
// health checks parse). The first byte picks the input: 0 a chat body, 1 a completions body,
// 2 a streamed replica body (cut into pieces by the second byte), 3 a /v1/models answer, 4 a
// /metrics page. A client's bad body must be an ApiError (4xx); anything else from a replica is
// data, never an exception.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "router/health_checker.h"
#include "router/prefix_index.h"
#include "router/prompt_key.h"
#include "router/sse_passthrough.h"
#include "server/api_error.h"
#include "server/json_fields.h"

namespace {

using namespace inferd;

void request_body(std::string_view text, bool chat) {
  static router::PrefixIndex index(4096, 16, 64);
  try {
    server::json body = server::parse_json_body(std::string(text));
    (void)server::get_string(body, "model");
    const std::string key = router::prompt_key(body, chat, 4096);
    (void)index.match(key, {0, 1, 2});
    index.insert(key, uint32_t(key.size() % 3));
    // What the router forwards when it asks for the usage event on the client's behalf.
    if (body.is_object() && (!body.contains("stream_options") || body["stream_options"].is_null() ||
                             body["stream_options"].is_object()))
      body["stream_options"]["include_usage"] = true;
    (void)body.dump();
  } catch (const server::ApiError& e) {
    if (e.status() < 400 || e.status() >= 500) std::abort();
  }
}

void replica_stream(std::string_view text, uint8_t seed) {
  router::UsageTap tap((seed & 1) != 0);
  std::string out;
  uint32_t r = seed | 1u;
  for (size_t i = 0; i < text.size();) {
    r = r * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(text.size() - i, 1 + (r >> 16) % 64);
    out += tap.feed(text.substr(i, n));
    i += n;
  }
  out += tap.flush();
  // Without stripping, the bytes pass through unchanged.
  if (!(seed & 1) && out != text) std::abort();
  (void)router::ready_to_commit(std::string(text));
  (void)router::is_preamble_event(text);
  (void)router::usage_total(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (data[0] % 5) {
    case 0:
    case 1:
      request_body(text, data[0] % 5 == 0);
      break;
    case 2:
      replica_stream(text, data[1]);
      break;
    case 3:
      (void)router::parse_model_list(std::string(text));
      break;
    default:
      (void)router::parse_load_metrics(std::string(text));
  }
  return 0;
}
