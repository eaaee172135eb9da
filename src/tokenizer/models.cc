// BPE and WordPiece models.
#include <array>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/byte_alphabet.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace inferd::tok {

using nlohmann::json;

namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Open-addressing index from strings to ids, the strings being stored by id elsewhere (no
// allocation per entry: loading a 260k-token vocabulary stays fast).
class StringIndex {
 public:
  void build(const std::vector<std::string>* strings, const std::vector<bool>& present) {
    strings_ = strings;
    size_t n = 0;
    for (bool p : present) n += p;
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    ids_.assign(cap, -1);
    hashes_.assign(cap, 0);
    mask_ = cap - 1;
    size_ = 0;
    for (size_t id = 0; id < present.size(); ++id) {
      if (present[id]) insert(static_cast<int32_t>(id));
    }
  }
  int32_t find(std::string_view s) const {
    if (ids_.empty()) return -1;
    const size_t h = StringHash{}(s);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const int32_t id = ids_[i];
      if (id < 0) return -1;
      if (hashes_[i] == tag && (*strings_)[static_cast<size_t>(id)] == s) return id;
    }
  }
  size_t size() const { return size_; }

 private:
  void insert(int32_t id) {
    const std::string& s = (*strings_)[static_cast<size_t>(id)];
    const size_t h = StringHash{}(s);
    const auto tag = static_cast<uint32_t>(h >> 32);
    size_t i = h & mask_;
    for (; ids_[i] >= 0; i = (i + 1) & mask_) {
      if (hashes_[i] == tag && (*strings_)[static_cast<size_t>(ids_[i])] == s) {
        ids_[i] = id;  // the same string twice: the later id wins
        return;
      }
    }
    ids_[i] = id;
    hashes_[i] = tag;
    ++size_;
  }
  const std::vector<std::string>* strings_ = nullptr;
  std::vector<int32_t> ids_;
  std::vector<uint32_t> hashes_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

int32_t find_id(const StringIndex& m, std::string_view s) {
  return m.find(s);
}

constexpr int64_t kMaxVocabId = int64_t(1) << 24;

// Vocabulary shared by the models: token -> id and id -> token.
struct Vocab {
  StringIndex to_id;
  std::vector<std::string> to_token;
  std::vector<bool> present;

  void load(const json& v, const char* model) {
    if (!v.is_object()) fail("tokenizer.json: {} model needs a \"vocab\" object", model);
    for (auto it = v.begin(); it != v.end(); ++it) {
      // An integer below 2^24 (the largest real vocabularies hold ~262k tokens): a float would be
      // cast with undefined behaviour, and a huge id would size the tables to it.
      if (!it.value().is_number_integer())
        fail("tokenizer.json: vocab id of '{}' is {}, expected an integer", it.key(),
             it.value().dump());
      const int64_t id = it.value().get<int64_t>();
      if (id < 0 || id >= kMaxVocabId)
        fail("tokenizer.json: vocab id {} out of range [0, {})", id, kMaxVocabId);
      if (static_cast<size_t>(id) >= to_token.size()) {
        to_token.resize(static_cast<size_t>(id) + 1);
        present.resize(static_cast<size_t>(id) + 1);
      }
      to_token[static_cast<size_t>(id)] = it.key();
      present[static_cast<size_t>(id)] = true;
    }
    to_id.build(&to_token, present);
  }
  const std::string* token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= to_token.size() || !present[static_cast<size_t>(id)]) {
      return nullptr;
    }
    return &to_token[static_cast<size_t>(id)];
  }
};

// Open-addressing map from a pair of ids to (rank, merged id).
class PairMap {
 public:
  struct Value {
    int32_t rank;
    int32_t id;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.resize(cap);
    mask_ = cap - 1;
  }
  void insert_or_assign(int32_t a, int32_t b, Value v) {
    const uint64_t k = key(a, b);
    size_t i = hash(k) & mask_;
    while (keys_[i] != kEmpty && keys_[i] != k) i = (i + 1) & mask_;
    keys_[i] = k;
    values_[i] = v;
  }
  const Value* find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    size_t i = hash(k) & mask_;
    while (true) {
      if (keys_[i] == k) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
};

// Bounded word -> ids cache, sharded so that concurrent encodes rarely contend.
class WordCache {
 public:
  bool get(std::string_view word, std::vector<int32_t>& out) const {
    const size_t h = StringHash{}(word);
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(word);
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view word, const int32_t* ids, size_t n) const {
    const size_t h = StringHash{}(word);
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.map.size() >= kPerShard) s.map.clear();
    s.map.emplace(std::string(word), std::vector<int32_t>(ids, ids + n));
  }

 private:
  static constexpr size_t kShards = 32;
  static constexpr size_t kPerShard = 4096;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  mutable std::array<Shard, kShards> shards_;
};

