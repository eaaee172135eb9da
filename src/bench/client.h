// The load generator: drives an OpenAI-compatible server with streaming requests from one
// thread (Boost.Asio coroutines; one TCP connection per request in flight, kept alive and reused).
//
// Per request it measures, from the moment the request starts (connection included, as vLLM's
// benchmark_serving does):
//   TTFT  time to the first SSE chunk that carries generated text (for an answer without any
//         text, such as EOS first: to the first chunk with a choice);
//   ITL   the gaps between successive such chunks (a chunk holding several tokens is one gap);
//   E2E   time to `data: [DONE]`;
//   output tokens: the server's usage.completion_tokens (stream_options.include_usage) when it
//   reports it, else the number of chunks with text.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bench/dataset.h"
#include "bench/http_util.h"

namespace inferd::bench {

struct ServeOptions {
  Url base;
  std::string endpoint = "/v1/completions";  // chat when it ends in /chat/completions
  std::string model;
  std::string api_key;
  double request_rate = std::numeric_limits<double>::infinity();  // requests/s; inf: all at once
  double burstiness = 1.0;      // gamma shape of inter-arrival times (1: Poisson)
  int32_t max_concurrency = 0;  // 0: unlimited
  uint64_t seed = 0;            // arrival times
  double request_timeout_s = 600;
  bool force_output_len = true;  // send ignore_eos and min_tokens = max_tokens
  std::optional<double> temperature = 0.0;
  bool include_usage = true;                             // stream_options.include_usage
  nlohmann::json extra_body = nlohmann::json::object();  // merged into every body
  bool progress = false;                                 // live progress line on stderr
  std::string progress_label;

  bool chat() const;
};

// Kinds of failures, as counted in reports.
// "http_<status>", "connect", "timeout", "disconnect" (connection lost mid-response),
// "bad_stream" (not SSE, unparseable chunk, error event, no [DONE], no choices at all).
struct RequestResult {
  size_t index = 0;
  bool success = false;
  std::string error_kind;  // empty on success
  std::string error;       // message
  int http_status = 0;
  std::string retry_after;  // the Retry-After header of a non-200 answer ("" when none)
  double start_s = 0;       // since the run began
  double ttft_s = 0;
  double e2e_s = 0;
  std::vector<double> itl_s;
  int32_t chunks = 0;         // chunks with generated text
  int32_t output_tokens = 0;  // usage or chunks
  bool usage_reported = false;
  int32_t prompt_tokens = 0;  // usage.prompt_tokens, else the dataset's count
  // usage.prompt_tokens_details.cached_tokens (prompt tokens the server's prefix cache held);
  // -1 when the server did not report it.
  int32_t cached_tokens = -1;
  int32_t expected_output = 0;  // max_tokens asked
  bool long_prompt = false;     // the dataset's mark (mixed-long)
  // TPOT = (e2e - ttft) / (output_tokens - 1); nullopt for fewer than 2 tokens.
  std::optional<double> tpot_s() const;
};

struct RunResult {
  std::vector<RequestResult> requests;
  double duration_s = 0;    // first dispatch to last completion
  double request_rate = 0;  // as asked (inf for all at once)
  int32_t max_concurrency = 0;
  int32_t peak_in_flight = 0;
};

// The JSON body sent for one request.
std::string build_request_body(const ServeOptions& opts, const BenchRequest& req);

// Runs every request on the calling thread and returns when all have finished or failed.
// Throws Error when the host cannot be resolved.
RunResult run_serving(const ServeOptions& opts, const std::vector<BenchRequest>& requests);

// Raises the soft limit of open files to the hard limit (thousands of sockets).
void raise_open_file_limit();

}  // namespace inferd::bench
