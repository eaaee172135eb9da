// Downloads a hub model into the Hugging Face cache (hub.h). The routes are the hub's own, as
// huggingface_hub uses them: GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true (the
// commit "sha" and "siblings": rfilename, size, blobId, lfs.sha256/size), then
// {endpoint}/{repo}/resolve/{commit}/{file}, whose redirects are followed. A blob is named as
// huggingface_hub names it: the LFS sha256 (the X-Linked-Etag) or the git blob id (the ETag).
// Files are fetched in parallel into blobs/NAME.incomplete, resumed with a Range request after a
// dropped transfer, checked (sha256 of LFS files, the git blob sha1 of the others), renamed, and
// linked from snapshots/COMMIT/; refs/REV is written last.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/arriving_files.h"
#include "core/error.h"
#include "core/logging.h"
#include "hub/cache.h"
#include "hub/http.h"
#include "hub/hub.h"
#include "hub/progress.h"

namespace inferd::hub {

namespace fs = std::filesystem;

namespace {

// The hub could not be reached at all (resolve() may then fall back to the cache).
struct UnreachableError : Error {
  using Error::Error;
};

struct RemoteFile {
  std::string rfilename;
  uint64_t size = 0;
  bool size_known = false;
  std::string blob;    // the blob's name in the cache (etag)
  std::string sha256;  // LFS files: the content's sha256
};

struct RepoInfo {
  std::string commit;
  std::vector<RemoteFile> files;  // the needed ones
  std::vector<std::string> skipped;
};

std::string url_escape(const std::string& s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
      out += static_cast<char>(c);
    else
      out += {'%', kHex[c >> 4], kHex[c & 15]};
  }
  return out;
}

std::string header(const HttpResult& r, const char* key) {
  const auto it = r.first_headers.find(key);
  return it == r.first_headers.end() ? std::string() : it->second;
}

// huggingface_hub's _normalize_etag: drop a weak "W/" prefix and the quotes.
std::string normalize_etag(std::string e) {
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

// An Error naming the cause of a failed request (status or connection) for `what`.
[[noreturn]] void fail_http(const HttpResult& r, const HubName& name, const HubOptions& opts,
                            const std::string& what) {
  if (r.connect_failed())
    throw UnreachableError(fmt::format(
        "cannot reach the Hugging Face hub at {} for {} ({}); check the network, set HF_ENDPOINT "
        "for a mirror, or HF_HUB_OFFLINE=1 to use only the cache ({})",
        opts.endpoint, name.str(), r.curl_error, opts.cache_dir));
  if (r.status == 0) fail("{}: the transfer from {} failed: {}", what, opts.endpoint, r.curl_error);
  std::string code = header(r, "x-error-code");
  if (const auto it = r.last_headers.find("x-error-code");
      code.empty() && it != r.last_headers.end())
    code = it->second;
  if (code == "GatedRepo" || ((r.status == 401 || r.status == 403) && !opts.token.empty()) ||
      (r.status == 403))
    fail(
        "{}: access to {} is restricted (HTTP {}{}): it is a gated or private model; accept its "
        "licence on {}/{} with your account and pass a token that can read it (HF_TOKEN or "
        "--hf-token)",
        what, name.repo, r.status, code.empty() ? "" : ", " + code, opts.endpoint, name.repo);
  if (r.status == 401)
    fail(
        "{}: HTTP 401 for {} without a token: the repository does not exist, or it is gated or "
        "private (then accept its licence on {}/{} and set HF_TOKEN or --hf-token)",
        what, name.repo, opts.endpoint, name.repo);
  if (r.status == 404) {
    if (code == "RevisionNotFound")
      fail("{}: revision '{}' not found in {} (a branch, tag or commit hash)", what, name.revision,
           name.repo);
    if (code == "EntryNotFound") fail("{}: file not found in {}", what, name.str());
    fail("{}: repository {} or revision '{}' not found on {} (HTTP 404)", what, name.repo,
         name.revision, opts.endpoint);
  }
  fail("{}: the hub at {} answered HTTP {}: {}", what, opts.endpoint, r.status,
       r.body.substr(0, 200));
}

RepoInfo fetch_repo_info(const HubName& name, const HubOptions& opts) {
  HttpRequest req;
  req.url = opts.endpoint + "/api/models/" + url_escape(name.repo, true) + "/revision/" +
            url_escape(name.revision, false) + "?blobs=true";
  req.token = opts.token;
  req.stall_timeout_s = opts.stall_timeout_s;
  const HttpResult r = http_request(req);
  if (r.curl_code != 0 || r.status != 200) fail_http(r, name, opts, name.str());
  RepoInfo info;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(r.body);
    info.commit = j.at("sha").get<std::string>();
    for (const auto& s : j.at("siblings")) {
      RemoteFile f;
      f.rfilename = s.at("rfilename").get<std::string>();
      if (!is_needed_file(f.rfilename)) {
        info.skipped.push_back(f.rfilename);
        continue;
      }
      if (s.contains("size") && s["size"].is_number_unsigned()) {
        f.size = s["size"].get<uint64_t>();
        f.size_known = true;
      }
      f.blob = s.value("blobId", "");
      if (const auto lfs = s.find("lfs"); lfs != s.end() && lfs->is_object()) {
        f.sha256 = lfs->value("sha256", "");
        f.blob = f.sha256;
        if (lfs->contains("size")) {
          f.size = lfs->at("size").get<uint64_t>();
          f.size_known = true;
        }
      }
      info.files.push_back(std::move(f));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the hub's model info from {} is not what was expected ({})", name.str(), req.url,
         e.what());
  }
  if (!is_commit_hash(info.commit))
    fail("{}: the hub's model info names commit '{}', not a 40-digit hash", name.str(),
         info.commit);
  for (const RemoteFile& f : info.files)
    if (f.rfilename.find("..") != std::string::npos || f.rfilename[0] == '/')
      fail("{}: the hub lists a file with an unsafe name '{}'", name.str(), f.rfilename);
  return info;
}

// The blob name and size from the resolve route's headers, for a file the model info did not
// describe (a mirror that ignores ?blobs=true).
void head_file(RemoteFile& f, const std::string& url, const HubName& name, const HubOptions& opts) {
  HttpRequest req;
  req.url = url;
  req.token = opts.token;
  req.head = true;
  req.follow_redirects = false;
  const HttpResult r = http_request(req);
  if (r.curl_code != 0 || r.status >= 400) fail_http(r, name, opts, f.rfilename);
  std::string etag = header(r, "x-linked-etag");
  if (etag.empty()) etag = header(r, "etag");
  f.blob = normalize_etag(etag);
  if (f.blob.empty() || f.blob.find('/') != std::string::npos)
    fail("{}: {} sent no usable ETag for {}", name.str(), opts.endpoint, f.rfilename);
  std::string size = header(r, "x-linked-size");
  if (size.empty()) size = header(r, "content-length");
  if (!size.empty()) {
    f.size = std::stoull(size);
    f.size_known = true;
  }
  if (f.blob.size() == 64 && f.blob.find_first_not_of("0123456789abcdef") == std::string::npos)
    f.sha256 = f.blob;
}

class Digest {
 public:
  explicit Digest(const EVP_MD* md) : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), md, nullptr);
  }
  void update(const void* p, size_t n) { EVP_DigestUpdate(ctx_.get(), p, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &n);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

// What a finished blob is checked against: sha256 of LFS files, else the git blob id (sha1 of
// "blob <size>\0" + content) when the blob name is one.
struct Checker {
  std::unique_ptr<Digest> digest;
  std::string expected, kind;
  Checker(const RemoteFile& f) {
    if (!f.sha256.empty()) {
      digest = std::make_unique<Digest>(EVP_sha256());
      expected = f.sha256;
      kind = "sha256";
    } else if (f.size_known && f.blob.size() == 40 &&
               f.blob.find_first_not_of("0123456789abcdef") == std::string::npos) {
      digest = std::make_unique<Digest>(EVP_sha1());
      const std::string prefix = fmt::format("blob {}", f.size);
      digest->update(prefix.data(), prefix.size() + 1);
      expected = f.blob;
      kind = "git blob sha1";
    }
  }
  void reset(const RemoteFile& f) { *this = Checker(f); }
  void update(const char* p, size_t n) {
    if (digest) digest->update(p, n);
  }
};

// Feeds a Checker on a thread of its own, so that hashing overlaps receiving and writing (sha256
// runs at about the rate of a loopback or LAN transfer: in line it would halve the rate). At most
// kMaxQueued bytes wait.
class HashPipe {
 public:
  explicit HashPipe(Checker& check) : check_(check) { start(); }
  ~HashPipe() { finish(); }
  HashPipe(const HashPipe&) = delete;
  HashPipe& operator=(const HashPipe&) = delete;

  void update(const char* p, size_t n) {
    if (!check_.digest) return;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queued_ < kMaxQueued; });
    queue_.emplace_back(p, n);
    queued_ += n;
    cv_.notify_all();
  }
  // Drops what was hashed and starts over (the server sent the whole file again).
  void reset(const RemoteFile& f) {
    finish();
    check_.reset(f);
    start();
  }
  // Waits until everything queued is hashed.
  void finish() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  static constexpr size_t kMaxQueued = 64u << 20;
  void start() {
    done_ = false;
    if (check_.digest) thread_ = std::thread([this] { run(); });
  }
  void run() {
    for (;;) {
      std::string chunk;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || done_; });
        if (queue_.empty()) return;
        chunk = std::move(queue_.front());
        queue_.pop_front();
        queued_ -= chunk.size();
      }
      cv_.notify_all();
      check_.update(chunk.data(), chunk.size());
    }
  }
  Checker& check_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t queued_ = 0;
  bool done_ = false;
};

