// One /v1/chat/completions or /v1/completions request while it runs, on its connection's strand:
// submits its prompts (one engine request per prompt, n choices each), gathers the engine's
// outputs into choices, answers as one JSON response or as an SSE stream (chat text through the
// reasoning and tool-call parsers), enforces the request timeout, aborts when the client leaves
// or the server drains, and records the request's metrics and log line.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "server/chat_output.h"
#include "server/protocol.h"
#include "server/server.h"

namespace inferd::server {

class CompletionJob : public ServerJob, public std::enable_shared_from_this<CompletionJob> {
 public:
  using Clock = std::chrono::steady_clock;

  CompletionJob(Server& server, std::shared_ptr<Connection> conn, Server::Exchange ex,
                CompletionRequest req);

  // Submits to the engine and starts answering. Throws ApiError when nothing could be submitted.
  void start(uint64_t job_id);

  // Aborts the generation; the client gets `e` (a status for a plain response, an error event
  // in a stream). Any thread.
  void abort_with(ApiError e) override;

 private:
  struct Sub {  // one prompt's engine request
    std::string engine_id;
    bool submitted = false;
    bool finished = false;
    int32_t prompt_tokens = 0;
    int32_t cached_tokens = 0;
  };
  struct Choice {
    std::string text;
    int32_t tokens = 0;
    std::optional<FinishReason> finish;
    ojson stop_reason = nullptr;
    ojson logprobs = nullptr;  // non-streaming accumulation
    size_t text_offset = 0;    // completions logprobs text_offset
    // Chat with a reasoning or tool-call parser: the text becomes reasoning_content / content /
    // tool_calls.
    std::optional<ChatOutputParser> parser;
  };

  // Submitting, failing, finishing.
  void submit_all();
  void start_timeout();
  void abort_submitted();
  void on_peer_gone();
  void fail_with(ApiError e);
  void on_output(RequestOutput&& out, Clock::time_point t);
  void complete();
  void record(int status, Clock::time_point end);

  // The answer's JSON.
  std::string finish_reason(const Choice& c) const;
  std::string object_name(bool chunk) const;
  ojson usage_json() const;
  ojson chunk_base() const;
  ojson chat_logprobs(const std::vector<SampleLogprobs>& lps) const;
  void completion_logprobs(const std::vector<SampleLogprobs>& lps, Choice& c, ojson& out) const;
  ojson chat_message(Choice& c) const;
  void send_full();

  // Streaming.
  void begin_stream();
  void write_event(ojson j);
  void stream_delta(size_t ci, Choice& c, const SequenceDelta& d);
  void stream_parsed(size_t ci, Choice& c, const SequenceDelta& d);

  Server& server_;
  Generator& gen_;
  std::shared_ptr<Connection> conn_;
  Server::Exchange ex_;
  CompletionRequest req_;
  net::steady_timer timer_;
  uint64_t job_id_ = 0;
  int64_t created_ = 0;
  std::vector<Sub> subs_;
  std::vector<Choice> choices_;
  Clock::time_point first_token_{}, last_token_{};
  bool streamed_ = false;
  bool client_gone_ = false;
  bool done_ = false;
  std::optional<ApiError> failure_;
};

}  // namespace inferd::server
