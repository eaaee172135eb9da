// `inferd chat --url http://HOST:PORT`: a ChatBackend over a running server's
// /v1/chat/completions (streamed), through the bench layer's HTTP client.
#pragma once

#include <memory>
#include <string>

#include "bench/http_util.h"
#include "cli/chat.h"

namespace inferd::cli {

class RemoteChat final : public ChatBackend {
 public:
  // Asks /v1/models for the model (the first one when `model` is empty). Throws Error when the
  // server cannot be reached, wants an API key, or does not serve `model`.
  RemoteChat(const std::string& url, const std::string& api_key, std::string model);

  std::string describe() const override;
  bool takes_images() const override { return true; }
  ChatAnswer answer(const ojson& messages, const ChatParams& params,
                    const std::function<void(std::string_view)>& on_text,
                    const std::atomic<bool>& stop) override;

 private:
  std::string url_;
  std::string model_;
  std::unique_ptr<bench::SyncHttpClient> client_;
};

}  // namespace inferd::cli
