// Models by Hugging Face hub name (issue 31): "org/name[:revision]" resolved through the Hugging
// Face cache layout that huggingface_hub writes and reads (its "Manage the cache" guide and
// file_download.py: models--org--name/{refs/REV, snapshots/COMMIT/FILE -> ../../blobs/ETAG,
// blobs/ETAG[.incomplete]}), downloading the files serving needs when they are missing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace inferd {
class ArrivingFiles;
}

namespace inferd::hub {

// "org/name[:revision]"; revision is a branch, a tag or a commit hash ("main" when left out).
struct HubName {
  std::string repo;  // "org/name"
  std::string revision = "main";
  std::string str() const { return revision == "main" ? repo : repo + ":" + revision; }
};

// The name when `s` has the syntax of a hub name (org/name[:rev]: two non-empty parts of
// letters, digits, '-', '_', '.'; no "..", no leading '.' or '-'), else nullopt. Says nothing of
// whether a path `s` exists: the caller checks that first (a path on disk always wins).
std::optional<HubName> parse_hub_name(const std::string& s);

// True when `s` names no existing file or directory, does not end in a weights or JSON file's
// extension (.gguf, .safetensors, .json, .bin: a mistyped path), and parses as a hub name.
bool is_hub_name(const std::string& s);

// Where and how to reach the hub; from the environment by default (options_from_env).
struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT (no trailing '/')
  std::string token;                                // HF_TOKEN, or --hf-token
  std::string cache_dir;                            // hub_cache_dir()
  bool offline = false;                             // HF_HUB_OFFLINE=1
  bool progress = true;                             // a progress bar when stderr is a terminal
  int parallel = 8;                                 // files downloaded at once
  int max_retries = 5;                              // resumes of one file after a dropped transfer
  double stall_timeout_s = 60;                      // no byte for this long: retry (resume)
  bool config_only = false;  // no weights: configs and tokenizer files (--load-format dummy)
  // resolve_overlapped: weight files downloaded at once, in the index's order, so that the
  // shards the loader reads first land first (INFERD_HUB_WEIGHT_STREAMS; default 2).
  int weight_streams = 2;
};

// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (huggingface_hub's order).
std::string hub_cache_dir();
// The token `hf auth login` stored: $HF_TOKEN_PATH, else $HF_HOME/token, else
// ~/.cache/huggingface/token; "" when there is none.
std::string stored_token();
// HubOptions from HF_ENDPOINT, HF_TOKEN (else stored_token()), HF_HUB_OFFLINE (1/true/yes/on)
// and the cache dir; `token` (--hf-token) overrides them when non-empty.
HubOptions options_from_env(const std::string& token = "");

// `model` unchanged, unless is_hub_name(model): then resolve() with options_from_env(token).
std::string resolve_if_hub_name(const std::string& model, const std::string& token = "");

// "org/name" -> "models--org--name" (the repo's folder under the cache).
std::string repo_folder_name(const std::string& repo);

// The files of a repo that serving needs: safetensors weights and index, config.json,
// generation_config.json, tokenizer files, chat templates, preprocessor configs; never *.bin,
// *.pt, *.h5, ONNX or GGUF weights.
bool is_needed_file(const std::string& rfilename);

// The snapshot directory of `name` when the cache has it (refs/REV -> snapshots/COMMIT, or
// snapshots/REV for a commit hash) and it holds a config.json or a .gguf; else nullopt.
std::optional<std::string> cached_snapshot(const HubName& name, const std::string& cache_dir);

// The snapshot directory of `name`, downloading what is missing (offline: the cache only, an
// Error naming the cache dir when the model is not there). Network failures with a complete
// cached snapshot of the same revision fall back to it (with a warning).
std::string resolve(const HubName& name, const HubOptions& opts);

// A download whose weights are still arriving (resolve_overlapped): the *.safetensors files are
// fetched on a thread of their own, registered as the arriving files of the snapshot directory
// (core/arriving_files.h) so that the loader reads each shard as its bytes land, each checked
// (sha256) before wait() returns; LLM::load waits for them all before the model is used. The
// destructor stops a download still running (its partial files stay, to be resumed).
class PendingDownload {
 public:
  struct State;
  explicit PendingDownload(std::unique_ptr<State> state);
  ~PendingDownload();
  PendingDownload(const PendingDownload&) = delete;
  PendingDownload& operator=(const PendingDownload&) = delete;

  const std::string& snapshot_dir() const;
  // Blocks until every weight file is downloaded and checked; rethrows the download's Error.
  void wait();
  std::shared_ptr<ArrivingFiles> arriving() const;

 private:
  std::unique_ptr<State> s_;
};

struct Resolved {
  std::string dir;                           // the snapshot directory
  std::shared_ptr<PendingDownload> pending;  // null: every file is in place
};

// As resolve(), returning once the files other than the weights are in place (configs,
// tokenizer, the safetensors index); the weights still missing keep downloading (`pending`).
Resolved resolve_overlapped(const HubName& name, const HubOptions& opts);

// Downloads (or checks) `name` and returns its snapshot directory: resolve() without the
// offline fall-back.
std::string pull(const HubName& name, const HubOptions& opts);

// A model in the cache (`inferd ls`).
struct CachedRepo {
  std::string repo;                         // "org/name"
  std::map<std::string, std::string> refs;  // revision -> commit
  std::vector<std::string> snapshots;       // commits with a snapshot folder
  uint64_t size_bytes = 0;                  // blobs on disk (each counted once)
};
std::vector<CachedRepo> list_cached(const std::string& cache_dir);

// Removes models--org--name (and its .locks folder); false when it was not in the cache.
bool remove_cached(const std::string& repo, const std::string& cache_dir);

}  // namespace inferd::hub