constexpr size_t kMaxCachedWordBytes = 256;

class BpeModel : public Model {
 public:
  BpeModel(const json& j, bool byte_level_raw) : raw_(byte_level_raw) {
    vocab_.load(j.at("vocab"), "BPE");
    if (j.contains("dropout") && !j["dropout"].is_null() && j["dropout"].get<double>() > 0.0) {
      fail("tokenizer.json: BPE dropout is not supported (it makes encoding random)");
    }
    prefix_ = string_or_empty(j, "continuing_subword_prefix");
    suffix_ = string_or_empty(j, "end_of_word_suffix");
    byte_fallback_ = j.value("byte_fallback", false);
    fuse_unk_ = j.value("fuse_unk", false);
    ignore_merges_ = j.value("ignore_merges", false);
    has_unk_ = j.contains("unk_token") && j["unk_token"].is_string();
    if (has_unk_) {
      unk_token_ = j["unk_token"].get<std::string>();
      unk_id_ = find_id(vocab_.to_id, unk_token_);
    }
    load_merges(j.contains("merges") ? j["merges"] : json::array());

    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      byte_fallback_ids_[b] = find_id(vocab_.to_id, name);
    }
    if (raw_) {
      // Tokens spelled in the byte-level alphabet, indexed by the bytes they stand for.
      for (int b = 0; b < 256; ++b) {
        std::string c;
        unicode::append_utf8(c, byte_to_char(static_cast<uint8_t>(b)));
        byte_ids_[b] = find_id(vocab_.to_id, c);
      }
      if (ignore_merges_) {
        raw_tokens_.resize(vocab_.to_token.size());
        std::vector<bool> ok(vocab_.to_token.size(), false);
        for (size_t id = 0; id < vocab_.to_token.size(); ++id) {
          ok[id] = vocab_.present[id] && to_bytes(vocab_.to_token[id], raw_tokens_[id]);
        }
        raw_vocab_.build(&raw_tokens_, ok);
      }
    } else if (prefix_.empty() && suffix_.empty()) {
      for (size_t id = 0; id < vocab_.to_token.size(); ++id) {
        const std::string& tok = vocab_.to_token[id];
        if (!vocab_.present[id] || tok.empty() || tok.size() > 4) continue;
        size_t i = 0;
        const uint32_t cp = unicode::next_cp(tok, i);
        if (i == tok.size() && vocab_.to_id.find(tok) == static_cast<int32_t>(id)) {
          char_ids_.emplace(cp, static_cast<int32_t>(id));
        }
      }
    }
  }

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    if (word.empty()) return;
    if (ignore_merges_) {
      const int32_t id = find_id(raw_ ? raw_vocab_ : vocab_.to_id, word);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable && cache_.get(word, out)) return;
    const size_t mark = out.size();
    merge_word(word, out);
    if (cacheable) cache_.put(word, out.data() + mark, out.size() - mark);
  }

  const std::string* id_to_token(int32_t id) const override { return vocab_.token(id); }
  int32_t token_to_id(std::string_view t) const override { return find_id(vocab_.to_id, t); }
  size_t vocab_size() const override { return vocab_.to_id.size(); }
  size_t id_limit() const override { return vocab_.to_token.size(); }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    int32_t len;  // bytes covered; 0 once merged into its left neighbour
  };
  struct Merge {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  struct MergeAfter {
    bool operator()(const Merge& a, const Merge& b) const {
      return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
    }
  };

  static std::string string_or_empty(const json& j, const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  }

  // Byte-level alphabet text -> the bytes it stands for (false if a character is not in it).
  static bool to_bytes(std::string_view tok, std::string& bytes) {
    size_t i = 0;
    while (i < tok.size()) {
      const int b = byte_of_char(unicode::next_cp(tok, i));
      if (b < 0) return false;
      bytes.push_back(static_cast<char>(b));
    }
    return true;
  }

  void load_merges(const json& merges) {
    merges_.reserve(merges.size());
    int32_t rank = 0;
    std::string a, b;
    for (const json& m : merges) {
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
          fail("tokenizer.json: BPE merge '{}' must be two tokens separated by one space", s);
        }
        a.assign(s, 0, sp);
        b.assign(s, sp + 1);
      } else if (m.is_array() && m.size() == 2) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        fail("tokenizer.json: BPE merge must be \"a b\" or [\"a\", \"b\"], got {}", m.dump());
      }
      const int32_t ia = find_id(vocab_.to_id, a);
      const int32_t ib = find_id(vocab_.to_id, b);
      if (ia < 0 || ib < 0) {
        fail("tokenizer.json: BPE merge '{} {}' uses a token missing from the vocab", a, b);
      }
      std::string merged = a;
      merged.append(b, std::min(prefix_.size(), b.size()));
      const int32_t im = find_id(vocab_.to_id, merged);
      if (im < 0) fail("tokenizer.json: BPE merge result '{}' is missing from the vocab", merged);
      merges_.insert_or_assign(ia, ib, {rank, im});
      ++rank;
    }
  }

  // The ids of one word: its first symbols, then the merges.
  void merge_word(std::string_view w, std::vector<int32_t>& out) const {
    thread_local std::vector<Symbol> symbols;
    symbols.clear();
    initial_symbols(w, symbols);
    merge_symbols(symbols);
    for (const Symbol& s : symbols) {
      if (s.len != 0) out.push_back(s.id);
    }
  }

  static void add_symbol(std::vector<Symbol>& symbols, int32_t id, int32_t len) {
    const auto n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, len});
  }

  // The word as first symbols, one per character (one per byte on the raw byte-level path). A
  // character missing from the vocabulary becomes its byte-fallback tokens when they all exist,
  // else the unknown token (a run of them fused into one with fuse_unk), else nothing.
  void initial_symbols(std::string_view w, std::vector<Symbol>& symbols) const {
    int32_t unk_len = 0;  // pending unknown run (fused or not)
    bool unk_pending = false;
    std::string piece;
    const bool plain = prefix_.empty() && suffix_.empty();
    size_t i = 0;
    while (i < w.size()) {
      const size_t start = i;
      const size_t len = raw_ ? 1 : unicode::utf8_len(static_cast<unsigned char>(w[i]));
      i += len;
      const int32_t id = char_id(w, start, len, piece);
      if (id >= 0) {
        if (unk_pending) {
          add_symbol(symbols, unk_id_, unk_len);
          unk_pending = false;
        }
        add_symbol(symbols, id, static_cast<int32_t>(len));
        continue;
      }
      // Not in the vocab: the text of this symbol as the model sees it.
      if (plain) {
        piece.clear();
        append_symbol_text(w, start, len, piece);
      }
      // (A pending unknown run stays pending across byte-fallback tokens, as in tokenizers.)
      if (byte_fallback_ && add_byte_fallback(piece, symbols)) continue;
      if (!has_unk_) continue;
      if (unk_id_ < 0) {
        fail("tokenizer.json: BPE unk_token '{}' is not in the vocab", unk_token_);
      }
      if (unk_pending && fuse_unk_) {
        unk_len += static_cast<int32_t>(len);
      } else {
        if (unk_pending) add_symbol(symbols, unk_id_, unk_len);
        unk_pending = true;
        unk_len = static_cast<int32_t>(len);
      }
    }
    if (unk_pending) add_symbol(symbols, unk_id_, unk_len);
  }

  // The id of the character w[start, start + len) as a first symbol, -1 when the vocabulary lacks
  // it: the raw byte's token, the character's, or (with a continuing-subword prefix or an
  // end-of-word suffix) the token of the character spelled with them, built in `piece`.
  int32_t char_id(std::string_view w, size_t start, size_t len, std::string& piece) const {
    const bool plain = prefix_.empty() && suffix_.empty();
    if (raw_ && plain) return byte_ids_[static_cast<unsigned char>(w[start])];
    if (plain) {
      size_t k = start;
      auto it = char_ids_.find(unicode::next_cp(w, k));
      return it == char_ids_.end() ? -1 : it->second;
    }
    piece.clear();
    if (start != 0) piece += prefix_;
    append_symbol_text(w, start, len, piece);
    if (start + len >= w.size()) piece += suffix_;
    return find_id(vocab_.to_id, piece);
  }

  // The text of one symbol as the vocabulary spells it (a raw byte in the byte-level alphabet).
  void append_symbol_text(std::string_view w, size_t start, size_t len, std::string& piece) const {
    if (raw_) {
      unicode::append_utf8(piece, byte_to_char(static_cast<uint8_t>(w[start])));
    } else {
      piece.append(w.substr(start, len));
    }
  }

  // The byte-fallback tokens ("<0xNN>") of the bytes of `text`, when every one exists.
  bool add_byte_fallback(std::string_view text, std::vector<Symbol>& symbols) const {
    for (char c : text) {
      if (byte_fallback_ids_[static_cast<unsigned char>(c)] < 0) return false;
    }
    for (char c : text) add_symbol(symbols, byte_fallback_ids_[static_cast<unsigned char>(c)], 1);
    return true;
  }

  // Merges pairs by rank (then leftmost), exactly as tokenizers' Word::merge_all. A symbol merged
  // into its left neighbour keeps len 0.
  void merge_symbols(std::vector<Symbol>& symbols) const {
    thread_local std::vector<Merge> heap_storage;
    heap_storage.clear();
    std::priority_queue<Merge, std::vector<Merge>, MergeAfter> queue(MergeAfter{},
                                                                     std::move(heap_storage));
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
      if (const auto* m = merges_.find(symbols[k].id, symbols[k + 1].id)) {
        queue.push({m->rank, static_cast<int32_t>(k), m->id});
      }
    }
    while (!queue.empty()) {
      const Merge top = queue.top();
      queue.pop();
      Symbol& cur = symbols[static_cast<size_t>(top.pos)];
      if (cur.len == 0 || cur.next == -1) continue;
      const Symbol right = symbols[static_cast<size_t>(cur.next)];
      const auto* m = merges_.find(cur.id, right.id);
      if (m == nullptr || m->id != top.new_id) continue;
      const int32_t right_pos = cur.next;
      cur.id = top.new_id;
      cur.len += right.len;
      cur.next = right.next;
      symbols[static_cast<size_t>(right_pos)].len = 0;
      if (right.next > -1 && static_cast<size_t>(right.next) < symbols.size()) {
        symbols[static_cast<size_t>(right.next)].prev = top.pos;
      }
      if (cur.prev >= 0) {
        const Symbol& p = symbols[static_cast<size_t>(cur.prev)];
        if (const auto* pm = merges_.find(p.id, cur.id)) queue.push({pm->rank, cur.prev, pm->id});
      }
      if (cur.next >= 0 && static_cast<size_t>(cur.next) < symbols.size()) {
        const Symbol& n = symbols[static_cast<size_t>(cur.next)];
        if (const auto* nm = merges_.find(cur.id, n.id)) queue.push({nm->rank, top.pos, nm->id});
      }
    }
  }

  bool raw_;
  Vocab vocab_;
  PairMap merges_;
  std::string prefix_, suffix_, unk_token_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false, has_unk_ = false;
  int32_t unk_id_ = -1;
  std::array<int32_t, 256> byte_fallback_ids_{};
  std::array<int32_t, 256> byte_ids_{};
  std::vector<std::string> raw_tokens_;  // by id: the bytes a byte-level token stands for
  StringIndex raw_vocab_;
  std::unordered_map<uint32_t, int32_t> char_ids_;
  WordCache cache_;
};

