// The token tables the classifier produces (compiled_grammar.h's TokenTable): built from accepted
// ids, from bitmasks, or from a reference table for the short tokens, each stored in the smallest
// of its three forms; and or_accepted, which reads one back into a mask.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "grammar/classifier.h"
#include "grammar/compiled_grammar.h"

namespace inferd::grammar {

void or_accepted(const TokenTable& t, const TokenizerInfo::Impl& v, std::span<uint32_t> words,
                 std::vector<uint32_t>& scratch) {
  switch (t.storage) {
    case TokenTable::Storage::kAcceptedList:
      for (int32_t id : t.ids) words[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      break;
    case TokenTable::Storage::kAcceptedBitmask:
      for (size_t i = 0; i < t.accepted_bits.size(); ++i) words[i] |= t.accepted_bits[i];
      break;
    case TokenTable::Storage::kRejectedList:
      scratch.assign(v.byte_token_mask.begin(), v.byte_token_mask.end());
      for (int32_t id : t.ids) scratch[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
      for (int32_t r : t.uncertain_ranks) {
        const int32_t id = v.sorted[static_cast<size_t>(r)];
        scratch[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
      }
      for (size_t i = 0; i < scratch.size(); ++i) words[i] |= scratch[i];
      break;
  }
}

namespace {

// Bits set in x, without a library call (the build targets x86-64 without POPCNT, where
// __builtin_popcount calls libgcc once a word: 2% of a corpus run went there).
size_t popcount64(uint64_t x) {
  x -= (x >> 1) & 0x5555555555555555ull;
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<size_t>((x * 0x0101010101010101ull) >> 56);
}

}  // namespace

std::shared_ptr<const TokenTable> Classifier::table_from_ref(const TokenTable& base,
                                                             const TokenTable& ref, size_t len,
                                                             std::vector<int32_t>& accepted,
                                                             std::vector<int32_t>& uncertain) {
  const size_t words = static_cast<size_t>(bitmask_words(static_cast<int32_t>(v_.bytes.size())));
  std::vector<uint32_t> acc(words, 0);
  or_accepted_bits(ref, acc);
  const auto& shorts = v_.short_masks[len];
  for (size_t i = 0; i < words; ++i) acc[i] &= shorts[i];
  or_accepted_bits(base, acc);
  for (int32_t id : accepted) acc[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
  std::vector<int32_t> unc;
  unc.reserve(uncertain.size() + ref.uncertain_ranks.size());
  for (int32_t r : ref.uncertain_ranks) {
    if (v_.sorted_off[static_cast<size_t>(r) + 1] - v_.sorted_off[static_cast<size_t>(r)] <= len) {
      unc.push_back(r);
    }
  }
  const auto mid = static_cast<std::ptrdiff_t>(unc.size());
  unc.insert(unc.end(), uncertain.begin(), uncertain.end());
  std::inplace_merge(unc.begin(), unc.begin() + mid, unc.end());
  return table_from_bits(std::move(acc), std::move(unc));
}

std::shared_ptr<const TokenTable> Classifier::table_from_bits(std::vector<uint32_t> acc,
                                                              std::vector<int32_t> unc) {
  const size_t words = acc.size();
  auto table = std::make_shared<TokenTable>();
  size_t n_acc = 0;
  for (size_t i = 0; i + 1 < words; i += 2) {
    n_acc += popcount64(static_cast<uint64_t>(acc[i + 1]) << 32 | acc[i]);
  }
  if (words % 2) n_acc += popcount64(acc[words - 1]);
  const size_t rejected = v_.sorted.size() - n_acc - unc.size();
  table->accepted_count = static_cast<int32_t>(n_acc);
  table->rejected_count = static_cast<int32_t>(rejected);
  auto ids_of = [&](const std::vector<uint32_t>& bits, std::vector<int32_t>& out) {
    for (size_t i = 0; i < bits.size(); ++i) {
      for (uint32_t b = bits[i]; b; b &= b - 1) {
        out.push_back(static_cast<int32_t>(i * 32 + static_cast<size_t>(__builtin_ctz(b))));
      }
    }
  };
  if (n_acc <= words && n_acc <= rejected) {
    table->storage = TokenTable::Storage::kAcceptedList;
    ids_of(acc, table->ids);
  } else if (rejected <= words) {
    table->storage = TokenTable::Storage::kRejectedList;
    scratch_bits_.assign(v_.byte_token_mask.begin(), v_.byte_token_mask.end());
    for (size_t i = 0; i < words; ++i) scratch_bits_[i] &= ~acc[i];
    for (int32_t r : unc) {
      const int32_t id = v_.sorted[static_cast<size_t>(r)];
      scratch_bits_[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
    }
    ids_of(scratch_bits_, table->ids);
  } else {
    table->storage = TokenTable::Storage::kAcceptedBitmask;
    table->accepted_bits = std::move(acc);
  }
  table->uncertain_ranks = std::move(unc);
  return table;
}

std::shared_ptr<const TokenTable> Classifier::make_table(std::vector<int32_t> accepted,
                                                         std::vector<int32_t> uncertain) {
  auto table = std::make_shared<TokenTable>();
  table->uncertain_ranks = std::move(uncertain);
  const auto n = static_cast<int32_t>(v_.bytes.size());
  const size_t words = static_cast<size_t>(bitmask_words(n));
  const size_t rejected = v_.sorted.size() - accepted.size() - table->uncertain_ranks.size();
  table->accepted_count = static_cast<int32_t>(accepted.size());
  table->rejected_count = static_cast<int32_t>(rejected);
  if (accepted.size() <= words && accepted.size() <= rejected) {
    table->storage = TokenTable::Storage::kAcceptedList;
    if (accepted.size() <= 256) {
      std::sort(accepted.begin(), accepted.end());
      table->ids = std::move(accepted);
    } else {
      // In id order through a bitmask: a pass over bitmask_words words costs less than
      // sorting a few thousand ids (the walk yields them in rank order).
      scratch_bits_.assign(words, 0);
      for (int32_t id : accepted) scratch_bits_[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      table->ids.reserve(accepted.size());
      for (size_t i = 0; i < words; ++i) {
        for (uint32_t b = scratch_bits_[i]; b; b &= b - 1) {
          table->ids.push_back(
              static_cast<int32_t>(i * 32 + static_cast<size_t>(__builtin_ctz(b))));
        }
      }
    }
  } else if (rejected <= words) {
    table->storage = TokenTable::Storage::kRejectedList;
    // Through a bitmask of the tokens with bytes (words, not a byte per id).
    scratch_bits_.assign(v_.byte_token_mask.begin(), v_.byte_token_mask.end());
    for (int32_t id : accepted) scratch_bits_[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
    for (int32_t r : table->uncertain_ranks) {
      const int32_t id = v_.sorted[static_cast<size_t>(r)];
      scratch_bits_[static_cast<size_t>(id) / 32] &= ~(1u << (id % 32));
    }
    table->ids.reserve(rejected);
    for (size_t i = 0; i < words; ++i) {
      for (uint32_t b = scratch_bits_[i]; b; b &= b - 1) {
        table->ids.push_back(static_cast<int32_t>(i * 32 + static_cast<size_t>(__builtin_ctz(b))));
      }
    }
  } else {
    table->storage = TokenTable::Storage::kAcceptedBitmask;
    table->accepted_bits.assign(words, 0);
    for (int32_t id : accepted) {
      table->accepted_bits[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
    }
  }
  return table;
}

}  // namespace inferd::grammar
