// The pieces of a tokenizer.json pipeline: normalizers, pre-tokenizers, models, decoders and
// post-processors, each built from its JSON object and behaving as the same component of Hugging
// Face `tokenizers` does for encoding and decoding ids (offsets are not tracked). Each kind is
// implemented in its own file: normalizers.cc, pre_tokenizers.cc, models.cc, decoders.cc,
// post_processors.cc.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace inferd::tok {

// A non-owning reference to a callable (cheaper than std::function on hot paths).
template <typename Sig>
class FunctionRef;
template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f)  // NOLINT(google-explicit-constructor)
      : obj_(const_cast<void*>(static_cast<const void*>(&f))), call_([](void* o, Args... a) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(a)...);
        }) {}
  R operator()(Args... a) const { return call_(obj_, std::forward<Args>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

// ---- normalizers ---------------------------------------------------------------------------
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};
// Returns null for a JSON null.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);

// ---- pre-tokenizers ------------------------------------------------------------------------
// A piece of text on its way to the model. `at_origin` is true when the piece starts at offset 0
// of the original input (Metaspace's prepend_scheme "first" depends on it).
using PieceSink = FunctionRef<void(std::string_view piece, bool at_origin)>;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits (and possibly rewrites) `s`, handing every non-empty resulting piece to `sink`.
  virtual void pre_tokenize(std::string_view s, bool at_origin, PieceSink sink) const = 0;
};
// `byte_level_raw`: ByteLevel pre-tokenizers leave bytes as they are (the BPE model then works on
// raw bytes, see BpeModel) instead of mapping them to the byte-level alphabet.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, bool byte_level_raw);
// True when `j` is a ByteLevel pre-tokenizer or a Sequence whose last element is the only
// ByteLevel in it (the condition for the raw-byte BPE path).
bool ends_with_byte_level(const nlohmann::json& j);

// ---- models --------------------------------------------------------------------------------
class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-tokenized word.
  virtual void tokenize(std::string_view word, std::vector<int32_t>& out) const = 0;
  // nullptr when the id is not in the model's vocabulary.
  virtual const std::string* id_to_token(int32_t id) const = 0;
  // -1 when absent.
  virtual int32_t token_to_id(std::string_view token) const = 0;
  virtual size_t vocab_size() const = 0;
  // One past the largest id in the vocabulary.
  virtual size_t id_limit() const = 0;
};
std::unique_ptr<Model> make_model(const nlohmann::json& j, bool byte_level_raw);

// ---- decoders ------------------------------------------------------------------------------
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // The raw bytes of single tokens (Tokenizer::token_bytes): as decode_chain, but bytes stay
  // bytes (no lossy UTF-8 repair) and nothing depends on being the first token.
  virtual void decode_raw(std::vector<std::string>& tokens) const { decode_chain(tokens); }
};
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j);

// ---- post-processors -----------------------------------------------------------------------
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the special tokens of a single sequence (called only for add_special_tokens).
  virtual void process(std::vector<int32_t>& ids) const = 0;
  // The ids the processor puts before and after a single sequence.
  virtual std::pair<std::vector<int32_t>, std::vector<int32_t>> added_ids() const = 0;
};
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j);

}  // namespace inferd::tok
