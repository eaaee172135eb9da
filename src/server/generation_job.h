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
#include "server/engine_job.h"
#include "server/protocol.h"
#include "server/render/renderer.h"
#include "server/server.h"

namespace inferd::server {

class GenerationJob : public EngineJob, private RenderSink {
 public:
  // `ex.request_id` is the response id the renderer shows.
  GenerationJob(Server& server, std::shared_ptr<Connection> conn, Exchange ex,
                CompletionRequest req, std::unique_ptr<Renderer> renderer);

 private:
  struct SubTimes {                  // per engine request
    Clock::time_point last_token{};  // for the inter-token latency
    RequestTimes times;              // the engine's, from the finished output
  };

  // EngineJob
  void submit_all() override;
  void started() override;
  void on_output(RequestOutput&& out, Clock::time_point t) override;
  ApiError invalid_request(const InvalidRequestError& e, size_t k) const override;
  void record(int status, Clock::time_point end) override;

  void on_delta(size_t ci, SequenceDelta& d);
  void complete();
  void begin_stream();

  // RenderSink: onto the connection.
  void event(std::string_view data, std::string_view name) override;
  void end_stream() override;
  void send_json(int status, std::string body) override;
  void send_error(const ApiError& e) override;

  CompletionRequest req_;
  Generation out_;  // refers to req_
  std::unique_ptr<Renderer> renderer_;
  std::vector<std::optional<ChatOutputParser>> parsers_;  // per choice, when parsing
  std::vector<SubTimes> sub_times_;
  Clock::time_point first_token_{}, last_token_{};
  bool streamed_ = false;
};

}  // namespace inferd::server
