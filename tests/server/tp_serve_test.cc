// Issue 33 (tensor parallelism, CPU): `inferd serve --tensor-parallel-size 2 --device cpu` on the
// demo model serves completions whose greedy text is TP = 1's; a rank whose device fails
// mid-request takes the server down cleanly (the request's 500 names the rank, exit status 3, no
// hang); a size the model cannot be split into stops the start with the reason (runs the binary).
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "serve_process_util.h"

namespace inferd {
namespace {

using testing_util::http_request;
using testing_util::HttpReply;
using testing_util::ServeProcess;

const std::string kDemo = testing_util::demo_model_dir();
const std::string kArgs = " --served-model-name demo --device cpu --host 127.0.0.1 --port 0";

std::string completion(int max_tokens) {
  return testing_util::demo_completion("And God said", max_tokens);
}

std::string greedy_text(const std::string& flags) {
  ServeProcess p;
  EXPECT_TRUE(p.start(kDemo + kArgs + flags)) << p.log();
  const HttpReply r = http_request(p.port(), "POST", "/v1/completions", completion(24));
  EXPECT_EQ(r.status, 200) << r.text;
  return testing_util::completion_text(r);
}

TEST(TensorParallelServe, Tp2ServesTheGreedyTextOfOneRank) {
  const std::string one = greedy_text("");
  ASSERT_FALSE(one.empty());
  EXPECT_EQ(greedy_text(" --tensor-parallel-size 2"), one);
  EXPECT_EQ(greedy_text(" -tp 2 --threads 2"), one);
}

TEST(TensorParallelServe, ARankFaultStopsTheServerCleanly) {
  ServeProcess p;
  ASSERT_TRUE(p.start(kDemo + kArgs + " -tp 2 --debug-inject-device-fault after_steps=4"))
      << p.log();
  const HttpReply r = http_request(p.port(), "POST", "/v1/completions", completion(200));
  EXPECT_EQ(r.status, 500) << r.text;
  EXPECT_NE(r.text.find("tensor-parallel rank 1 of 2: device fault on cpu"), std::string::npos)
      << r.text;
  ASSERT_TRUE(p.exited(std::chrono::seconds(10))) << "still running after the fault\n" << p.log();
  EXPECT_EQ(p.exit_status(), 3) << p.log();
}

TEST(TensorParallelServe, ASizeTheModelCannotSplitIntoStopsTheStart) {
  ServeProcess p;
  EXPECT_FALSE(p.start(kDemo + kArgs + " --tensor-parallel-size 4"));
  ASSERT_TRUE(p.exited(std::chrono::seconds(30))) << p.log();
  EXPECT_EQ(p.exit_status(), 1) << p.log();
  EXPECT_NE(p.log().find("the model's 6 attention heads do not divide into 4 ranks"),
            std::string::npos)
      << p.log();
}

}  // namespace
}  // namespace inferd
