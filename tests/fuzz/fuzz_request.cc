// Fuzz target: OpenAI request bodies through the server's validation. The first byte picks the
// route (chat completions, completions, /tokenize, /detokenize), the rest is the body. The body
// goes through parse_json_body and parse_completion_request / tokenize_body / detokenize_body
// (src/server/protocol.h) with a real tokenizer and a real chat template
// (tests/fuzz/data/tokenizer.json and chat_template.jinja) behind the Generator interface, the
// chat prompt rendered by render_chat_prompt as EngineGenerator does.
//
// A client's bad body must be an ApiError (4xx). Any other exception would reach the server's
// catch-all and answer 500, so it is left uncaught here and the fuzzer reports it.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "jinja/chat_template.h"
#include "server/api_error.h"
#include "server/engine_generator.h"
#include "server/protocol.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace inferd;
using namespace inferd::server;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("fuzz_request: cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The tokenizer side of EngineGenerator over a tokenizer and template loaded once; the engine
// side is never reached by validation.
class FuzzGenerator final : public Generator {
 public:
  FuzzGenerator()
      : tok_(Tokenizer::from_file(INFERD_FUZZ_DATA_DIR "/tokenizer.json")),
        template_(read_file(INFERD_FUZZ_DATA_DIR "/chat_template.jinja"),
                  {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}}) {}
  std::vector<int32_t> encode(const std::string& text, bool add_special) const override {
    return tok_.encode(text, add_special);
  }
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    return tok_.decode(ids, skip_special);
  }
  std::string token_text(int32_t id) const override {
    const int32_t one[1] = {id};
    return tok_.decode(one, false);
  }
  std::string apply_chat_template(const ChatTemplateArgs& args) const override {
    return render_chat_prompt(&template_, args);
  }
  int32_t vocab_size() const override { return int32_t(tok_.id_limit()); }
  int32_t max_model_len() const override { return 4096; }
  std::string submit(GenerateRequest, OutputCallback) override { std::abort(); }
  bool abort(const std::string&) override { std::abort(); }
  EngineStats stats() const override { return {}; }
  void shutdown() override {}

 private:
  Tokenizer tok_;
  ChatTemplate template_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzGenerator gen;
  if (size == 0) return 0;
  ValidationContext ctx;
  ctx.generator = &gen;
  ctx.model_names = {"m", "other"};
  const int route = data[0] % 4;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const json body = parse_json_body(text);
    switch (route) {
      case 0:
      case 1: {
        CompletionRequest r = parse_completion_request(body, route == 0, ctx);
        // What the server does next with a valid request: the prompts' text for logs and echo.
        for (const auto& p : r.prompts) (void)gen.decode(p, false);
        break;
      }
      case 2:
        (void)tokenize_body(body, gen, ctx.limits).dump();
        break;
      default:
        (void)detokenize_body(body, gen).dump();
    }
  } catch (const ApiError& e) {
    if (e.status() < 400 || e.status() >= 500) std::abort();
  }
  return 0;
}