struct Job {
  const HubName* name;
  const HubOptions* opts;
  std::string rdir, commit;
  ProgressBar* bar;
  std::atomic<bool>* abort;
  ArrivingFiles* arriving = nullptr;  // told of each file's bytes as they land (overlapped load)
};

uint64_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

[[noreturn]] void fail_disk_full(const Job& job, const RemoteFile& f, uint64_t have) {
  fail(
      "disk full: cannot write {} of {} into the cache {} ({} more bytes needed for this file; "
      "free space there or set HF_HUB_CACHE / HF_HOME to a larger disk)",
      f.rfilename, job.name->str(), job.opts->cache_dir,
      f.size_known && f.size > have ? f.size - have : 0);
}

// Feeds the bytes already in a partial blob to the checker; returns their count.
uint64_t rehash_partial(const fs::path& part, Checker& check) {
  const int fd = ::open(part.c_str(), O_RDONLY);
  if (fd < 0) return 0;
  std::vector<char> buf(1 << 20);
  uint64_t n = 0;
  for (;;) {
    const ssize_t got = ::read(fd, buf.data(), buf.size());
    if (got <= 0) break;
    check.update(buf.data(), static_cast<size_t>(got));
    n += static_cast<uint64_t>(got);
  }
  ::close(fd);
  return n;
}

