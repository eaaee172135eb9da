#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "bench/counters.h"
#include "bench/dataset.h"
#include "bench/stats.h"
#include "core/error.h"

namespace inferd::bench {
namespace {

// Words separated by spaces are tokens; a word longer than `split_over` letters counts as two;
// `bos` tokens are added to every text.
class WordCounter : public TokenCounter {
 public:
  WordCounter(int bos, size_t split_over) : bos_(bos), split_over_(split_over) {}
  int32_t count(const std::string& text) override {
    ++calls;
    std::istringstream in(text);
    std::string w;
    int32_t n = bos_;
    while (in >> w) n += w.size() > split_over_ ? 2 : 1;
    return n;
  }
  std::string describe() const override { return "words"; }
  int calls = 0;

 private:
  int bos_;
  size_t split_over_;
};

double normal_cdf(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

// E[clip(X, a, b)] for X ~ LogNormal(mu, sigma).
double clipped_lognormal_mean(double mu, double sigma, double a, double b) {
  const double za = (std::log(a) - mu) / sigma, zb = (std::log(b) - mu) / sigma;
  const double mid =
      std::exp(mu + sigma * sigma / 2) * (normal_cdf(zb - sigma) - normal_cdf(za - sigma));
  return a * normal_cdf(za) + mid + b * (1 - normal_cdf(zb));
}

TEST(ShareGptLike, DeterministicForASeed) {
  const auto a = sharegpt_like_lengths(500, 0);
  const auto b = sharegpt_like_lengths(500, 0);
  const auto c = sharegpt_like_lengths(500, 1);
  ASSERT_EQ(a.size(), 500u);
  bool same_ab = true, same_ac = true;
  for (size_t i = 0; i < a.size(); ++i) {
    same_ab &= a[i].input == b[i].input && a[i].output == b[i].output;
    same_ac &= a[i].input == c[i].input && a[i].output == c[i].output;
  }
  EXPECT_TRUE(same_ab);
  EXPECT_FALSE(same_ac);
}

TEST(ShareGptLike, HitsTheAnalyticLengthStatistics) {
  const int n = 200000;
  const auto lens = sharegpt_like_lengths(n, 0);
  std::vector<double> in, out;
  int in_top = 0, out_top = 0;
  for (const auto& p : lens) {
    ASSERT_GE(p.input, 4);
    ASSERT_LE(p.input, 2048);
    ASSERT_GE(p.output, 4);
    ASSERT_LE(p.output, 2048);
    in.push_back(p.input);
    out.push_back(p.output);
    in_top += p.input == 2048;
    out_top += p.output == 2048;
  }
  const Summary si = summarize(in, std::vector<double>{50});
  const Summary so = summarize(out, std::vector<double>{50});
  // Medians: exp(mu) = 110 and 120.
  EXPECT_NEAR(si.at(50), 110.0, 2.0);
  EXPECT_NEAR(so.at(50), 120.0, 2.0);
  // Means of the clipped log-normals (~217 and ~197; unclipped 218.1 and 197.8).
  const double mi = clipped_lognormal_mean(std::log(110.0), 1.17, 4, 2048);
  const double mo = clipped_lognormal_mean(std::log(120.0), 1.0, 4, 2048);
  EXPECT_NEAR(si.mean, mi, 0.015 * mi) << "analytic " << mi;
  EXPECT_NEAR(so.mean, mo, 0.015 * mo) << "analytic " << mo;
  EXPECT_GT(mi, 210);
  EXPECT_LT(mi, 222);
  // The share clipped at 2048: P(X > 2047.5).
  const double pi = 1 - normal_cdf((std::log(2047.5) - std::log(110.0)) / 1.17);
  EXPECT_NEAR(double(in_top) / n, pi, 0.25 * pi + 2e-4);
  const double po = 1 - normal_cdf((std::log(2047.5) - std::log(120.0)) / 1.0);
  EXPECT_NEAR(double(out_top) / n, po, 0.25 * po + 2e-4);
  // Quartiles: exp(mu +- 0.6745 sigma).
  const double q1 = std::exp(std::log(110.0) - 0.6744897501960817 * 1.17);
  const double q3 = std::exp(std::log(110.0) + 0.6744897501960817 * 1.17);
  EXPECT_NEAR(percentile(in, 25), q1, 0.03 * q1);
  EXPECT_NEAR(percentile(in, 75), q3, 0.03 * q3);
}

TEST(RandomLengths, RangeAndMean) {
  const auto a = random_lengths(20000, 100, 40, 0.5, 7);
  double si = 0, so = 0;
  for (const auto& p : a) {
    ASSERT_GE(p.input, 50);
    ASSERT_LE(p.input, 150);
    ASSERT_GE(p.output, 20);
    ASSERT_LE(p.output, 60);
    si += p.input;
    so += p.output;
  }
  EXPECT_NEAR(si / a.size(), 100, 1.5);
  EXPECT_NEAR(so / a.size(), 40, 0.6);
  const auto b = random_lengths(20000, 100, 40, 0.5, 7);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), [](auto x, auto y) {
    return x.input == y.input && x.output == y.output;
  }));
  for (const auto& p : random_lengths(100, 64, 32, 0.0, 1)) {
    EXPECT_EQ(p.input, 64);
    EXPECT_EQ(p.output, 32);
  }
  EXPECT_THROW(random_lengths(10, 64, 32, 1.0, 0), Error);
  EXPECT_THROW(random_lengths(10, 0, 32, 0.0, 0), Error);
  EXPECT_THROW(random_lengths(0, 64, 32, 0.0, 0), Error);
}

