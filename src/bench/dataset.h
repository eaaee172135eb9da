// Benchmark datasets: request lengths (random, sharegpt-like, mixed-long, shared-prefix), JSONL
// prompt files,
// and prompts that are real token sequences of an exact length for a target tokenizer.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.h"

namespace inferd::bench {

// One benchmark request.
struct BenchRequest {
  std::string prompt;                      // the prompt text (chat: the user message)
  std::optional<nlohmann::json> messages;  // a JSONL "messages" array, sent as is (chat)
  std::vector<int32_t> prompt_ids;         // the prompt's token ids, when known
  int32_t prompt_len = 0;    // tokens as the target tokenizer counts them (0: unknown)
  int32_t output_len = 0;    // tokens to generate (max_tokens, and min_tokens when forced)
  bool long_prompt = false;  // mixed-long: one of the long prompts (reported apart)
};

struct LengthPair {
  int32_t input = 0;
  int32_t output = 0;
  bool long_prompt = false;  // mixed-long: input is the long length
};

// `random`: lengths drawn uniformly (integers) from
// [floor(len * (1 - range_ratio)), floor(len * (1 + range_ratio))], at least 1; vLLM's rule.
// range_ratio must be in [0, 1).
std::vector<LengthPair> random_lengths(int32_t num, int32_t input_len, int32_t output_len,
                                       double range_ratio, uint64_t seed);

// `sharegpt-like` (DESIGN.md): with one Rng(seed), for each request in turn
//   input  = round(exp(ln 110 + 1.17 * z1)),  output = round(exp(ln 120 + 1.0 * z2)),
// z1, z2 standard normal (Rng::normal), each clipped to [4, 2048].
inline constexpr double kShareGptInputMu = 4.700480365792417;  // ln 110
inline constexpr double kShareGptInputSigma = 1.17;
inline constexpr double kShareGptOutputMu = 4.787491742782046;  // ln 120
inline constexpr double kShareGptOutputSigma = 1.0;
inline constexpr int32_t kShareGptMinLen = 4;
inline constexpr int32_t kShareGptMaxLen = 2048;
std::vector<LengthPair> sharegpt_like_lengths(int32_t num, uint64_t seed);

// `mixed-long`: sharegpt-like lengths (same seed, so the same short requests), of which
// round(num * long_fraction) requests, picked by a seeded shuffle, get long_input_len prompt
// tokens instead (their outputs stay sharegpt-like short). long_fraction must be in [0, 1].
inline constexpr double kDefaultLongFraction = 0.05;
inline constexpr int32_t kDefaultLongInputLen = 16384;
std::vector<LengthPair> mixed_long_lengths(int32_t num, double long_fraction,
                                           int32_t long_input_len, uint64_t seed);

// Counts tokens of texts as the target server or model would (special tokens it adds, such as
// BOS, included).
class TokenCounter {
 public:
  virtual ~TokenCounter() = default;
  virtual int32_t count(const std::string& text) = 0;
  // Token ids of `text` with the special tokens added, when this counter can produce them.
  virtual std::optional<std::vector<int32_t>> encode(const std::string& text) {
    (void)text;
    return std::nullopt;
  }
  // Candidate words (ASCII letters, no spaces) from which prompts are assembled; the builder
  // keeps those that are one token after a space. Default: a built-in list of English words.
  virtual std::vector<std::string> candidate_words();
  virtual std::string describe() const = 0;
};

// The built-in word list.
const std::vector<std::string>& builtin_words();

// Assembles prompt texts of an exact token count from words that are single tokens, checking
// each prompt with the counter and adding or removing words until the count is exact.
class PromptBuilder {
 public:
  explicit PromptBuilder(TokenCounter& counter);
  // Text of `num_tokens` tokens (as counter.count says), starting with `prefix` when non-empty
  // (a space separates them). When the exact count cannot be reached (for example fewer tokens
  // than the prefix and the special tokens take) the closest text is returned; `*actual`
  // receives the real count.
  // `prefix_count`: the prefix's token count when already known (-1: count it).
  std::string build(int32_t num_tokens, Rng& rng, int32_t* actual, const std::string& prefix = "",
                    int32_t prefix_count = -1);
  // Tokens the counter adds to any text (count of the empty string).
  int32_t special_tokens() const { return specials_; }
  size_t num_words() const { return words_.size(); }

 private:
  TokenCounter& counter_;
  std::vector<std::string> words_;
  int32_t specials_ = 0;
};

struct DatasetOptions {
  std::string name = "random";  // random | sharegpt-like | mixed-long | shared-prefix | .jsonl
  int32_t num_prompts = 1000;
  int32_t input_len = 1024;
  int32_t output_len = 128;
  double range_ratio = 0.0;
  int32_t prefix_len = 2000;                      // shared-prefix
  int32_t num_prefixes = 1;                       // shared-prefix
  double long_fraction = kDefaultLongFraction;    // mixed-long
  int32_t long_input_len = kDefaultLongInputLen;  // mixed-long
  uint64_t seed = 0;
};

// True when `name` is one of the generated datasets (random, sharegpt-like, mixed-long,
// shared-prefix).
bool is_generated_dataset(const std::string& name);

// The lengths of a generated dataset other than shared-prefix's prefixes (random's rule for
// random and shared-prefix). Throws Error for bad options.
std::vector<LengthPair> dataset_lengths(const DatasetOptions& opts);

// True when --dataset names a prompt file (.jsonl or .json) rather than a generator.
bool is_dataset_file(const std::string& name);

// Builds the requests. `counter` may be null only for a JSONL file (prompt_len is then 0 and the
// server's usage supplies the count). Throws Error for bad options or a malformed file.
std::vector<BenchRequest> make_dataset(const DatasetOptions& opts, TokenCounter* counter);

// `shared-prefix`: request i uses prefix (i mod num_prefixes) of prefix_len tokens followed by a
// unique part whose length is drawn as `random` draws input lengths; output as `random`.
// JSONL: one object per line, {"prompt": "..."} or {"messages": [...]}, optional "max_tokens"
// (else output_len); blank lines skipped; the first num_prompts entries are used (all of them
// when the file holds fewer or num_prompts <= 0).
std::vector<BenchRequest> load_jsonl(const std::string& path, int32_t num_prompts,
                                     int32_t default_output_len, TokenCounter* counter);

}  // namespace inferd::bench