// huggingface_hub's lock of a blob being downloaded, <cache>/.locks/models--org--name/<blob>.lock
// (its filelock takes flock(2) on it), so that inferd and Python processes never write one
// .incomplete file at once.
class BlobLock {
 public:
  BlobLock(const Job& job, const std::string& blob) {
    const fs::path dir =
        fs::path(job.opts->cache_dir) / ".locks" / repo_folder_name(job.name->repo);
    std::error_code ec;
    fs::create_directories(dir, ec);
    fd_ = ::open((dir / (blob + ".lock")).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0)
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
  }
  ~BlobLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;

 private:
  int fd_ = -1;
};

bool have_blob(const std::string& rdir, const RemoteFile& f) {
  const fs::path blob = fs::path(rdir) / "blobs" / f.blob;
  std::error_code ec;
  return fs::is_regular_file(blob, ec) && (!f.size_known || file_size_or_zero(blob) == f.size);
}

// One file into blobs/<blob>.incomplete (resuming what is there), checked and renamed.
void download_blob(const Job& job, const RemoteFile& f, const std::string& url) {
  const fs::path blob = fs::path(job.rdir) / "blobs" / f.blob;
  const fs::path part = blob.string() + ".incomplete";
  Checker check(f);
  uint64_t have = rehash_partial(part, check);
  if (f.size_known && have > f.size) {  // a stale partial bigger than the file: start over
    fs::remove(part);
    check.reset(f);
    have = 0;
  }
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {}: {}", part.string(), std::strerror(errno));
  std::unique_ptr<int, void (*)(int*)> close_fd(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
  job.bar->add(have);
  HashPipe pipe(check);
  HttpRequest req{url, job.opts->token};
  req.stall_timeout_s = job.opts->stall_timeout_s;
  int write_errno = 0;
  // The loader may read the bytes in place (Job::arriving) once this run's first response has
  // kept them (a 206) or started over (a 200): told every 1/16 of the file (64 KiB to 4 MiB).
  uint64_t told = 0;
  const uint64_t step = std::clamp<uint64_t>(f.size / 16, 64u << 10, 4u << 20);
  const auto tell = [&](bool now) {
    if (job.arriving && (now || have >= told + step)) {
      job.arriving->advance(f.rfilename, have);
      told = have;
    }
  };
  for (int attempt = 0;; ++attempt) {
    const uint64_t offset = have;
    bool first = true;
    const auto sink = [&](const char* p, size_t n, long status) {
      if (first && status == 200 && offset > 0) {  // the server ignored the Range: start over
        if (job.arriving) job.arriving->advance(f.rfilename, 0);
        told = 0;
        if (::ftruncate(fd, 0) != 0) return false;
        pipe.reset(f);
        have = 0;
      }
      first = false;
      for (size_t done = 0; done < n;) {
        const ssize_t w = ::write(fd, p + done, n - done);
        if (w < 0) {
          if (errno == EINTR) continue;
          write_errno = errno;
          return false;
        }
        done += static_cast<size_t>(w);
      }
      pipe.update(p, n);
      have += n;
      job.bar->add(n);
      tell(false);
      return true;
    };
    const HttpResult r = http_stream(req, offset, sink, job.abort);
    if (write_errno == ENOSPC || write_errno == EDQUOT) fail_disk_full(job, f, have);
    if (write_errno != 0) fail("cannot write {}: {}", part.string(), std::strerror(write_errno));
    if (job.abort->load()) return;
    if (r.curl_code == 0 && r.status == 416 && f.size_known && have == f.size) break;
    if (r.curl_code == 0 && (r.status == 200 || r.status == 206)) break;
    const bool transient = r.curl_code != 0 || r.status == 429 || r.status >= 500;
    if (!transient || r.connect_failed() || attempt >= job.opts->max_retries)
      fail_http(r, *job.name, *job.opts, f.rfilename);
    LOG_WARN("{}: transfer stopped at {} bytes ({}); resuming", f.rfilename, have,
             r.curl_code != 0 ? r.curl_error : fmt::format("HTTP {}", r.status));
    std::this_thread::sleep_for(std::chrono::milliseconds(250 * attempt));
  }
  if (f.size_known && have != f.size)
    fail("{}: downloaded {} bytes, the hub said {}", f.rfilename, have, f.size);
  tell(true);
  pipe.finish();
  if (check.digest) {
    const std::string got = check.digest->hex();
    if (got != check.expected) {
      std::error_code ec;
      fs::remove(part, ec);
      fail(
          "checksum mismatch for {} of {}: expected {} {}, got {} (the corrupt download was "
          "removed; run again to fetch it anew)",
          f.rfilename, job.name->str(), check.kind, check.expected, got);
    }
  }
  std::error_code ec;
  fs::rename(part, blob, ec);
  if (ec) fail("cannot rename {} to {}: {}", part.string(), blob.string(), ec.message());
}

// The safetensors header of weight file `f` into its partial blob, ahead of its turn (the weights
// come a few files at a time): a GET stopped once the 8-byte length and the JSON header are in, so
// that the loader knows every shard's tensors at once. The rest is fetched later from there (a
// Range request, as after a dropped transfer); the final checksum covers these bytes too. Errors
// are left to that download.
void fetch_header(const Job& job, const RemoteFile& f, const std::string& url) {
  const BlobLock lock(job, f.blob);
  const fs::path part = fs::path(job.rdir) / "blobs" / (f.blob + ".incomplete");
  if (have_blob(job.rdir, f) || file_size_or_zero(part) > 0) return;  // its download tells
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  uint64_t have = 0, need = 8;
  char len_bytes[8];
  HttpRequest req{url, job.opts->token};
  req.stall_timeout_s = job.opts->stall_timeout_s;
  const auto sink = [&](const char* p, size_t n, long) {
    for (size_t i = 0; i < n && have + i < 8; ++i) len_bytes[have + i] = p[i];
    if (::write(fd, p, n) != static_cast<ssize_t>(n)) return false;
    have += n;
    if (need == 8 && have >= 8) {
      uint64_t len = 0;
      std::memcpy(&len, len_bytes, 8);
      need = 8 + std::min<uint64_t>(len, 100u << 20);
    }
    return have < need && !job.abort->load();
  };
  http_stream(req, 0, sink, job.abort);
  ::close(fd);
  if (job.arriving && have >= need) job.arriving->advance(f.rfilename, have);
}

// fetch_header() of every file in `todo`, up to 8 at once.
void fetch_headers(const Job& job, const std::vector<const RemoteFile*>& todo) {
  std::atomic<size_t> next{0};
  const auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < todo.size() && !job.abort->load();)
      fetch_header(job, *todo[i],
                   job.opts->endpoint + "/" + url_escape(job.name->repo, true) + "/resolve/" +
                       job.commit + "/" + url_escape(todo[i]->rfilename, true));
  };
  std::vector<std::thread> threads;
  for (size_t t = 0; t < std::min<size_t>(todo.size(), 8); ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
}

