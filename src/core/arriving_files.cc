// Weight files still arriving in a model directory (arriving_files.h).
#include "core/arriving_files.h"

#include <filesystem>

#include "core/error.h"

namespace inferd {

void ArrivingFiles::expect(const std::string& name, const std::string& part_path, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  files_[name] = File{part_path, size, 0, false};
}

void ArrivingFiles::advance(const std::string& name, uint64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = files_.find(name);
    if (it == files_.end()) return;
    it->second.in_place = bytes;
  }
  cv_.notify_all();
}

void ArrivingFiles::finished(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = files_.find(name);
    if (it == files_.end()) return;
    it->second.finished = true;
    it->second.in_place = it->second.size;
    events_.push_back("finished " + name);
  }
  cv_.notify_all();
}

void ArrivingFiles::all_finished() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    all_finished_ = true;
  }
  cv_.notify_all();
}

void ArrivingFiles::failed(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::move(error);
  }
  cv_.notify_all();
}

bool ArrivingFiles::expects(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return files_.count(name) != 0;
}

std::vector<std::string> ArrivingFiles::names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, f] : files_) out.push_back(name);
  return out;
}

const ArrivingFiles::File& ArrivingFiles::file(const std::string& name) const {
  const auto it = files_.find(name);
  if (it == files_.end()) fail("'{}' is not among the files being downloaded", name);
  return it->second;
}

std::string ArrivingFiles::part_path(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return file(name).part_path;
}

uint64_t ArrivingFiles::size(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return file(name).size;
}

void ArrivingFiles::rethrow_if_failed() const {
  if (error_) std::rethrow_exception(error_);
}

void ArrivingFiles::wait_bytes(const std::string& name, uint64_t bytes) {
  std::unique_lock<std::mutex> lock(mu_);
  const File& f = file(name);
  cv_.wait(lock, [&] { return error_ || f.finished || f.in_place >= bytes; });
  rethrow_if_failed();
}

void ArrivingFiles::wait_finished(const std::string& name) {
  std::unique_lock<std::mutex> lock(mu_);
  const File& f = file(name);
  cv_.wait(lock, [&] { return error_ || f.finished; });
  rethrow_if_failed();
}

void ArrivingFiles::wait_all() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || all_finished_; });
  rethrow_if_failed();
}

void ArrivingFiles::note_load(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back("load " + name);
}

std::vector<std::string> ArrivingFiles::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

namespace {

std::mutex g_registry_mu;
std::map<std::string, std::shared_ptr<ArrivingFiles>>& registry() {
  static auto* r = new std::map<std::string, std::shared_ptr<ArrivingFiles>>();
  return *r;
}

std::string key_of(const std::string& dir) {
  std::string k = std::filesystem::path(dir).lexically_normal().string();
  while (k.size() > 1 && k.back() == '/') k.pop_back();
  return k;
}

}  // namespace

void register_arriving_files(const std::string& dir, std::shared_ptr<ArrivingFiles> files) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  registry()[key_of(dir)] = std::move(files);
}

void unregister_arriving_files(const std::string& dir) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  registry().erase(key_of(dir));
}

std::shared_ptr<ArrivingFiles> arriving_files(const std::string& dir) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  const auto it = registry().find(key_of(dir));
  return it == registry().end() ? nullptr : it->second;
}

void wait_for_arriving_files(const std::string& dir) {
  if (auto a = arriving_files(dir)) a->wait_all();
}

}  // namespace inferd
