// gguf_metadata_from_hf: the `tokenizer.*` GGUF metadata llama.cpp's convert_hf_to_gguf.py writes
// for a Hugging Face tokenizer (tokenizer.json + tokenizer_config.json), for tests of the GGUF
// vocabulary. It follows the converter's paths (llama.cpp, Feb 2025):
//   - "gpt2" (_set_vocab_gpt2 / get_vocab_base): every id up to the largest, "[PAD<i>]" (unused)
//     for gaps; added tokens control when special or when they look special
//     (does_token_look_special), else user-defined with "▁" written as " "; merges from
//     tokenizer.json (pairs joined by a space, spaces inside a part written as U+0120);
//   - "llama" (_set_vocab_sentencepiece / _create_vocab_sentencepiece): the pieces with their
//     sentencepiece scores and types, then tokenizer_config.json's added_tokens_decoder (control
//     or user-defined as above, score -1000).
//   - SpecialVocab: bos/eos/unk/sep/pad ids from the config's token strings (matched against
//     tokenizer.json's added_tokens), add_bos_token / add_eos_token, the chat template(s).
// No tokenizer.model is at hand, so the sentencepiece scores are rebuilt from tokenizer.json's
// merges (a piece scores minus the rank of its first merge: the order Hugging Face's converter
// made the merges in). config.json's *_token_id keys and the converter's tokenizer.ggml.pre hash
// are not emulated: the caller names the pre type.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "model/loader/gguf.h"

namespace inferd::testing {

struct HfGgufOptions {
  std::string model;                     // "llama" | "gpt2"
  std::string pre;                       // gpt2: "llama-bpe", "qwen2", ...; llama: "default"
  std::optional<bool> add_space_prefix;  // written when set (Gemma's converter writes false)
};

GgufMetadata gguf_metadata_from_hf(const nlohmann::json& tokenizer_json,
                                   const nlohmann::json& tokenizer_config,
                                   const HfGgufOptions& options);

// The metadata as JSON, one member a key (what tools/gguf_vocab_check.py prints for llama.cpp's).
nlohmann::json gguf_metadata_json(const GgufMetadata& kv);

}  // namespace inferd::testing