void check_free_space(const Job& job, const std::vector<const RemoteFile*>& todo) {
  uint64_t need = 0;
  for (const RemoteFile* f : todo) {
    const uint64_t have =
        file_size_or_zero(fs::path(job.rdir) / "blobs" / (f->blob + ".incomplete"));
    if (f->size_known && f->size > have) need += f->size - have;
  }
  struct statvfs st {};
  if (::statvfs(job.rdir.c_str(), &st) != 0) return;
  const uint64_t avail = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (need > avail)
    fail(
        "disk full: {} needs {} bytes ({}) in the cache {}, which has {} bytes ({}) free; free "
        "space there or set HF_HUB_CACHE / HF_HOME to a larger disk",
        job.name->str(), need, format_bytes(need), job.opts->cache_dir, avail, format_bytes(avail));
}

// Downloads `todo` with up to opts.parallel threads; the first error stops the others.
void download_all(const Job& job, const std::vector<const RemoteFile*>& todo) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::exception_ptr first_error;
  const auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < todo.size() && !job.abort->load();) {
      const RemoteFile& f = *todo[i];
      const std::string url = job.opts->endpoint + "/" + url_escape(job.name->repo, true) +
                              "/resolve/" + job.commit + "/" + url_escape(f.rfilename, true);
      try {
        const BlobLock lock(job, f.blob);
        if (!have_blob(job.rdir, f)) download_blob(job, f, url);  // else another process did
        if (!job.abort->load()) {
          link_snapshot_file(job.rdir, job.commit, f.rfilename, f.blob);
          if (job.arriving) job.arriving->finished(f.rfilename);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first_error) first_error = std::current_exception();
        job.abort->store(true);
      }
    }
  };
  const size_t n =
      std::min<size_t>(todo.size(), static_cast<size_t>(std::max(1, job.opts->parallel)));
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n; ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace

