// Every case of tests/data/chat_template_fixtures/features.json (small templates rendered by
// Python's jinja2 in transformers' environment) rendered by our interpreter: byte-for-byte
// equal output, or the same kind of error (and for raise_exception/syntax errors the same
// message and line).
#include <gtest/gtest.h>

#include "jinja/fixture_util.h"
#include "jinja/template.h"

namespace inferd::jinja {
namespace {

using testing::fixture_dir;
using testing::load_json;

struct FeatureCase {
  std::string name;
  nlohmann::ordered_json j;
};

std::vector<FeatureCase> load_cases() {
  std::vector<FeatureCase> out;
  auto j = load_json(fixture_dir() + "/features.json");
  for (const auto& c : j["cases"]) out.push_back({c["name"].get<std::string>(), c});
  return out;
}

void PrintTo(const FeatureCase& c, std::ostream* os) {
  *os << c.name;
}

class JinjaFeature : public ::testing::TestWithParam<FeatureCase> {};

TEST_P(JinjaFeature, MatchesPythonJinja2) {
  const auto& c = GetParam().j;
  const std::string source = c["template"].get<std::string>();
  RenderOptions opts;
  opts.now = testing::fixture_now;
  if (c.contains("expected")) {
    std::string got;
    try {
      got = Template(source).render(c["context"], opts);
    } catch (const std::exception& e) {
      FAIL() << "template: " << source << "\nthrew: " << e.what();
    }
    EXPECT_EQ(got, c["expected"].get<std::string>()) << "template: " << source;
    return;
  }
  const std::string kind = c["error_type"].get<std::string>();
  const std::string msg = c["error"].get<std::string>();
  try {
    std::string got = Template(source).render(c["context"], opts);
    FAIL() << "expected an error (" << kind << ": " << msg << "), got output: " << got;
  } catch (const TemplateError& e) {
    if (kind == "syntax") {
      EXPECT_EQ(e.kind(), TemplateError::Kind::kSyntax) << e.what();
      EXPECT_EQ(e.message(), msg);
      EXPECT_EQ(e.line(), c["lineno"].get<int>()) << e.what();
    } else if (kind == "raise_exception") {
      EXPECT_EQ(e.kind(), TemplateError::Kind::kRaised) << e.what();
      EXPECT_EQ(std::string(e.what()), msg);
    } else {
      EXPECT_EQ(e.kind(), TemplateError::Kind::kRuntime) << e.what();
      EXPECT_EQ(e.message(), msg);
      EXPECT_GT(e.line(), 0) << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, JinjaFeature, ::testing::ValuesIn(load_cases()),
                         [](const ::testing::TestParamInfo<FeatureCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace inferd::jinja
