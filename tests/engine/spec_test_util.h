// What the speculative-decoding engine tests share (spec_decode_model_test,
// spec_decode_grammar_test, spec_draft_model_test, spec_eagle3_test): the check that outputs with
// speculation are those without.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "inferd/engine.h"

namespace inferd::test {

// Same requests, same order: the same error, and per sequence the same token ids, text, finish
// reason, stop string and number of logprobs entries.
inline void expect_same_results(const std::vector<GenerateResult>& want,
                                const std::vector<GenerateResult>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].request_id);
    EXPECT_EQ(got[i].error, want[i].error);
    ASSERT_EQ(got[i].outputs.size(), want[i].outputs.size());
    for (size_t s = 0; s < want[i].outputs.size(); ++s) {
      EXPECT_EQ(got[i].outputs[s].token_ids, want[i].outputs[s].token_ids);
      EXPECT_EQ(got[i].outputs[s].text, want[i].outputs[s].text);
      EXPECT_EQ(got[i].outputs[s].finish_reason, want[i].outputs[s].finish_reason);
      EXPECT_EQ(got[i].outputs[s].stop_string, want[i].outputs[s].stop_string);
      EXPECT_EQ(got[i].outputs[s].logprobs.size(), want[i].outputs[s].logprobs.size());
    }
  }
}

}  // namespace inferd::test
