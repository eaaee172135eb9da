// Where a model's files are, from what the user typed: a Hugging Face directory or a GGUF file as
// they are, or an Ollama model name (`ollama:NAME[:TAG]`, as `ollama run` takes it) resolved
// through the local Ollama store to its GGUF blob (issue 35).
#pragma once

#include <string>

namespace inferd {

// "ollama:qwen3:8b" -> "<store>/blobs/sha256-<digest>" (the manifest's model layer); anything
// else unchanged. The store is $OLLAMA_MODELS, else ~/.ollama/models. A name without a tag means
// "latest"; "user/name:tag" reads the user's namespace. Throws Error naming the manifest or blob
// that is missing (and saying to `ollama pull` it) or malformed.
std::string resolve_model_source(const std::string& model);

// The Ollama store directory resolve_model_source reads.
std::string ollama_models_dir();

}  // namespace inferd
