// Images end to end through `inferd serve` (issue 34): the tiny Gemma3ForConditionalGeneration
// of tests/data/vlm/gemma3_vlm_tiny (its byte-level tokenizer and chat template) answers a chat
// request with a data: URL image with 200 and the same greedy text every time (another image:
// another text), and the 400s: a corrupt image, more images than --limit-mm-per-prompt, and a
// model without its vision tower (--load-format dummy) naming the model. The tiny Qwen2.5-VL
// (tests/data/vlm/qwen25vl_lm_tiny) takes an image the same way.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "media/image_source.h"
#include "serve_process_util.h"

namespace inferd {
namespace {

using ::testing::HasSubstr;
using testing_util::http_request;
using testing_util::HttpReply;
using testing_util::ServeProcess;

const std::string kModel = std::string(INFERD_TEST_DATA_DIR) + "/vlm/gemma3_vlm_tiny";

// tests/data/vlm/FILE as a data: URL.
std::string data_url(const std::string& file) {
  return media::file_data_url(std::string(INFERD_TEST_DATA_DIR) + "/vlm/" + file);
}

nlohmann::json image_part(const std::string& url) {
  return {{"type", "image_url"}, {"image_url", {{"url", url}}}};
}

std::string chat(const std::vector<std::string>& urls) {
  nlohmann::json content = nlohmann::json::array();
  for (const std::string& u : urls) content.push_back(image_part(u));
  content.push_back({{"type", "text"}, {"text", "Describe"}});
  return nlohmann::json{{"model", "tiny"},
                        {"max_tokens", 8},
                        {"temperature", 0},
                        {"messages", {{{"role", "user"}, {"content", content}}}}}
      .dump();
}

nlohmann::json body_of(const HttpReply& r) {
  const size_t p = r.text.find("\r\n\r\n");
  return nlohmann::json::parse(p == std::string::npos ? "" : r.text.substr(p + 4), nullptr, false);
}

TEST(VlmServe, ChatWithAnImageAndItsErrors) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kModel +
                      " --served-model-name tiny --device cpu --host 127.0.0.1 --port 0 "
                      "--max-num-batched-tokens 64 --limit-mm-per-prompt '{\"image\": 1}'"))
      << p.log();
  const HttpReply a =
      http_request(p.port(), "POST", "/v1/chat/completions", chat({data_url("photo.jpg")}));
  ASSERT_EQ(a.status, 200) << a.text << p.log();
  const nlohmann::json ja = body_of(a);
  const std::string text = ja["choices"][0]["message"]["content"].get<std::string>();
  EXPECT_EQ(ja["usage"]["completion_tokens"], 8);
  EXPECT_GE(text.size(), 4u) << text;
  // "<bos>" "<user>" "\n\n" <start_of_image> 16 x <image_soft_token> <end_of_image> "\n\n"
  // "Describe" "<model>", a token a byte (the template's newline goes: trim_blocks).
  EXPECT_EQ(ja["usage"]["prompt_tokens"], 1 + 6 + 2 + 1 + 16 + 1 + 2 + 8 + 7);
  const HttpReply again =
      http_request(p.port(), "POST", "/v1/chat/completions", chat({data_url("photo.jpg")}));
  ASSERT_EQ(again.status, 200) << again.text;
  EXPECT_EQ(body_of(again)["choices"][0]["message"]["content"], text);
  // The Responses API's input_image: the same prompt, the same text.
  const nlohmann::json resp_body = {
      {"model", "tiny"},
      {"max_output_tokens", 8},
      {"temperature", 0},
      {"input",
       {{{"role", "user"},
         {"content",
          {{{"type", "input_image"}, {"image_url", data_url("photo.jpg")}},
           {{"type", "input_text"}, {"text", "Describe"}}}}}}}};
  const HttpReply resp = http_request(p.port(), "POST", "/v1/responses", resp_body.dump());
  ASSERT_EQ(resp.status, 200) << resp.text;
  EXPECT_THAT(body_of(resp).dump(), HasSubstr(nlohmann::json(text).dump()));
  const HttpReply other =
      http_request(p.port(), "POST", "/v1/chat/completions", chat({data_url("chart.png")}));
  ASSERT_EQ(other.status, 200) << other.text;
  EXPECT_NE(body_of(other)["choices"][0]["message"]["content"], text);

  const HttpReply corrupt =
      http_request(p.port(), "POST", "/v1/chat/completions", chat({data_url("truncated.jpg")}));
  EXPECT_EQ(corrupt.status, 400) << corrupt.text;
  EXPECT_THAT(corrupt.text, HasSubstr("Invalid image"));
  const HttpReply two = http_request(p.port(), "POST", "/v1/chat/completions",
                                     chat({data_url("photo.jpg"), data_url("chart.png")}));
  EXPECT_EQ(two.status, 400) << two.text;
  EXPECT_THAT(two.text, HasSubstr("more than 1 images"));
  EXPECT_THAT(two.text, HasSubstr("--limit-mm-per-prompt"));
}

TEST(VlmServe, ModelWithoutItsVisionTowerRefusesImagesNamingIt) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kModel + " --served-model-name tiny --device cpu --host 127.0.0.1 --port 0 "
                               "--load-format dummy"))
      << p.log();
  const HttpReply r =
      http_request(p.port(), "POST", "/v1/chat/completions", chat({data_url("photo.jpg")}));
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_THAT(r.text, HasSubstr("model 'tiny' takes no images"));
}

TEST(VlmServe, QwenVlChatWithAnImage) {
  ServeProcess p;
  ASSERT_TRUE(p.start(std::string(INFERD_TEST_DATA_DIR) +
                      "/vlm/qwen25vl_lm_tiny --served-model-name tiny --device cpu --host "
                      "127.0.0.1 --port 0"))
      << p.log();
  const HttpReply a =
      http_request(p.port(), "POST", "/v1/chat/completions", chat({data_url("photo.jpg")}));
  ASSERT_EQ(a.status, 200) << a.text << p.log();
  const nlohmann::json ja = body_of(a);
  // "<bos>" "<user>" <|vision_start|> 15 x <|image_pad|> (a 6x10 grid, 2x2 merged)
  // <|vision_end|> "Describe" "<model>".
  EXPECT_EQ(ja["usage"]["prompt_tokens"], 1 + 6 + 1 + 15 + 1 + 8 + 7);
  const HttpReply again =
      http_request(p.port(), "POST", "/v1/chat/completions", chat({data_url("photo.jpg")}));
  ASSERT_EQ(again.status, 200) << again.text;
  EXPECT_EQ(body_of(again)["choices"][0]["message"]["content"],
            ja["choices"][0]["message"]["content"]);
}

}  // namespace
}  // namespace inferd
