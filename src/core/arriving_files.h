// Weight files still arriving in a model directory: a hub download (src/hub) running beside the
// model's load, so that a shard is read as its bytes land instead of after the whole download
// (issue 31's cold start from the hub). The downloader says how many bytes of each file are in
// place (written at the start of its partial file), when a file is complete and its checksum
// passed, and when the download failed; the loader (model/loader/safetensors.cc) maps a partial
// file at its final size and waits for the bytes of each tensor before reading them; LLM::load
// waits for every file to be complete and checked before the model is used
// (wait_for_arriving_files), so a corrupt shard still fails the start with the download's error.
// A directory is registered for the download's lifetime.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace inferd {

class ArrivingFiles {
 public:
  // `name`: the file's name in the directory ("model-00001-of-00004.safetensors"); `part_path`:
  // where its bytes are being written; `size`: its final size.
  void expect(const std::string& name, const std::string& part_path, uint64_t size);
  // The first `bytes` bytes of `name` are written (0: its partial file was started over).
  void advance(const std::string& name, uint64_t bytes);
  // `name` is complete, checked and in the directory under its name.
  void finished(const std::string& name);
  // Every file is complete and checked.
  void all_finished();
  // The download failed with `error` (rethrown to every waiter).
  void failed(std::exception_ptr error);

  bool expects(const std::string& name) const;
  std::vector<std::string> names() const;
  std::string part_path(const std::string& name) const;
  uint64_t size(const std::string& name) const;
  // Blocks until the first `bytes` bytes of `name` are in place (or it is finished); rethrows
  // the download's error.
  void wait_bytes(const std::string& name, uint64_t bytes);
  // Blocks until `name` is finished; rethrows the download's error.
  void wait_finished(const std::string& name);
  // Blocks until every file is finished; rethrows the download's error.
  void wait_all();

  // What happened, in order, for tests and logs: "load NAME" (the loader opened it: note_load),
  // "finished NAME".
  void note_load(const std::string& name);
  std::vector<std::string> events() const;

 private:
  struct File {
    std::string part_path;
    uint64_t size = 0, in_place = 0;
    bool finished = false;
  };
  const File& file(const std::string& name) const;  // under mu_
  void rethrow_if_failed() const;                   // under mu_
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, File> files_;
  bool all_finished_ = false;
  std::exception_ptr error_;
  std::vector<std::string> events_;
};

// The registry of directories whose weight files are arriving (keyed by the directory's
// lexically normal path).
void register_arriving_files(const std::string& dir, std::shared_ptr<ArrivingFiles> files);
void unregister_arriving_files(const std::string& dir);
std::shared_ptr<ArrivingFiles> arriving_files(const std::string& dir);  // null: none

// When `dir` has files arriving: waits until all are complete and checked (rethrowing the
// download's error). Otherwise returns at once.
void wait_for_arriving_files(const std::string& dir);

}  // namespace inferd