TEST(PromptBuilder, ExactLengthsWithSpecialTokensAndSplitWords) {
  WordCounter counter(/*bos=*/1, /*split_over=*/5);
  PromptBuilder b(counter);
  EXPECT_EQ(b.special_tokens(), 1);
  EXPECT_GT(b.num_words(), 16u);
  Rng rng(3);
  for (int32_t n : {2, 3, 10, 64, 257, 1000}) {
    int32_t got = 0;
    const std::string text = b.build(n, rng, &got);
    EXPECT_EQ(got, n);
    EXPECT_EQ(counter.count(text), n);
  }
  // Fewer tokens than the specials take: the closest text (one word).
  int32_t got = 0;
  b.build(1, rng, &got);
  EXPECT_EQ(got, 2);
  // With a prefix.
  const std::string prefix = b.build(50, rng, &got);
  const std::string text = b.build(80, rng, &got, prefix);
  EXPECT_EQ(got, 80);
  EXPECT_EQ(text.rfind(prefix + " ", 0), 0u);
}

TEST(MakeDataset, RandomPromptsHaveTheRequestedLengthsAndAreDeterministic) {
  WordCounter counter(1, 100);
  DatasetOptions o;
  o.name = "random";
  o.num_prompts = 50;
  o.input_len = 40;
  o.output_len = 10;
  o.range_ratio = 0.5;
  o.seed = 5;
  const auto a = make_dataset(o, &counter);
  const auto b = make_dataset(o, &counter);
  const auto lens = random_lengths(50, 40, 10, 0.5, 5);
  ASSERT_EQ(a.size(), 50u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt_len, lens[i].input);
    EXPECT_EQ(counter.count(a[i].prompt), lens[i].input);
    EXPECT_EQ(a[i].output_len, lens[i].output);
    EXPECT_EQ(a[i].prompt, b[i].prompt);
  }
  EXPECT_NE(a[0].prompt, a[1].prompt);
  o.seed = 6;
  EXPECT_NE(make_dataset(o, &counter)[0].prompt, a[0].prompt);
  o.name = "nope";
  EXPECT_THROW(make_dataset(o, &counter), Error);
  o.name = "random";
  EXPECT_THROW(make_dataset(o, nullptr), Error);
}

TEST(MixedLong, FractionLengthsAndDeterminism) {
  const int32_t n = 400;
  const auto lens = mixed_long_lengths(n, 0.05, 16384, 3);
  const auto base = sharegpt_like_lengths(n, 3);
  ASSERT_EQ(lens.size(), size_t(n));
  int32_t num_long = 0;
  for (size_t i = 0; i < lens.size(); ++i) {
    // Outputs stay sharegpt-like short; short prompts are exactly the sharegpt-like ones.
    EXPECT_EQ(lens[i].output, base[i].output);
    if (lens[i].long_prompt) {
      ++num_long;
      EXPECT_EQ(lens[i].input, 16384);
    } else {
      EXPECT_EQ(lens[i].input, base[i].input);
      EXPECT_LE(lens[i].input, kShareGptMaxLen);
    }
  }
  EXPECT_EQ(num_long, 20);  // round(400 * 0.05)
  // Same seed, same requests; another seed picks other requests.
  const auto again = mixed_long_lengths(n, 0.05, 16384, 3);
  const auto other = mixed_long_lengths(n, 0.05, 16384, 4);
  bool same_pick = true;
  for (size_t i = 0; i < lens.size(); ++i) {
    EXPECT_EQ(again[i].input, lens[i].input);
    EXPECT_EQ(again[i].long_prompt, lens[i].long_prompt);
    if (other[i].long_prompt != lens[i].long_prompt) same_pick = false;
  }
  EXPECT_FALSE(same_pick);
  // Knobs: another length, no long prompts, all long; bad values are errors.
  for (const auto& l : mixed_long_lengths(100, 0.1, 5000, 1)) {
    if (l.long_prompt) {
      EXPECT_EQ(l.input, 5000);
    }
  }
  for (const auto& l : mixed_long_lengths(100, 0.0, 5000, 1)) EXPECT_FALSE(l.long_prompt);
  for (const auto& l : mixed_long_lengths(10, 1.0, 64, 1)) EXPECT_TRUE(l.long_prompt);
  EXPECT_THROW(mixed_long_lengths(100, 1.5, 5000, 1), Error);
  EXPECT_THROW(mixed_long_lengths(100, -0.1, 5000, 1), Error);
  EXPECT_THROW(mixed_long_lengths(100, 0.05, 0, 1), Error);
}

