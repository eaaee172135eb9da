// GrammarMatcher: the set of stacks of one sequence, advanced byte by byte, and the next-token
// mask: the accepted tables of the distinct top positions ORed together, then the uncertain
// tokens checked against the real stacks by a trie walk over them (shared prefixes stepped once,
// a dead prefix skips every token under it). Buffers are reused; nothing is allocated per token
// once they have grown (the node pool grows with new stacks and is compacted when large).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/grammar/automaton.h"
#include "engine/grammar/compiled_grammar.h"
#include "engine/grammar/grammar.h"
#include "engine/grammar/tokenizer_info.h"

namespace inferd::grammar {

namespace {
constexpr size_t kCompactAt = size_t{1} << 20;  // nodes
}

struct GrammarMatcher::Impl {
  explicit Impl(std::shared_ptr<const CompiledGrammar> grammar)
      : g(std::move(grammar)), v(g->vocab->impl()), m(g->automaton) {
    m.initial(tops, end);
    size_t max_len = 0;
    for (int32_t id : v.sorted)
      max_len = std::max(max_len, v.bytes[static_cast<size_t>(id)].size());
    off.resize(max_len + 2);
    cnt.resize(max_len + 2);
    ends.resize(max_len + 2);
    pos_mark.assign(g->automaton.elems.size(), 0);
  }

  bool accept_bytes(std::string_view bytes) {
    if (terminated) return false;
    if (bytes.empty()) return true;
    cur.assign(tops.begin(), tops.end());
    bool e = end;
    for (char ch : bytes) {
      m.step(cur, static_cast<uint8_t>(ch), nxt, e);
      if (nxt.empty() && !e) return false;
      cur.swap(nxt);
    }
    tops.swap(cur);
    end = e;
    if (m.pool().size() > kCompactAt) m.compact(tops);
    return true;
  }

  bool is_stop(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) / 32 < v.stop_mask.size() &&
           ((v.stop_mask[static_cast<size_t>(id) / 32] >> (id % 32)) & 1);
  }

  bool accept_token(int32_t id) {
    if (terminated || id < 0 || static_cast<size_t>(id) >= v.bytes.size()) return false;
    if (is_stop(id)) {
      if (!end) return false;
      terminated = true;
      return true;
    }
    const std::string& b = v.bytes[static_cast<size_t>(id)];
    if (b.empty()) return false;
    return accept_bytes(b);
  }

  void fill(std::span<uint32_t> words) {
    const auto n = static_cast<int32_t>(v.bytes.size());
    if (words.size() < static_cast<size_t>(bitmask_words(n))) {
      throw InternalError("grammar: bitmask has " + std::to_string(words.size()) +
                          " words, expected " + std::to_string(bitmask_words(n)));
    }
    std::fill(words.begin(), words.end(), 0u);
    if (terminated) {
      for (size_t i = 0; i < v.stop_mask.size(); ++i) words[i] = v.stop_mask[i];
      return;
    }
    // Accepted tables of the distinct top positions; gather the uncertain ranks.
    if (++stamp == 0) {
      std::fill(pos_mark.begin(), pos_mark.end(), 0);
      stamp = 1;
    }
    unc.clear();
    size_t lists = 0;
    for (int32_t t : tops) {
      const auto pos = static_cast<size_t>(m.pool()[t].pos);
      if (pos_mark[pos] == stamp) continue;
      pos_mark[pos] = stamp;
      const TokenTable& tab = *g->tables[pos];
      if (tab.accepted_is_bitmask) {
        const uint32_t* src = tab.accepted_bits.data();
        for (size_t i = 0; i < tab.accepted_bits.size(); ++i) words[i] |= src[i];
      } else {
        for (int32_t id : tab.accepted_ids) words[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      }
      if (!tab.uncertain_ranks.empty()) {
        unc.insert(unc.end(), tab.uncertain_ranks.begin(), tab.uncertain_ranks.end());
        ++lists;
      }
    }
    if (lists > 1) {
      std::sort(unc.begin(), unc.end());
      unc.erase(std::unique(unc.begin(), unc.end()), unc.end());
    }
    check_uncertain(words);
    if (end) {
      for (size_t i = 0; i < v.stop_mask.size(); ++i) words[i] |= v.stop_mask[i];
    }
  }

  // Runs the real stacks over the uncertain tokens not yet allowed, in trie order.
  void check_uncertain(std::span<uint32_t> words) {
    buf.assign(tops.begin(), tops.end());
    off[0] = 0;
    cnt[0] = tops.size();
    ends[0] = end;
    size_t depth = 0;
    const std::string* prev = nullptr;
    for (int32_t r : unc) {
      const int32_t id = v.sorted[static_cast<size_t>(r)];
      if ((words[static_cast<size_t>(id) / 32] >> (id % 32)) & 1) continue;
      const std::string& t = v.bytes[static_cast<size_t>(id)];
      if (prev != nullptr) {
        size_t l = 0;
        const size_t lim = std::min({prev->size(), t.size(), depth});
        while (l < lim && (*prev)[l] == t[l]) ++l;
        depth = l;
      }
      prev = &t;
      while (depth < t.size() && cnt[depth] > 0) {
        bool e = false;
        m.step(std::span<const int32_t>(buf.data() + off[depth], cnt[depth]),
               static_cast<uint8_t>(t[depth]), nxt, e);
        off[depth + 1] = off[depth] + cnt[depth];
        buf.resize(off[depth + 1]);
        buf.insert(buf.end(), nxt.begin(), nxt.end());
        cnt[depth + 1] = nxt.size();
        ends[depth + 1] = e;
        ++depth;
      }
      if (depth == t.size() && (cnt[depth] > 0 || ends[depth])) {
        words[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      }
    }
  }

  std::shared_ptr<const CompiledGrammar> g;
  const TokenizerInfo::Impl& v;
  StackMachine m;
  std::vector<int32_t> tops;
  bool end = false;
  bool terminated = false;
  // Scratch, reused.
  std::vector<int32_t> cur, nxt, buf, unc;
  std::vector<size_t> off, cnt;
  std::vector<bool> ends;
  std::vector<uint32_t> pos_mark;
  uint32_t stamp = 0;
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar)
    : impl_(std::make_unique<Impl>(std::move(grammar))) {}
GrammarMatcher::~GrammarMatcher() = default;
GrammarMatcher::GrammarMatcher(GrammarMatcher&&) noexcept = default;
GrammarMatcher& GrammarMatcher::operator=(GrammarMatcher&&) noexcept = default;

bool GrammarMatcher::accept_token(int32_t id) {
  return impl_->accept_token(id);
}
bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  return impl_->accept_bytes(bytes);
}
void GrammarMatcher::fill_next_token_bitmask(std::span<uint32_t> words) {
  impl_->fill(words);
}
bool GrammarMatcher::can_terminate() const {
  return impl_->end;
}
size_t GrammarMatcher::stack_count() const {
  return impl_->tops.size();
}
bool GrammarMatcher::is_terminated() const {
  return impl_->terminated;
}

}  // namespace inferd::grammar
