// Token counters for building prompts: a local Hugging Face tokenizer directory, or a server's
// /tokenize route (vLLM's {"prompt"} form, then llama.cpp's {"content"} form).
#pragma once

#include <memory>
#include <string>

#include "bench/dataset.h"
#include "bench/http_util.h"

namespace inferd {
class Tokenizer;
}

namespace inferd::bench {

class RemoteTokenCounter final : public TokenCounter {
 public:
  // Throws Error when the server does not answer /tokenize with token ids.
  RemoteTokenCounter(Url base, std::string api_key, std::string model);
  int32_t count(const std::string& text) override;
  std::optional<std::vector<int32_t>> encode(const std::string& text) override;
  std::string describe() const override;

 private:
  SyncHttpClient client_;
  std::string model_;
  bool llama_cpp_form_ = false;
};

class LocalTokenCounter final : public TokenCounter {
 public:
  // `dir` holds tokenizer.json (see Tokenizer::from_dir).
  explicit LocalTokenCounter(const std::string& dir);
  ~LocalTokenCounter() override;
  int32_t count(const std::string& text) override;
  std::optional<std::vector<int32_t>> encode(const std::string& text) override;
  // Lower-case ASCII words of the vocabulary (at most a few thousand, by id).
  std::vector<std::string> candidate_words() override;
  std::string describe() const override;
  const Tokenizer& tokenizer() const { return *tok_; }

 private:
  std::string dir_;
  std::unique_ptr<Tokenizer> tok_;
};

}  // namespace inferd::bench
