// `inferd chat`: a conversation kept through the model's chat template, the sampling settings a
// user changes with /params, and the two ways of answering (an engine in this process, or a
// running server over its OpenAI routes), behind one interface the terminal loop talks to.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace inferd::cli {

using ojson = nlohmann::ordered_json;

// The sampling settings of `/params`, in OpenAI's field names (sent as they are to a server;
// mapped onto SamplingParams in process). Only the fields a user set are present.
struct ChatParams {
  ojson fields = ojson::object();

  // Applies "name=value" (e.g. "temperature=0.7"); throws Error naming the field and the
  // expected values on an unknown name or a bad value.
  void set(std::string_view assignment);
  // "temperature=0.7 top_p=0.9" (or "(defaults)").
  std::string describe() const;
  // The names /params knows, with their ranges, for help and errors.
  static std::string known();
};

// What one answer produced.
struct ChatAnswer {
  std::string text;
  int64_t completion_tokens = 0;
  int64_t prompt_tokens = 0;
  double first_token_s = 0;   // from the request to its first token
  double total_s = 0;         // from the request to its end
  std::string finish_reason;  // "stop", "length", "abort" (stopped by the user)
  bool stopped = false;       // Ctrl-C
};

class ChatBackend {
 public:
  virtual ~ChatBackend() = default;
  // A line for the start of the session ("demo-model on cpu" / "http://...: model x").
  virtual std::string describe() const = 0;
  // Whether messages may carry images (image_url parts): a server decides for itself (a 400
  // names what it refuses); a model loaded here when it has a vision tower on the CPU (issue 34).
  virtual bool takes_images() const { return false; }
  // Answers the conversation `messages` (OpenAI message objects, the last one the user's),
  // calling on_text with each piece of text as it arrives. Returns early (stopped = true) when
  // `stop` turns true. Throws Error when the request cannot be made (the conversation is then
  // unchanged).
  virtual ChatAnswer answer(const ojson& messages, const ChatParams& params,
                            const std::function<void(std::string_view)>& on_text,
                            const std::atomic<bool>& stop) = 0;
};

// The terminal loop: reads the user's input (multi-line with a trailing '\', a """ block or a
// bracketed paste), runs the /commands, streams each answer and prints its tokens/s. Ctrl-C
// stops an answer; Ctrl-D or /exit ends. Returns the process exit code.
// `images`: data: URLs sent with the first message (--image).
int run_chat_repl(ChatBackend& backend, ojson initial_messages, ChatParams params,
                  std::vector<std::string> images = {});

}  // namespace inferd::cli
