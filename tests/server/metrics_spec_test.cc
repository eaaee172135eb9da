// /metrics: speculative decoding's counters under vLLM's names, only when speculation is on.
#include <gtest/gtest.h>

#include "server/metrics.h"

namespace inferd {
namespace {

TEST(MetricsSpecDecode, VllmNamesWhenSpeculationIsOn) {
  server::Metrics m("demo");
  EngineStats s;
  EXPECT_EQ(m.render(s).find("spec_decode"), std::string::npos);
  s.spec_num_speculative_tokens = 3;
  s.spec_num_drafts = 10;
  s.spec_num_draft_tokens = 30;
  s.spec_num_accepted_tokens = 17;
  s.spec_accepted_per_pos = {9, 5, 3};
  const std::string page = m.render(s);
  for (const char* line : {
           "# TYPE vllm:spec_decode_num_drafts counter",
           "vllm:spec_decode_num_drafts_total{model_name=\"demo\",engine=\"0\"} 10.0",
           "vllm:spec_decode_num_draft_tokens_total{model_name=\"demo\",engine=\"0\"} 30.0",
           "vllm:spec_decode_num_accepted_tokens_total{model_name=\"demo\",engine=\"0\"} 17.0",
           "vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name=\"demo\",engine=\"0\","
           "position=\"0\"} "
           "9.0",
           "vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name=\"demo\",engine=\"0\","
           "position=\"2\"} "
           "3.0",
       })
    EXPECT_NE(page.find(line), std::string::npos) << line << "\n" << page;
  EXPECT_EQ(page.find("position=\"3\""), std::string::npos);
  // Each family once.
  const std::string type = "# TYPE vllm:spec_decode_num_drafts counter";
  EXPECT_EQ(page.find(type, page.find(type) + 1), std::string::npos) << page;
}

}  // namespace
}  // namespace inferd
