// One generating request while it runs, on its connection's strand: submits its prompts (one
// engine request per prompt, n choices each), gathers the engine's outputs into choices (chat text
// through the reasoning and tool-call parsers), enforces the request timeout, aborts when the
// client leaves or the server drains, and records the request's metrics and log line. What the
// client reads is written by the request's Renderer (render/renderer.h): OpenAI chat, OpenAI
// completions, or any other API over the same generation.
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
#include "server/render/renderer.h"
#include "server/server.h"

namespace inferd::server {

class GenerationJob : public ServerJob,
                      public std::enable_shared_from_this<GenerationJob>,
                      private RenderSink {
 public:
  using Clock = std::chrono::steady_clock;

  // `ex.request_id` is the response id the renderer shows.
  GenerationJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex,
                CompletionRequest req, std::unique_ptr<Renderer> renderer);

  // Submits to the engine and starts answering. Throws ApiError when nothing could be submitted.
  void start(uint64_t job_id);

  // Aborts the generation; the client gets `e` (through the renderer's fail()). Any thread.
  void abort_with(ApiError e) override;

 private:
  struct Sub {  // one prompt's engine request
    std::string engine_id;
    bool submitted = false;
    bool finished = false;
    Clock::time_point last_token{};  // for the inter-token latency
    RequestTimes times;              // the engine's, from the finished output
  };

  // Submitting, failing, finishing.
  void submit_all();
  void start_timeout();
  void abort_submitted();
  void on_peer_gone();
  void fail_with(ApiError e);
  void on_output(RequestOutput&& out, Clock::time_point t);
  void on_delta(size_t ci, SequenceDelta& d);
  void complete();
  void record(int status, Clock::time_point end);
  void begin_stream();

  // RenderSink: onto the connection.
  void event(std::string_view data, std::string_view name) override;
  void end_stream() override;
  void send_json(int status, std::string body) override;
  void send_error(const ApiError& e) override;

  Server& server_;
  Generator& gen_;
  std::shared_ptr<Connection> conn_;
  Exchange ex_;
  CompletionRequest req_;
  Generation out_;  // refers to req_
  std::unique_ptr<Renderer> renderer_;
  std::vector<std::optional<ChatOutputParser>> parsers_;  // per choice, when parsing
  net::steady_timer timer_;
  uint64_t job_id_ = 0;
  std::vector<Sub> subs_;
  Clock::time_point first_token_{}, last_token_{};
  bool streamed_ = false;
  bool client_gone_ = false;
  bool done_ = false;
  std::optional<ApiError> failure_;
};

}  // namespace inferd::server
