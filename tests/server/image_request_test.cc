// Images in requests (issue 34): chat image_url parts (data: URLs, fetch rules) decoded and
// preprocessed by the generator's image processor at the edge, their place in the template's
// content parts, and a 400 naming the part for everything that cannot be taken.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "media/image_processor.h"
#include "media/image_source.h"
#include "server/fake_generator.h"
#include "server/protocol.h"
#include "server/responses_request.h"

namespace inferd::server {
namespace {

using testing::FakeConfig;
using testing::FakeGenerator;
using ::testing::HasSubstr;

// tests/data/vlm/FILE as a data: URL.
std::string data_url(const std::string& file) {
  return media::file_data_url(std::string(INFERD_TEST_DATA_DIR) + "/vlm/" + file);
}

constexpr const char* kTemplate =
    "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}"
    "{% for p in m.content %}{% if p.type == 'image' %}<start_of_image>{% else %}{{ p.text }}"
    "{% endif %}{% endfor %}{% endif %}|{% endfor %}";

FakeConfig vision_config() {
  FakeConfig c;
  c.chat_template = kTemplate;
  media::SiglipProcessorConfig pc;
  pc.height = pc.width = 32;
  c.image_processor = media::make_siglip_processor(pc);
  return c;
}

json chat_body(const json& content) {
  return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", content}}}}};
}

json image_part(const std::string& url) {
  return {{"type", "image_url"}, {"image_url", {{"url", url}}}};
}

struct Fixture : ::testing::Test {
  FakeGenerator vision{vision_config()};
  ValidationContext ctx;
  void SetUp() override {
    ctx.generator = &vision;
    ctx.model_names = {"m"};
  }
  // The 400 a body gets: its param and message.
  std::pair<std::string, std::string> error_of(const json& body) {
    try {
      parse_completion_request(body, true, ctx);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400);
      return {e.param().value_or(""), e.what()};
    }
    ADD_FAILURE() << "no error for " << body.dump().substr(0, 200);
    return {};
  }
};

TEST_F(Fixture, ImagePartsArePreprocessedAndRenderedInPlace) {
  const json body = chat_body({{{"type", "text"}, {"text", "What is this?"}},
                               image_part(data_url("photo.jpg")),
                               {{"type", "text"}, {"text", "And this?"}},
                               {{"type", "image_url"}, {"image_url", data_url("chart.png")}}});
  const CompletionRequest r = parse_completion_request(body, true, ctx);
  ASSERT_EQ(r.images.size(), 2u);
  EXPECT_EQ(r.images[0].shape, (std::vector<int64_t>{3, 32, 32}));
  ASSERT_EQ(r.prompt_texts.size(), 1u);
  EXPECT_EQ(r.prompt_texts[0], "What is this?<start_of_image>And this?<start_of_image>|");
  // Text-only messages keep their string content.
  const CompletionRequest t =
      parse_completion_request(chat_body({{{"type", "text"}, {"text", "hi"}}}), true, ctx);
  EXPECT_TRUE(t.images.empty());
  EXPECT_EQ(t.prompt_texts[0], "hi|");
}

TEST_F(Fixture, AModelWithoutImagesRefusesThem) {
  FakeConfig c;
  c.chat_template = kTemplate;
  FakeGenerator text_only(c);
  ctx.generator = &text_only;
  const auto [param, msg] = error_of(chat_body(json::array({image_part(data_url("photo.jpg"))})));
  EXPECT_EQ(param, "messages[0].content[0].type");
  EXPECT_THAT(msg, HasSubstr("not supported by this model (only 'text')"));
}

TEST_F(Fixture, BadImagesAre400sNamingThePart) {
  auto expect = [&](const json& part, const std::string& want_param, const std::string& needle) {
    const auto [param, msg] = error_of(chat_body({{{"type", "text"}, {"text", "x"}}, part}));
    EXPECT_EQ(param, want_param) << msg;
    EXPECT_THAT(msg, HasSubstr(needle));
  };
  const std::string p = "messages[0].content[1]";
  expect(image_part(data_url("truncated.jpg")), p + ".image_url", "corrupt JPEG");
  expect(image_part("data:image/png;base64,@@@@"), p + ".image_url", "base64");
  expect(image_part("data:image/gif;base64,R0lGODlhAQABAAAAACw="), p + ".image_url",
         "GIF images are not supported");
  expect(image_part("https://example.com/cat.png"), p + ".image_url", "--allowed-media-domains");
  expect(image_part("file:///etc/passwd"), p + ".image_url", "unsupported image URL");
  expect({{"type", "image_url"}}, p + ".image_url", "Missing required parameter");
  expect({{"type", "image_url"}, {"image_url", {{"detail", "low"}}}}, p + ".image_url.url",
         "Missing required parameter");
  expect({{"type", "image_url"}, {"image_url", 3}}, p + ".image_url", "");
  expect({{"type", "input_audio"}}, p + ".type", "'input_audio' are not supported");
  ctx.media.decode.max_pixels = 100;
  expect(image_part(data_url("photo.jpg")), p + ".image_url", "--max-image-pixels");
  ctx.media.decode.max_pixels = 1 << 30;
  ctx.media.fetch.max_bytes = 1000;
  expect(image_part(data_url("photo.jpg")), p + ".image_url", "--max-image-bytes");
  ctx.media.fetch.max_bytes = 1 << 20;
  ctx.media.max_images = 1;
  const auto [param, msg] =
      error_of(chat_body({image_part(data_url("photo.jpg")), image_part(data_url("photo.jpg"))}));
  EXPECT_EQ(param, "messages[0].content[1]");
  EXPECT_THAT(msg, HasSubstr("--max-images-per-request"));
}

TEST_F(Fixture, EndpointsWithoutImagesRefuseThem) {
  try {
    normalize_messages(
        json::array({{{"role", "user"}, {"content", json::array({image_part("data:x")})}}}));
    ADD_FAILURE();
  } catch (const ApiError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not supported by this endpoint"));
  }
}

TEST(ResponsesImages, InputImagePartsBecomeChatImageParts) {
  const ojson items = ojson::parse(R"([{"type": "message", "role": "user", "content": [
      {"type": "input_text", "text": "Describe"},
      {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}])");
  const ojson m = items_to_messages(items, "input");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0]["content"].dump(),
            R"([{"type":"text","text":"Describe"},{"type":"image_url","image_url":)"
            R"({"url":"data:image/png;base64,AAAA"}}])");
}

}  // namespace
}  // namespace inferd::server