class WordPieceModel : public Model {
 public:
  explicit WordPieceModel(const json& j) {
    vocab_.load(j.at("vocab"), "WordPiece");
    prefix_ = j.value("continuing_subword_prefix", std::string("##"));
    unk_token_ = j.value("unk_token", std::string("[UNK]"));
    max_chars_ = j.value("max_input_chars_per_word", size_t{100});
  }

  void tokenize(std::string_view w, std::vector<int32_t>& out) const override {
    if (w.empty()) return;
    size_t chars = 0;
    for (char c : w) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    if (chars > max_chars_) {
      out.push_back(unk());
      return;
    }
    const size_t mark = out.size();
    std::string sub;
    size_t start = 0;
    while (start < w.size()) {
      size_t end = w.size();
      int32_t found = -1;
      while (start < end) {
        sub.clear();
        if (start > 0) sub += prefix_;
        sub.append(w.substr(start, end - start));
        found = find_id(vocab_.to_id, sub);
        if (found >= 0) break;
        size_t k = end;
        unicode::prev_cp(w, k);
        end = k;
      }
      if (found < 0) {
        out.resize(mark);
        out.push_back(unk());
        return;
      }
      out.push_back(found);
      start = end;
    }
  }

  const std::string* id_to_token(int32_t id) const override { return vocab_.token(id); }
  int32_t token_to_id(std::string_view t) const override { return find_id(vocab_.to_id, t); }
  size_t vocab_size() const override { return vocab_.to_id.size(); }
  size_t id_limit() const override { return vocab_.to_token.size(); }

 private:
  int32_t unk() const {
    const int32_t id = find_id(vocab_.to_id, unk_token_);
    if (id < 0) fail("tokenizer.json: WordPiece unk_token '{}' is not in the vocab", unk_token_);
    return id;
  }
  Vocab vocab_;
  std::string prefix_, unk_token_;
  size_t max_chars_ = 100;
};

}  // namespace

std::unique_ptr<Model> make_model(const json& j, bool byte_level_raw) {
  if (!j.is_object()) fail("tokenizer.json: \"model\" must be an object");
  std::string type = j.value("type", "");
  if (type.empty()) {
    // Old files omit the type; infer it from the fields.
    type = j.contains("merges") ? "BPE" : "WordPiece";
  }
  if (type == "BPE") return std::make_unique<BpeModel>(j, byte_level_raw);
  if (type == "WordPiece") return std::make_unique<WordPieceModel>(j);
  fail("tokenizer.json: unsupported model type '{}' (supported: BPE, WordPiece)", type);
}

}  // namespace inferd::tok
