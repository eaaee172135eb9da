#include <nlohmann/json.hpp>

#include "bench/counters.h"
#include "core/error.h"

namespace inferd::bench {

RemoteTokenCounter::RemoteTokenCounter(Url base, std::string api_key, std::string model)
    : client_(std::move(base), std::move(api_key)), model_(std::move(model)) {
  // Probe which request form the server takes.
  if (!encode("hello world")) {
    llama_cpp_form_ = true;
    if (!encode("hello world"))
      fail(
          "server {}:{} does not answer POST /tokenize with token ids; pass --tokenizer DIR "
          "(the model's tokenizer.json directory) to build prompts locally",
          client_.base().host, client_.base().port);
  }
}

std::optional<std::vector<int32_t>> RemoteTokenCounter::encode(const std::string& text) {
  nlohmann::json body;
  if (llama_cpp_form_) {
    body = {{"content", text}, {"add_special", true}};
  } else {
    body = {{"model", model_}, {"prompt", text}};
  }
  const HttpResult r = client_.post_json("/tokenize", body.dump());
  if (r.status != 200) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) return std::nullopt;
  std::vector<int32_t> ids;
  for (const auto& t : j["tokens"]) {
    if (t.is_number_integer()) {
      ids.push_back(t.get<int32_t>());
    } else if (t.is_object() && t.contains("id") && t["id"].is_number_integer()) {
      ids.push_back(t["id"].get<int32_t>());  // llama.cpp with_pieces
    } else {
      return std::nullopt;
    }
  }
  return ids;
}

int32_t RemoteTokenCounter::count(const std::string& text) {
  auto ids = encode(text);
  if (!ids)
    fail("server {}:{}: POST /tokenize failed for a prompt of {} bytes", client_.base().host,
         client_.base().port, text.size());
  return int32_t(ids->size());
}

std::string RemoteTokenCounter::describe() const {
  return "POST /tokenize at " + client_.base().host_header();
}

}  // namespace inferd::bench
