// A GGUF file's vocabulary (the `tokenizer.ggml.*` and `tokenizer.chat_template*` metadata that
// llama.cpp's convert_hf_to_gguf.py writes), as plain data, and the Hugging Face tokenizer.json
// and tokenizer_config.json that give the same ids as the model's own Hugging Face tokenizer:
//   - model "llama" (SentencePiece): a BPE model with byte fallback whose merges come from the
//     scores (every split of a piece into two vocabulary pieces, ranked by the piece's score, as
//     Hugging Face's converters build them from a sentencepiece model), the ▁ normalizer with or
//     without the prefix space (add_space_prefix), control tokens as special added tokens;
//   - model "gpt2" (byte-level BPE): the GGUF merges and the pre-tokenizer of
//     `tokenizer.ggml.pre` ("llama-bpe", "qwen2", "deepseek-v3", "gpt-2" / "default"), written
//     as the Split regexes + ByteLevel of the real tokenizer.json of those models.
// Token types (llama.cpp's llama_token_type): 1 normal, 2 unknown, 3 control, 4 user-defined,
// 5 unused, 6 byte.
//
// The GGUF side (reading the keys from a file's metadata) lives in src/llm/gguf_tokenizer.h: this
// library knows nothing of GGUF files.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace inferd {

enum class GgufTokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct GgufVocab {
  std::string model;  // tokenizer.ggml.model: "llama" | "gpt2"
  std::string pre;    // tokenizer.ggml.pre ("" when absent)
  std::vector<std::string> tokens;
  std::vector<float> scores;         // empty when absent (needed for "llama")
  std::vector<int32_t> token_types;  // empty when absent: every token normal
  std::vector<std::string> merges;   // "left right" (needed for "gpt2")
  std::optional<int32_t> bos_id, eos_id, unk_id, pad_id, sep_id, eot_id, eom_id;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::optional<std::string> chat_template;  // tokenizer.chat_template
  // tokenizer.chat_template.<name>, in the order of tokenizer.chat_templates.
  std::vector<std::pair<std::string, std::string>> named_chat_templates;

  // The token type of `id` (normal when no types were given).
  GgufTokenType type_of(size_t id) const;
  // Whether the tokenizer puts BOS / EOS around a text: the GGUF flag, else llama.cpp's default
  // for the model and pre-tokenizer (SentencePiece and llama-bpe add BOS; others add nothing).
  bool adds_bos() const;
  bool adds_eos() const;
  // The ids that end generation, as llama.cpp finds them (a GGUF has no generation_config.json):
  // eos, eot and eom, then the control and user-defined tokens spelled as an end of turn
  // ("<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
  // "<EOT>", DeepSeek's "<｜end▁of▁sentence｜>"), in id order, without repeats.
  std::vector<int32_t> stop_ids() const;
};

// The supported `tokenizer.ggml.model` values and the `tokenizer.ggml.pre` values of "gpt2".
const std::vector<std::string>& gguf_vocab_models();
const std::vector<std::string>& gguf_vocab_pre_types();

// Throws Error naming the problem (an unsupported model or pre type with the supported ones,
// scores or types whose count differs from the tokens', an id out of range, a malformed merge).
void validate_gguf_vocab(const GgufVocab& v);
// tokenizer.json for `v` (validated first).
nlohmann::json gguf_vocab_tokenizer_json(const GgufVocab& v);
// tokenizer_config.json for `v`: bos_token / eos_token / unk_token / pad_token strings,
// add_bos_token / add_eos_token, chat_template (a string, or the named-list form when there are
// named templates).
nlohmann::json gguf_vocab_tokenizer_config(const GgufVocab& v);
// Tokenizer::from_json of the two above.
Tokenizer tokenizer_from_gguf_vocab(const GgufVocab& v);

}  // namespace inferd
