// Model sources (model_source.h). The Ollama store layout: manifests/<registry>/<namespace>/<name>/
// <tag> (a JSON image manifest whose layers name blobs by sha256 digest, the model weights as
// media type application/vnd.ollama.image.model) and blobs/sha256-<hex>.
#include "model/loader/model_source.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/mmap_file.h"

namespace inferd {

namespace fs = std::filesystem;

std::string ollama_models_dir() {
  if (const char* d = std::getenv("OLLAMA_MODELS"); d && *d) return d;
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : ".") / ".ollama" / "models").string();
}

std::string resolve_model_source(const std::string& model) {
  constexpr std::string_view kPrefix = "ollama:";
  if (model.rfind(kPrefix, 0) != 0) return model;
  std::string name = model.substr(kPrefix.size()), tag = "latest";
  if (const size_t colon = name.rfind(':'); colon != std::string::npos) {
    tag = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  if (name.empty() || tag.empty() || name.find("..") != std::string::npos ||
      tag.find('/') != std::string::npos || tag.find("..") != std::string::npos)
    fail("'{}' is not an Ollama model name (expected ollama:NAME[:TAG], e.g. ollama:qwen3:8b)",
         model);
  // "qwen3" is library/qwen3 on the default registry; "user/model" a user's namespace.
  const std::string ns_name = name.find('/') == std::string::npos ? "library/" + name : name;
  const fs::path store = ollama_models_dir();
  const fs::path manifest = store / "manifests" / "registry.ollama.ai" / ns_name / tag;
  std::error_code ec;
  if (!fs::is_regular_file(manifest, ec))
    fail(
        "Ollama model '{}:{}' is not in the local store ({} is missing; run `ollama pull {}:{}` "
        "or set OLLAMA_MODELS)",
        name, tag, manifest.string(), name, tag);
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_text_file(manifest.string()));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a valid Ollama manifest ({})", manifest.string(), e.what());
  }
  const auto layers = m.find("layers");
  if (layers == m.end() || !layers->is_array())
    fail("{}: the Ollama manifest has no layers", manifest.string());
  for (const auto& l : *layers) {
    if (!l.is_object() || l.value("mediaType", "") != "application/vnd.ollama.image.model")
      continue;
    const std::string digest = l.value("digest", "");
    if (digest.rfind("sha256:", 0) != 0 || digest.size() != 7 + 64 ||
        digest.find_first_not_of("0123456789abcdef", 7) != std::string::npos)
      fail("{}: the model layer's digest '{}' is not a sha256 digest", manifest.string(), digest);
    const fs::path blob = store / "blobs" / ("sha256-" + digest.substr(7));
    if (!fs::is_regular_file(blob, ec))
      fail("Ollama model '{}:{}': its weights blob {} is missing (run `ollama pull {}:{}`)", name,
           tag, blob.string(), name, tag);
    return blob.string();
  }
  fail("{}: the Ollama manifest has no model layer (application/vnd.ollama.image.model)",
       manifest.string());
}

}  // namespace inferd
