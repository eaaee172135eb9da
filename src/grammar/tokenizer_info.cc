// TokenizerInfo: the token bytes, sorted for trie walks.
#include "grammar/tokenizer_info.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace inferd::grammar {
namespace {
std::atomic<uint64_t> next_serial{1};
}

TokenizerInfo::TokenizerInfo(std::vector<std::string> token_bytes, std::vector<int32_t> stop_ids)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.bytes = std::move(token_bytes);
  im.stop_ids = std::move(stop_ids);
  im.serial = next_serial.fetch_add(1);
  const auto n = static_cast<int32_t>(im.bytes.size());
  im.stop_mask.assign(static_cast<size_t>(bitmask_words(n)), 0);
  std::vector<bool> is_stop(im.bytes.size(), false);
  for (int32_t s : im.stop_ids) {
    if (s < 0 || s >= n) {
      throw GrammarError("tokenizer info: stop id " + std::to_string(s) +
                         " is outside the vocabulary (expected 0 <= id < " + std::to_string(n) +
                         ")");
    }
    is_stop[static_cast<size_t>(s)] = true;
    im.stop_mask[static_cast<size_t>(s) / 32] |= 1u << (s % 32);
  }
  for (int32_t id = 0; id < n; ++id) {
    if (!im.bytes[static_cast<size_t>(id)].empty() && !is_stop[static_cast<size_t>(id)]) {
      im.sorted.push_back(id);
    }
  }
  std::sort(im.sorted.begin(), im.sorted.end(), [&](int32_t a, int32_t b) {
    const std::string& x = im.bytes[static_cast<size_t>(a)];
    const std::string& y = im.bytes[static_cast<size_t>(b)];
    return x != y ? x < y : a < b;
  });
  im.sorted_off.push_back(0);
  for (int32_t id : im.sorted) {
    im.sorted_bytes += im.bytes[static_cast<size_t>(id)];
    im.max_token_len = std::max(im.max_token_len, im.bytes[static_cast<size_t>(id)].size());
    im.sorted_off.push_back(static_cast<uint32_t>(im.sorted_bytes.size()));
  }
  im.byte_token_mask.assign(static_cast<size_t>(bitmask_words(n)), 0);
  for (int32_t id : im.sorted) im.byte_token_mask[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
  // short_masks[l]: the tokens of at most l bytes.
  im.short_masks.assign(TokenizerInfo::Impl::kShortMasks,
                        std::vector<uint32_t>(static_cast<size_t>(bitmask_words(n)), 0));
  for (int32_t id : im.sorted) {
    const size_t len = im.bytes[static_cast<size_t>(id)].size();
    if (len < TokenizerInfo::Impl::kShortMasks) {
      im.short_masks[len][static_cast<size_t>(id) / 32] |= 1u << (id % 32);
    }
  }
  for (size_t l = 1; l < im.short_masks.size(); ++l) {
    for (size_t w = 0; w < im.short_masks[l].size(); ++w) {
      im.short_masks[l][w] |= im.short_masks[l - 1][w];
    }
  }
  im.tail_bytes.assign(im.sorted.size() * 4, 0);
  for (size_t r = 0; r < im.sorted.size(); ++r) {
    const std::string_view t = im.at_rank(static_cast<int32_t>(r));
    for (size_t i = 1; i < t.size(); ++i) {
      const auto b = static_cast<uint8_t>(t[i]);
      im.tail_bytes[r * 4 + b / 64] |= uint64_t{1} << (b % 64);
    }
  }
  im.rank_of.assign(im.bytes.size(), -1);
  im.lcp.assign(im.sorted.size(), 0);
  im.first_byte_begin.assign(257, 0);
  for (size_t r = 0; r < im.sorted.size(); ++r) {
    im.rank_of[static_cast<size_t>(im.sorted[r])] = static_cast<int32_t>(r);
    const std::string_view cur = im.at_rank(static_cast<int32_t>(r));
    if (r > 0) {
      const std::string_view prev = im.at_rank(static_cast<int32_t>(r - 1));
      size_t k = 0;
      while (k < prev.size() && k < cur.size() && prev[k] == cur[k]) ++k;
      im.lcp[r] = static_cast<uint16_t>(std::min<size_t>(k, 65535));
    }
  }
  // first_byte_begin[b] = first rank whose first byte is >= b.
  size_t r = 0;
  for (int b = 0; b < 257; ++b) {
    while (r < im.sorted.size() &&
           static_cast<uint8_t>(im.at_rank(static_cast<int32_t>(r))[0]) < b) {
      ++r;
    }
    im.first_byte_begin[static_cast<size_t>(b)] = static_cast<int32_t>(r);
  }
}

TokenizerInfo::~TokenizerInfo() = default;

int32_t TokenizerInfo::vocab_size() const {
  return static_cast<int32_t>(impl_->bytes.size());
}
const std::string& TokenizerInfo::token_bytes(int32_t id) const {
  return impl_->bytes.at(static_cast<size_t>(id));
}
const std::vector<int32_t>& TokenizerInfo::stop_ids() const {
  return impl_->stop_ids;
}

}  // namespace inferd::grammar
