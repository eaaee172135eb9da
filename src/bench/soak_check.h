// `inferd bench soak`'s answer checks: an answer (a JSON body or a whole SSE stream) against what
// its request asked (soak_request.h): status, JSON shape, n choices with one finish reason each,
// usage sums, logprobs counts, structured outputs and tool calls that hold.
#pragma once

#include <cstdint>
#include <string>

#include "bench/soak_request.h"

namespace inferd::bench {

struct SoakCheck {
  std::string error;  // empty: the answer is right
  std::string text;   // the choices' texts (joined by \x1f in index order), for determinism
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// A complete answer with status 200: `body` is the JSON body, or for a streamed request every
// byte of the stream.
SoakCheck check_soak_answer(const SoakRequest& r, const std::string& body);

// A hostile request's answer: a 4xx with OpenAI's error JSON. Empty when right.
std::string check_hostile_answer(const SoakRequest& r, int status, const std::string& body);

}  // namespace inferd::bench
