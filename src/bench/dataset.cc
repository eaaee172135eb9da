#include "bench/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "core/error.h"

namespace inferd::bench {

namespace {

int32_t clip_len(double x) {
  const double r = std::round(x);
  if (r < kShareGptMinLen) return kShareGptMinLen;
  if (r > kShareGptMaxLen) return kShareGptMaxLen;
  return int32_t(r);
}

// Uniform integer in [lo, hi].
int32_t uniform_int(Rng& rng, int32_t lo, int32_t hi) {
  return lo + int32_t(rng.next_u64() % uint64_t(hi - lo + 1));
}

std::pair<int32_t, int32_t> len_range(int32_t len, double ratio) {
  const int32_t lo = std::max<int32_t>(1, int32_t(std::floor(double(len) * (1.0 - ratio))));
  const int32_t hi = std::max<int32_t>(lo, int32_t(std::floor(double(len) * (1.0 + ratio))));
  return {lo, hi};
}

void check_positive(const char* flag, int64_t v) {
  if (v <= 0) fail("{} must be positive, got {}", flag, v);
}

}  // namespace

std::vector<LengthPair> random_lengths(int32_t num, int32_t input_len, int32_t output_len,
                                       double range_ratio, uint64_t seed) {
  check_positive("--num-prompts", num);
  check_positive("--input-len", input_len);
  check_positive("--output-len", output_len);
  if (!(range_ratio >= 0.0 && range_ratio < 1.0))
    fail("--range-ratio must be in [0, 1), got {}", range_ratio);
  Rng rng(seed);
  const auto [ilo, ihi] = len_range(input_len, range_ratio);
  const auto [olo, ohi] = len_range(output_len, range_ratio);
  std::vector<LengthPair> out(static_cast<size_t>(num));
  for (auto& p : out) {
    p.input = uniform_int(rng, ilo, ihi);
    p.output = uniform_int(rng, olo, ohi);
  }
  return out;
}

std::vector<LengthPair> sharegpt_like_lengths(int32_t num, uint64_t seed) {
  check_positive("--num-prompts", num);
  Rng rng(seed);
  std::vector<LengthPair> out(static_cast<size_t>(num));
  for (auto& p : out) {
    p.input = clip_len(std::exp(kShareGptInputMu + kShareGptInputSigma * rng.normal()));
    p.output = clip_len(std::exp(kShareGptOutputMu + kShareGptOutputSigma * rng.normal()));
  }
  return out;
}

std::vector<LengthPair> mixed_long_lengths(int32_t num, double long_fraction,
                                           int32_t long_input_len, uint64_t seed) {
  if (!(long_fraction >= 0.0 && long_fraction <= 1.0))
    fail("--long-fraction must be in [0, 1], got {}", long_fraction);
  check_positive("--long-input-len", long_input_len);
  std::vector<LengthPair> out = sharegpt_like_lengths(num, seed);
  const size_t num_long = size_t(std::llround(double(num) * long_fraction));
  // A partial Fisher-Yates shuffle of the indices with a generator of its own.
  std::vector<size_t> idx(out.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  Rng rng(seed ^ 0x9e3779b97f4a7c15ull);
  for (size_t i = 0; i < num_long; ++i) {
    const size_t j = i + size_t(rng.next_u64() % uint64_t(idx.size() - i));
    std::swap(idx[i], idx[j]);
    out[idx[i]].input = long_input_len;
    out[idx[i]].long_prompt = true;
  }
  return out;
}

bool is_generated_dataset(const std::string& name) {
  return name == "random" || name == "sharegpt-like" || name == "mixed-long" ||
         name == "shared-prefix";
}

std::vector<LengthPair> dataset_lengths(const DatasetOptions& o) {
  if (o.name == "sharegpt-like") return sharegpt_like_lengths(o.num_prompts, o.seed);
  if (o.name == "mixed-long")
    return mixed_long_lengths(o.num_prompts, o.long_fraction, o.long_input_len, o.seed);
  return random_lengths(o.num_prompts, o.input_len, o.output_len, o.range_ratio, o.seed);
}

const std::vector<std::string>& builtin_words() {
  static const std::vector<std::string> words = {
      "the",       "of",       "and",         "to",        "in",         "is",       "was",
      "that",      "for",      "it",          "with",      "as",         "his",      "on",
      "be",        "at",       "by",          "had",       "are",        "but",      "from",
      "or",        "have",     "an",          "they",      "which",      "one",      "you",
      "were",      "her",      "all",         "she",       "there",      "would",    "their",
      "we",        "him",      "been",        "has",       "when",       "who",      "will",
      "more",      "no",       "if",          "out",       "so",         "said",     "what",
      "up",        "its",      "about",       "into",      "than",       "them",     "can",
      "only",      "other",    "new",         "some",      "could",      "time",     "these",
      "two",       "may",      "then",        "do",        "first",      "any",      "my",
      "now",       "such",     "like",        "our",       "over",       "man",      "me",
      "even",      "most",     "made",        "after",     "also",       "did",      "many",
      "before",    "must",     "through",     "back",      "years",      "where",    "much",
      "your",      "way",      "well",        "down",      "should",     "because",  "each",
      "just",      "those",    "people",      "how",       "too",        "little",   "state",
      "good",      "very",     "make",        "world",     "still",      "own",      "see",
      "men",       "work",     "long",        "get",       "here",       "between",  "both",
      "life",      "being",    "under",       "never",     "day",        "same",     "another",
      "know",      "while",    "last",        "might",     "us",         "great",    "old",
      "year",      "off",      "come",        "since",     "against",    "go",       "came",
      "right",     "used",     "take",        "three",     "states",     "himself",  "few",
      "house",     "use",      "during",      "without",   "again",      "place",    "around",
      "however",   "home",     "small",       "found",     "thought",    "went",     "say",
      "part",      "once",     "general",     "high",      "upon",       "school",   "every",
      "does",      "got",      "united",      "left",      "number",     "course",   "war",
      "until",     "always",   "away",        "something", "fact",       "though",   "water",
      "less",      "public",   "put",         "think",     "almost",     "hand",     "enough",
      "far",       "took",     "head",        "yet",       "government", "system",   "better",
      "set",       "told",     "nothing",     "night",     "end",        "why",      "called",
      "didn",      "eyes",     "find",        "going",     "look",       "asked",    "later",
      "knew",      "point",    "next",        "program",   "city",       "business", "give",
      "group",     "toward",   "young",       "days",      "let",        "room",     "president",
      "side",      "social",   "given",       "present",   "several",    "order",    "national",
      "second",    "possible", "rather",      "per",       "face",       "among",    "form",
      "important", "often",    "things",      "looked",    "early",      "white",    "case",
      "john",      "become",   "large",       "big",       "need",       "four",     "within",
      "felt",      "along",    "children",    "saw",       "best",       "church",   "ever",
      "least",     "power",    "development", "light",     "thing",      "seemed",   "family",
      "interest",  "want",     "members",     "mind",      "country",    "area",     "others",
      "done",      "turned",   "although",    "open",      "god",        "service",  "certain",
      "kind",      "problem",  "began",       "different", "door",       "thus",     "help",
      "means",     "sense",    "whole",       "matter",    "perhaps",    "itself",   "times",
      "law",       "human",    "line",        "above",     "name",       "example",  "action",
      "company",   "hands",    "local",       "show",      "five",       "history",  "whether",
      "gave",      "either",   "today",       "act",       "feet",       "across",   "taken",
      "past",      "quite",    "anything",    "seen",      "having",     "death",    "experience",
      "body",      "word",     "half",        "really",    "field",      "am",       "week",
      "car",       "words",    "money",       "river",     "garden",     "music",    "paper"};
  return words;
}

std::vector<std::string> TokenCounter::candidate_words() {
  return builtin_words();
}

PromptBuilder::PromptBuilder(TokenCounter& counter) : counter_(counter) {
  specials_ = counter_.count("");
  std::vector<std::string> cands = counter_.candidate_words();
  for (const auto& w : cands) {
    if (w.empty()) continue;
    // One token per occurrence, at the start and after a space.
    if (counter_.count(w + " " + w + " " + w) - specials_ == 3) words_.push_back(w);
  }
  if (words_.size() < 16) {
    // Some tokenizers split the built-in words; fall back to them when the counter's own
    // candidates were too few.
    for (const auto& w : builtin_words())
      if (std::find(words_.begin(), words_.end(), w) == words_.end() &&
          counter_.count(w + " " + w + " " + w) - specials_ == 3)
        words_.push_back(w);
  }
  if (words_.size() < 16)
    fail(
        "tokenizer ({}): found only {} words that are single tokens; cannot build prompts of "
        "exact lengths",
        counter_.describe(), words_.size());
}

std::string PromptBuilder::build(int32_t num_tokens, Rng& rng, int32_t* actual,
                                 const std::string& prefix, int32_t prefix_count) {
  const int32_t base =
      prefix.empty() ? specials_ : (prefix_count >= 0 ? prefix_count : counter_.count(prefix));
  std::vector<const std::string*> picked;
  auto add = [&](int32_t k) {
    for (int32_t i = 0; i < k; ++i) picked.push_back(&words_[rng.next_u64() % words_.size()]);
  };
  auto compose = [&] {
    std::string s = prefix;
    for (const std::string* w : picked) {
      if (!s.empty()) s += ' ';
      s += *w;
    }
    return s;
  };
  add(std::max<int32_t>(1, num_tokens - base));
  std::string best;
  int32_t best_count = -1;
  for (int iter = 0; iter < 32; ++iter) {
    std::string text = compose();
    const int32_t c = counter_.count(text);
    if (best_count < 0 || std::abs(c - num_tokens) < std::abs(best_count - num_tokens)) {
      best = text;
      best_count = c;
    }
    if (c == num_tokens) break;
    if (c < num_tokens) {
      add(num_tokens - c);
    } else {
      int32_t drop = c - num_tokens;
      if (picked.size() <= 1) break;
      drop = std::min<int32_t>(drop, int32_t(picked.size()) - 1);
      if (iter >= 8 && drop == 1) {
        // Oscillating (a word of two tokens at the boundary): swap the last word instead.
        picked.back() = &words_[rng.next_u64() % words_.size()];
        continue;
      }
      picked.resize(picked.size() - size_t(drop));
    }
  }
  if (actual) *actual = best_count;
  return best;
}

std::vector<BenchRequest> load_jsonl(const std::string& path, int32_t num_prompts,
                                     int32_t default_output_len, TokenCounter* counter) {
  std::ifstream in(path);
  if (!in) fail("dataset file '{}' cannot be opened", path);
  std::vector<BenchRequest> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (num_prompts > 0 && int32_t(out.size()) >= num_prompts) break;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("dataset file '{}' line {}: not JSON ({})", path, lineno, e.what());
    }
    if (!j.is_object())
      fail("dataset file '{}' line {}: expected an object with \"prompt\" or \"messages\"", path,
           lineno);
    BenchRequest r;
    if (j.contains("prompt")) {
      if (!j["prompt"].is_string())
        fail("dataset file '{}' line {}: \"prompt\" must be a string", path, lineno);
      r.prompt = j["prompt"].get<std::string>();
    } else if (j.contains("messages")) {
      const auto& m = j["messages"];
      if (!m.is_array() || m.empty())
        fail("dataset file '{}' line {}: \"messages\" must be a non-empty array", path, lineno);
      for (const auto& msg : m) {
        if (!msg.is_object() || !msg.contains("role") || !msg.contains("content"))
          fail("dataset file '{}' line {}: each message needs \"role\" and \"content\"", path,
               lineno);
        if (msg["content"].is_string()) {
          if (!r.prompt.empty()) r.prompt += "\n";
          r.prompt += msg["content"].get<std::string>();
        }
      }
      r.messages = m;
    } else {
      fail("dataset file '{}' line {}: expected \"prompt\" or \"messages\"", path, lineno);
    }
    r.output_len = default_output_len;
    if (j.contains("max_tokens")) {
      if (!j["max_tokens"].is_number_integer() || j["max_tokens"].get<int64_t>() <= 0 ||
          j["max_tokens"].get<int64_t>() > INT32_MAX)
        fail("dataset file '{}' line {}: \"max_tokens\" must be a positive integer", path, lineno);
      r.output_len = int32_t(j["max_tokens"].get<int64_t>());
    }
    if (counter) {
      r.prompt_len = counter->count(r.prompt);
      if (auto ids = counter->encode(r.prompt)) r.prompt_ids = std::move(*ids);
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) fail("dataset file '{}' holds no prompts", path);
  return out;
}

bool is_dataset_file(const std::string& name) {
  return name.ends_with(".jsonl") || name.ends_with(".json");
}

std::vector<BenchRequest> make_dataset(const DatasetOptions& opts, TokenCounter* counter) {
  const std::string& name = opts.name;
  if (is_dataset_file(name)) return load_jsonl(name, opts.num_prompts, opts.output_len, counter);
  if (!is_generated_dataset(name))
    fail(
        "--dataset '{}': expected random, sharegpt-like, mixed-long, shared-prefix or a .jsonl "
        "file",
        name);
  if (!counter)
    fail(
        "--dataset {} needs a tokenizer to build prompts of exact lengths (--tokenizer DIR, or "
        "a server with /tokenize)",
        name);
  const std::vector<LengthPair> lens = dataset_lengths(opts);
  PromptBuilder builder(*counter);
  // Texts come from a generator of their own so that lengths do not depend on the tokenizer.
  Rng text_rng(opts.seed ^ 0x5bd1e9955bd1e995ull);
  std::vector<std::string> prefixes;
  std::vector<int32_t> prefix_counts;
  if (name == "shared-prefix") {
    check_positive("--prefix-len", opts.prefix_len);
    check_positive("--num-prefixes", opts.num_prefixes);
    for (int32_t i = 0; i < opts.num_prefixes; ++i) {
      int32_t got = 0;
      prefixes.push_back(builder.build(opts.prefix_len, text_rng, &got));
      prefix_counts.push_back(got);
    }
  }
  std::vector<BenchRequest> out(lens.size());
  for (size_t i = 0; i < lens.size(); ++i) {
    BenchRequest& r = out[i];
    r.output_len = lens[i].output;
    r.long_prompt = lens[i].long_prompt;
    if (prefixes.empty()) {
      r.prompt = builder.build(lens[i].input, text_rng, &r.prompt_len);
    } else {
      const size_t k = i % prefixes.size();
      r.prompt = builder.build(prefix_counts[k] + lens[i].input, text_rng, &r.prompt_len,
                               prefixes[k], prefix_counts[k]);
    }
    if (auto ids = counter->encode(r.prompt)) r.prompt_ids = std::move(*ids);
  }
  return out;
}

}  // namespace inferd::bench