namespace {

bool is_weight_file(const RemoteFile& f) {
  return f.rfilename.ends_with(".safetensors") && f.rfilename.find('/') == std::string::npos;
}

}  // namespace

// The weights of an overlapped download, fetched on a thread of their own (resolve_overlapped).
struct PendingDownload::State {
  HubName name;
  HubOptions opts;
  RepoInfo info;
  std::string rdir, snapshot;
  std::vector<const RemoteFile*> todo;
  std::unique_ptr<ProgressBar> bar;
  std::atomic<bool> abort{false};
  std::shared_ptr<ArrivingFiles> arriving = std::make_shared<ArrivingFiles>();
  std::thread thread;
};

PendingDownload::PendingDownload(std::unique_ptr<State> state) : s_(std::move(state)) {}

PendingDownload::~PendingDownload() {
  s_->abort.store(true);
  if (s_->thread.joinable()) s_->thread.join();
  unregister_arriving_files(s_->snapshot);
}

const std::string& PendingDownload::snapshot_dir() const {
  return s_->snapshot;
}

void PendingDownload::wait() {
  s_->arriving->wait_all();
}

std::shared_ptr<ArrivingFiles> PendingDownload::arriving() const {
  return s_->arriving;
}

namespace {

// pull(); with `pending`, the weights still to download are left to a thread (*pending).
std::string pull_files(const HubName& name, const HubOptions& opts,
                       std::unique_ptr<PendingDownload::State>* pending) {
  if (opts.offline) {
    if (auto snap = cached_snapshot(name, opts.cache_dir)) return *snap;
    fail(
        "HF_HUB_OFFLINE is set and {} is not in the Hugging Face cache {} (no refs/{} and "
        "snapshot there); download it first (`inferd pull {}` with network access) or unset "
        "HF_HUB_OFFLINE",
        name.str(), opts.cache_dir, name.revision, name.str());
  }
  RepoInfo info = fetch_repo_info(name, opts);
  if (opts.config_only)
    std::erase_if(info.files, [](const RemoteFile& f) {
      return f.rfilename.ends_with(".safetensors") ||
             f.rfilename.ends_with(".safetensors.index.json");
    });
  const bool has_weights =
      opts.config_only ||
      std::any_of(info.files.begin(), info.files.end(), [](const RemoteFile& f) {
        return f.rfilename.size() > 12 && f.rfilename.ends_with(".safetensors");
      });
  if (!has_weights) {
    std::string others;
    for (size_t i = 0; i < info.skipped.size() && i < 8; ++i) others += " " + info.skipped[i];
    fail(
        "{} has no *.safetensors weights (inferd loads safetensors or GGUF; the repository "
        "holds:{})",
        name.str(), others.empty() ? " nothing else" : others);
  }
  const std::string rdir = repo_dir(opts.cache_dir, name.repo);
  std::error_code ec;
  fs::create_directories(fs::path(rdir) / "blobs", ec);
  if (ec) fail("cannot create the cache folder {}: {}", rdir, ec.message());
  std::atomic<bool> abort{false};
  std::vector<const RemoteFile*> todo, later;
  uint64_t total = 0, later_total = 0;
  for (RemoteFile& f : info.files) {
    if (f.blob.empty()) {
      head_file(f,
                opts.endpoint + "/" + url_escape(name.repo, true) + "/resolve/" + info.commit +
                    "/" + url_escape(f.rfilename, true),
                name, opts);
    }
    if (have_blob(rdir, f)) {
      link_snapshot_file(rdir, info.commit, f.rfilename, f.blob);
      continue;
    }
    // Overlapped: weights of a known size arrive while the model loads.
    const bool leave = pending && is_weight_file(f) && f.size_known && f.size > 0;
    (leave ? later : todo).push_back(&f);
    (leave ? later_total : total) += f.size;
  }
  const std::string snapshot = (fs::path(rdir) / "snapshots" / info.commit).string();
  std::vector<const RemoteFile*> all = todo;
  all.insert(all.end(), later.begin(), later.end());
  if (!all.empty()) {
    ProgressBar none("", 0, false);
    check_free_space(Job{&name, &opts, rdir, info.commit, &none, &abort}, all);
    LOG_INFO("downloading {} ({} files, {}) into {}{}", name.str(), all.size(),
             format_bytes(total + later_total), rdir,
             later.empty() ? "" : "; the weights load as they arrive");
  }
  if (!todo.empty()) {
    ProgressBar bar("Downloading " + name.str(), total, opts.progress && later.empty());
    download_all(Job{&name, &opts, rdir, info.commit, &bar, &abort}, todo);
    bar.finish();
  }
  if (!later.empty()) {
    fs::create_directories(snapshot, ec);
    auto st = std::make_unique<PendingDownload::State>();
    st->name = name;
    st->opts = opts;
    st->opts.parallel = std::max(1, opts.weight_streams);  // in order: shard 1 lands first
    st->rdir = rdir;
    st->snapshot = snapshot;
    st->bar =
        std::make_unique<ProgressBar>("Downloading " + name.str(), later_total, opts.progress);
    for (const RemoteFile* f : later)
      st->arriving->expect(
          f->rfilename, (fs::path(rdir) / "blobs" / (f->blob + ".incomplete")).string(), f->size);
    st->info = std::move(info);  // `later` points into info.files: find them again
    for (const RemoteFile& f : st->info.files)
      if (st->arriving->expects(f.rfilename) && is_weight_file(f)) st->todo.push_back(&f);
    std::sort(st->todo.begin(), st->todo.end(), [](const RemoteFile* a, const RemoteFile* b) {
      return a->rfilename < b->rfilename;  // model-00001-of-... first: the loader reads it first
    });
    *pending = std::move(st);
    return snapshot;
  }
  if (name.revision != info.commit) write_ref(rdir, name.revision, info.commit);
  return snapshot;
}

}  // namespace