TEST(MakeDataset, MixedLongMarksItsLongPrompts) {
  WordCounter counter(1, 100);
  DatasetOptions o;
  o.name = "mixed-long";
  o.num_prompts = 40;
  o.long_fraction = 0.1;
  o.long_input_len = 3000;
  o.seed = 2;
  const auto reqs = make_dataset(o, &counter);
  const auto lens = mixed_long_lengths(40, 0.1, 3000, 2);
  ASSERT_EQ(reqs.size(), 40u);
  int num_long = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].long_prompt, lens[i].long_prompt);
    EXPECT_EQ(reqs[i].prompt_len, lens[i].input);
    EXPECT_EQ(counter.count(reqs[i].prompt), lens[i].input);
    EXPECT_EQ(reqs[i].output_len, lens[i].output);
    num_long += reqs[i].long_prompt;
  }
  EXPECT_EQ(num_long, 4);
  EXPECT_TRUE(is_generated_dataset("mixed-long"));
}

TEST(MakeDataset, SharedPrefix) {
  WordCounter counter(1, 100);
  DatasetOptions o;
  o.name = "shared-prefix";
  o.num_prompts = 12;
  o.prefix_len = 100;
  o.num_prefixes = 3;
  o.input_len = 20;
  o.output_len = 8;
  const auto reqs = make_dataset(o, &counter);
  ASSERT_EQ(reqs.size(), 12u);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].prompt_len, 120);
    EXPECT_EQ(counter.count(reqs[i].prompt), 120);
    // The first 99 words (the prefix without BOS) are those of request i mod 3.
    auto head = [](const std::string& s) {
      size_t pos = 0;
      for (int k = 0; k < 99; ++k) pos = s.find(' ', pos) + 1;
      return s.substr(0, pos);
    };
    EXPECT_EQ(head(reqs[i].prompt), head(reqs[i % 3].prompt));
    if (i % 3 != 0) {
      EXPECT_NE(head(reqs[i].prompt), head(reqs[0].prompt));
    }
    EXPECT_NE(reqs[i].prompt, reqs[(i + 3) % 12].prompt);  // unique suffixes
  }
}

TEST(MakeDataset, Jsonl) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "inferd_bench_dataset_test.jsonl").string();
  {
    std::ofstream f(path);
    f << R"({"prompt": "hello there world", "max_tokens": 7})"
      << "\n\n"
      << R"({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]})"
      << "\n";
  }
  WordCounter counter(1, 100);
  auto reqs = load_jsonl(path, 0, 33, &counter);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].prompt, "hello there world");
  EXPECT_EQ(reqs[0].prompt_len, 4);
  EXPECT_EQ(reqs[0].output_len, 7);
  EXPECT_FALSE(reqs[0].messages);
  ASSERT_TRUE(reqs[1].messages);
  EXPECT_EQ(reqs[1].messages->size(), 2u);
  EXPECT_EQ(reqs[1].output_len, 33);
  EXPECT_EQ(load_jsonl(path, 1, 33, nullptr).size(), 1u);
  EXPECT_EQ(load_jsonl(path, 1, 33, nullptr)[0].prompt_len, 0);
  {
    std::ofstream f(path);
    f << R"({"prompt": "ok"})"
      << "\n"
      << R"({"max_tokens": 3})"
      << "\n";
  }
  try {
    load_jsonl(path, 0, 10, nullptr);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_jsonl(path + ".missing", 0, 10, nullptr), Error);
  std::filesystem::remove(path);
}

// Real tokenizers: every prompt encodes to exactly the requested number of tokens.
class RealTokenizer : public ::testing::TestWithParam<const char*> {};

TEST_P(RealTokenizer, PromptsAreExact) {
  const std::string dir = std::string(INFERD_TEST_DATA_DIR) + "/tokenizers/" + GetParam();
  LocalTokenCounter counter(dir);
  DatasetOptions o;
  o.name = "random";
  o.num_prompts = 40;
  o.input_len = 100;
  o.output_len = 10;
  o.range_ratio = 0.9;
  const auto reqs = make_dataset(o, &counter);
  const auto lens = random_lengths(40, 100, 10, 0.9, 0);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].prompt_len, lens[i].input) << i;
    EXPECT_EQ(int32_t(reqs[i].prompt_ids.size()), lens[i].input) << i;
    EXPECT_EQ(counter.count(reqs[i].prompt), lens[i].input) << reqs[i].prompt;
  }
}

INSTANTIATE_TEST_SUITE_P(Bench, RealTokenizer,
                         ::testing::Values("llama2", "llama3", "qwen3", "gemma3"));

}  // namespace
}  // namespace inferd::bench
