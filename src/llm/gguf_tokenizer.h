// The tokenizer and chat template of a GGUF file: its `tokenizer.ggml.*` and
// `tokenizer.chat_template*` metadata (the keys llama.cpp's convert_hf_to_gguf.py writes, named in
// gguf-py's constants.py) read into a GgufVocab (tokenizer/gguf_vocab.h), which builds the
// Hugging Face tokenizer of the same model.
#pragma once

#include "model/loader/gguf.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace inferd {

// Throws Error naming the key for a missing tokenizer.ggml.model or tokenizer.ggml.tokens, a value
// of the wrong type, an id out of range, and (validate_gguf_vocab) an unsupported model or pre
// type with the supported ones.
GgufVocab gguf_vocab_from_metadata(const GgufMetadata& kv);
// tokenizer_from_gguf_vocab(gguf_vocab_from_metadata(kv)).
Tokenizer tokenizer_from_gguf_metadata(const GgufMetadata& kv);
// The same for an open file: errors start with the file's path.
GgufVocab gguf_vocab_from_file(const GgufFile& file);
Tokenizer tokenizer_from_gguf_file(const GgufFile& file);

// What a model path gives the tokenizer side: for a GGUF file its vocabulary (tokenizer, chat
// template, the stop ids llama.cpp finds), opened once; for a directory, nothing (the files are
// read by Tokenizer::from_dir and ChatTemplate::from_model_dir).
struct ModelVocabSource {
  std::string path;
  std::optional<GgufVocab> gguf;
  static ModelVocabSource open(const std::string& path);
  Tokenizer tokenizer() const;
  // The tokenizer_config.json object of a GGUF file (chat templates and special tokens).
  nlohmann::ordered_json tokenizer_config() const;
  // End-of-generation ids beyond the tokenizer's eos (GGUF: eot, eom, end-of-turn tokens).
  std::vector<int32_t> extra_stop_ids() const;
};

}  // namespace inferd