std::string pull(const HubName& name, const HubOptions& opts) {
  return pull_files(name, opts, nullptr);
}

Resolved resolve_overlapped(const HubName& name, const HubOptions& opts) {
  std::unique_ptr<PendingDownload::State> st;
  Resolved out;
  try {
    out.dir = pull_files(name, opts, &st);
  } catch (const UnreachableError& e) {
    if (auto snap = cached_snapshot(name, opts.cache_dir)) {
      LOG_WARN("{}; using the cached snapshot {}", e.what(), *snap);
      out.dir = *snap;
      return out;
    }
    throw;
  }
  if (!st) return out;
  PendingDownload::State* s = st.get();
  register_arriving_files(s->snapshot, s->arriving);
  out.pending = std::shared_ptr<PendingDownload>(new PendingDownload(std::move(st)));
  s->thread = std::thread([s] {
    try {
      const Job job{&s->name,     &s->opts,  s->rdir,          s->info.commit,
                    s->bar.get(), &s->abort, s->arriving.get()};
      fetch_headers(job, s->todo);
      download_all(job, s->todo);
      if (s->abort.load()) fail("the download of {} was stopped", s->name.str());
      s->bar->finish();
      if (s->name.revision != s->info.commit) write_ref(s->rdir, s->name.revision, s->info.commit);
      s->arriving->all_finished();
    } catch (...) {
      s->arriving->failed(std::current_exception());
    }
  });
  return out;
}

std::string resolve(const HubName& name, const HubOptions& opts) {
  try {
    return pull(name, opts);
  } catch (const UnreachableError& e) {
    if (auto snap = cached_snapshot(name, opts.cache_dir)) {
      LOG_WARN("{}; using the cached snapshot {}", e.what(), *snap);
      return *snap;
    }
    throw;
  }
}

std::string resolve_if_hub_name(const std::string& model, const std::string& token) {
  if (!is_hub_name(model)) return model;
  return resolve(*parse_hub_name(model), options_from_env(token));
}

}  // namespace inferd::hub
