#include <algorithm>

#include "bench/counters.h"
#include "tokenizer/tokenizer.h"

namespace inferd::bench {

LocalTokenCounter::LocalTokenCounter(const std::string& dir)
    : dir_(dir), tok_(std::make_unique<Tokenizer>(Tokenizer::from_dir(dir))) {}

LocalTokenCounter::~LocalTokenCounter() = default;

int32_t LocalTokenCounter::count(const std::string& text) {
  return int32_t(tok_->encode(text, /*add_special_tokens=*/true).size());
}

std::optional<std::vector<int32_t>> LocalTokenCounter::encode(const std::string& text) {
  return tok_->encode(text, /*add_special_tokens=*/true);
}

std::vector<std::string> LocalTokenCounter::candidate_words() {
  std::vector<std::string> words;
  const int32_t limit = int32_t(tok_->id_limit());
  for (int32_t id = 0; id < limit; ++id) {
    if (!tok_->is_valid_id(id) || tok_->is_special(id)) continue;
    const int32_t one[1] = {id};
    std::string s = tok_->decode(one, /*skip_special_tokens=*/true);
    const size_t b = s.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    s = s.substr(b);
    if (s.size() < 2 || s.size() > 12) continue;
    if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; })) continue;
    words.push_back(std::move(s));
  }
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  // At most kMax, spread evenly over the (sorted) list so that they are not all short merges.
  constexpr size_t kMax = 4000;
  if (words.size() > kMax) {
    std::vector<std::string> picked;
    for (size_t i = 0; i < kMax; ++i) picked.push_back(words[i * words.size() / kMax]);
    words = std::move(picked);
  }
  return words;
}

std::string LocalTokenCounter::describe() const {
  return "tokenizer in " + dir_;
}

}  // namespace inferd::bench
