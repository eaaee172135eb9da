// `inferd chat --url`: streams answers from a running OpenAI-compatible server.
#include "cli/chat_remote.h"

#include <fmt/format.h>

#include <chrono>

#include "bench/sse.h"
#include "core/error.h"

namespace inferd::cli {

using Clock = std::chrono::steady_clock;

namespace {

// The message of an OpenAI error body, or the body itself.
std::string error_message(const std::string& body) {
  const ojson j = ojson::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string())
    return j["error"]["message"].get<std::string>();
  return body.size() > 300 ? body.substr(0, 300) + "..." : body;
}

}  // namespace

RemoteChat::RemoteChat(const std::string& url, const std::string& api_key, std::string model)
    : url_(url), model_(std::move(model)) {
  // Long answers on a CPU may pause for a while between chunks (a long prompt's prefill).
  bench::Url base = bench::parse_url(url);
  // OpenAI clients take a base URL ending in /v1; the routes below add it themselves.
  if (base.path.ends_with("/v1")) base.path.resize(base.path.size() - 3);
  client_ = std::make_unique<bench::SyncHttpClient>(base, api_key, std::chrono::seconds(600));
  const bench::HttpResult r = client_->get("/v1/models");
  if (r.status == 401)
    fail("{} needs an API key: give it with --api-key or INFERD_API_KEY ({})", url,
         error_message(r.body));
  if (r.status != 200) fail("{}/v1/models answered {}: {}", url, r.status, error_message(r.body));
  const ojson j = ojson::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty())
    fail("{}/v1/models lists no models", url);
  std::vector<std::string> names;
  for (const auto& m : j["data"])
    if (m.is_object() && m.contains("id") && m["id"].is_string())
      names.push_back(m["id"].get<std::string>());
  if (names.empty()) fail("{}/v1/models lists no models", url);
  if (model_.empty()) {
    model_ = names.front();
  } else if (std::find(names.begin(), names.end(), model_) == names.end()) {
    fail("{} does not serve a model '{}': it serves {}", url, model_, fmt::join(names, ", "));
  }
}

std::string RemoteChat::describe() const {
  return fmt::format("{}, model '{}'", url_, model_);
}

ChatAnswer RemoteChat::answer(const ojson& messages, const ChatParams& params,
                              const std::function<void(std::string_view)>& on_text,
                              const std::atomic<bool>& stop) {
  ojson body;
  body["model"] = model_;
  body["messages"] = messages;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  for (const auto& [k, v] : params.fields.items()) body[k] = v;

  ChatAnswer a;
  const auto t0 = Clock::now();
  Clock::time_point t_first{};
  int64_t chunks = 0;
  std::optional<int64_t> usage;
  std::string stream_error;
  bool done = false;
  bench::SseParser sse;
  auto on_event = [&](std::string_view, std::string_view data) {
    if (data == "[DONE]") {
      done = true;
      return;
    }
    const ojson j = ojson::parse(data, nullptr, false);
    if (!j.is_object()) return;
    if (j.contains("error") && !j["error"].is_null()) {
      stream_error = error_message(std::string(data));
      return;
    }
    if (j.contains("usage") && j["usage"].is_object() && j["usage"].contains("completion_tokens") &&
        j["usage"]["completion_tokens"].is_number())
      usage = j["usage"]["completion_tokens"].get<int64_t>();
    if (j.contains("usage") && j["usage"].is_object() && j["usage"].contains("prompt_tokens") &&
        j["usage"]["prompt_tokens"].is_number())
      a.prompt_tokens = j["usage"]["prompt_tokens"].get<int64_t>();
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return;
    const ojson& ch = j["choices"][0];
    if (ch.contains("delta") && ch["delta"].is_object() && ch["delta"].contains("content") &&
        ch["delta"]["content"].is_string()) {
      const std::string& piece = ch["delta"]["content"].get_ref<const std::string&>();
      if (!piece.empty()) {
        if (chunks++ == 0) t_first = Clock::now();
        a.text += piece;
        on_text(piece);
      }
    }
    if (ch.contains("finish_reason") && ch["finish_reason"].is_string())
      a.finish_reason = ch["finish_reason"].get<std::string>();
  };
  const auto r = client_->post_stream(
      "/v1/chat/completions", body.dump(-1, ' ', false, ojson::error_handler_t::replace),
      [&](std::string_view bytes) { sse.feed(bytes, on_event); }, [&] { return stop.load(); });
  if (r.stopped) {
    a.stopped = true;
    a.finish_reason = "abort";
  } else if (r.status == 401) {
    fail("the server wants an API key: give it with --api-key or INFERD_API_KEY ({})",
         error_message(r.body));
  } else if (r.status != 200) {
    fail("the server answered {}: {}", r.status, error_message(r.body));
  } else {
    sse.finish(on_event);
    if (!stream_error.empty()) fail("the server failed the answer: {}", stream_error);
    if (!done) fail("the server's stream ended without data: [DONE]");
  }
  const auto t1 = Clock::now();
  a.completion_tokens = usage ? *usage : chunks;
  a.total_s = std::chrono::duration<double>(t1 - t0).count();
  a.first_token_s = chunks > 0 ? std::chrono::duration<double>(t_first - t0).count() : a.total_s;
  return a;
}

}  // namespace inferd::cli
