// `inferd bench soak`'s requests: each one drawn from a seed (route, every sampling field, n,
// logprobs, stop strings, seeds, structured outputs, tools, streaming with or without usage) or
// one of a set of hostile bodies, with what its answer must satisfy (soak_check.h).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace inferd::bench {

enum class SoakKind {
  kNormal,       // a valid request read to its end
  kAbort,        // a streamed request whose connection the client closes mid-stream
  kSlowReader,   // a streamed request read slowly (the server must wait, not drop it)
  kHostile,      // a body the server must refuse with a 4xx
  kDeterminism,  // one of a few fixed seeded requests, repeated through the run
};
const char* soak_kind_name(SoakKind k);

// What a valid request's answer must satisfy.
enum class SoakConstraint {
  kNone,
  kJsonSchema,
  kJsonObject,
  kRegex,
  kChoice,
  kToolsRequired,
  kToolNamed
};

struct SoakRequest {
  SoakKind kind = SoakKind::kNormal;
  bool chat = false;
  std::string path;          // "/v1/completions" or "/v1/chat/completions"
  std::string body;          // what is sent (a hostile body need not be JSON)
  std::string hostile_what;  // kHostile: what is wrong with it
  // Expectations of a valid request:
  bool stream = false;
  bool include_usage = false;
  int32_t n = 1;
  int32_t max_tokens = 16;
  int32_t logprobs = -1;  // completions: logprobs k; chat: top_logprobs k (-1: not asked)
  SoakConstraint constraint = SoakConstraint::kNone;
  std::vector<std::string> choices;        // kChoice
  std::string regex;                       // kRegex
  std::vector<std::string> tool_names;     // tools offered
  std::vector<std::string> required_keys;  // kJsonSchema: the schema's required properties
  int32_t abort_after_chunks = 0;          // kAbort: close after this many SSE reads
  int32_t slow_read_ms = 0;                // kSlowReader: pause after every read
  int32_t probe = -1;                      // kDeterminism: which fixed request
};

struct SoakMix {
  double chat_share = 0.5;
  double stream_share = 0.5;
  double abort_share = 0.07;
  double hostile_share = 0.03;
  double slow_share = 0.02;
  double determinism_share = 0.05;
  int32_t max_tokens = 16;  // the most max_tokens a request asks (drawn from 1..this)
  int32_t num_probes = 8;   // distinct determinism requests
};

// Request `index` of a run with `seed` for `model` (the same arguments give the same request).
SoakRequest make_soak_request(uint64_t seed, uint64_t index, const std::string& model,
                              const SoakMix& mix);

// Probe `probe` (0 <= probe < mix.num_probes) of a run: a fixed seeded request.
SoakRequest make_probe_request(uint64_t seed, int32_t probe, const std::string& model,
                               const SoakMix& mix);

// Hostile body number `which` (any value; taken modulo the number of kinds).
SoakRequest make_hostile_request(uint64_t which, const std::string& model);

}  // namespace inferd::bench
