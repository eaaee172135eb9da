// A local stand-in for the Hugging Face hub, for the hub downloader's tests and the GPU machine's
// cold-start check (fake_hub_main.cc): an HTTP/1.1 server on 127.0.0.1 serving repos from
// directories through the routes huggingface_hub and inferd use — GET /api/models/{repo}/revision/
// {rev} (sha, siblings with rfilename, size, blobId, lfs.sha256), GET /api/models/{repo}/tree/{rev}
// (list_repo_tree's listing, which huggingface_hub's snapshot_download reads), HEAD/GET
// {repo}/resolve/{rev}/
// {file} (LFS files: a 302 to the blob route with X-Repo-Commit, X-Linked-Etag, X-Linked-Size;
// others: 200 with ETag and X-Repo-Commit), GET /blobs/... with Range (206) — plus faults: a
// gated repo (401 without the right token), a connection dropped mid-body, a corrupted byte, a
// file sent late.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace inferd::testing {

struct FakeHubRepo {
  std::string repo;   // "org/name"
  std::string dir;    // its files (sub-folders allowed)
  std::string token;  // non-empty: gated; requests need "Authorization: Bearer <token>"
  std::string branch = "main";
};

struct FakeHubFaults {
  std::string drop_file;      // its first GET without a Range closes the connection mid-body
  std::string corrupt_file;   // served with one byte flipped (its metadata stays right)
  bool blob_metadata = true;  // model info lists size, blobId and lfs (false: names only)
  bool ignore_range = false;  // answer Range requests with the whole file (200)
  uint64_t extra_size = 0;    // added to every size the model info lists (a disk too small)
  // A file's body (each GET) pauses this many milliseconds half-way (a slow later shard).
  std::map<std::string, int> delay_ms;
};

class FakeHub {
 public:
  // Hashes every file (threads), binds 127.0.0.1:port (0: an ephemeral port) and serves.
  FakeHub(std::vector<FakeHubRepo> repos, FakeHubFaults faults = {}, uint16_t port = 0);
  ~FakeHub();
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  uint16_t port() const;
  std::string endpoint() const;  // "http://127.0.0.1:PORT"
  // The commit hash the repo's branch points at (sha1 of its file list).
  std::string commit(const std::string& repo) const;
  // "GET /path" lines (" range=bytes=N-" appended when a Range was asked), in order.
  std::vector<std::string> requests() const;
  void stop();

  struct File {
    std::string rfilename, path, sha256, git_sha1;
    uint64_t size = 0;
    bool lfs = false;
  };
  struct Repo {
    FakeHubRepo spec;
    std::string commit;
    std::vector<File> files;
  };

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace inferd::testing
