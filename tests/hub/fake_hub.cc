// The local stand-in for the Hugging Face hub (fake_hub.h). One thread accepts; each connection
// gets a thread, answers one request and closes (Connection: close). Bodies go out with
// sendfile(2), or pread + send when a byte is to be corrupted.
#include "fake_hub.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>
#include <chrono>
#include <csignal>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace inferd::testing {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

std::string hex_digest(const EVP_MD* md, const std::string& prefix, const std::string& path) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), md, nullptr);
  EVP_DigestUpdate(ctx.get(), prefix.data(), prefix.size());
  const int fd = ::open(path.c_str(), O_RDONLY);
  std::vector<char> buf(1 << 20);
  for (ssize_t n; fd >= 0 && (n = ::read(fd, buf.data(), buf.size())) > 0;)
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  if (fd >= 0) ::close(fd);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), out, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", out[i]);
  return hex;
}

bool is_lfs(const std::string& name, uint64_t size) {
  for (const char* ext : {".safetensors", ".bin", ".gguf", ".pt", ".h5", ".onnx", ".msgpack"})
    if (name.ends_with(ext)) return true;
  return size >= (10u << 20);
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

FakeHub::Repo load_repo(const FakeHubRepo& spec) {
  FakeHub::Repo r;
  r.spec = spec;
  for (const auto& e : fs::recursive_directory_iterator(spec.dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), spec.dir).string();
    if (rel[0] == '.') continue;
    FakeHub::File f;
    f.rfilename = rel;
    f.path = e.path().string();
    f.size = e.file_size();
    f.lfs = is_lfs(rel, f.size);
    r.files.push_back(std::move(f));
  }
  std::sort(r.files.begin(), r.files.end(),
            [](const auto& a, const auto& b) { return a.rfilename < b.rfilename; });
  std::vector<std::thread> hashers;
  for (FakeHub::File& f : r.files)
    hashers.emplace_back([&f] {
      if (f.lfs) f.sha256 = hex_digest(EVP_sha256(), "", f.path);
      f.git_sha1 = f.lfs ? hex_digest(EVP_sha1(), fmt::format("pointer {}", f.rfilename), "")
                         : hex_digest(EVP_sha1(), fmt::format("blob {}", f.size) + '\0', f.path);
    });
  for (std::thread& t : hashers) t.join();
  std::string listing;
  for (const auto& f : r.files) listing += f.rfilename + " " + f.git_sha1 + f.sha256 + "\n";
  r.commit = hex_digest(EVP_sha1(), listing, "");
  return r;
}

}  // namespace

// The model-info route's answer (huggingface_hub's ModelInfo fields).
static nlohmann::json model_info(const FakeHub::Repo& r, const FakeHubFaults& faults) {
  nlohmann::json siblings = nlohmann::json::array();
  for (const FakeHub::File& f : r.files) {
    nlohmann::json s = {{"rfilename", f.rfilename}};
    if (faults.blob_metadata) {
      const uint64_t size = f.size + faults.extra_size;
      s["size"] = size;
      s["blobId"] = f.git_sha1;
      if (f.lfs) s["lfs"] = {{"sha256", f.sha256}, {"size", size}, {"pointerSize", 134}};
    }
    siblings.push_back(s);
  }
  const nlohmann::json info = {{"_id", r.commit.substr(0, 24)},
                               {"id", r.spec.repo},
                               {"modelId", r.spec.repo},
                               {"author", r.spec.repo.substr(0, r.spec.repo.find('/'))},
                               {"sha", r.commit},
                               {"lastModified", "2026-12-01T00:00:00.000Z"},
                               {"createdAt", "2026-12-01T00:00:00.000Z"},
                               {"private", false},
                               {"gated", r.spec.token.empty() ? nlohmann::json(false) : "auto"},
                               {"disabled", false},
                               {"downloads", 0},
                               {"likes", 0},
                               {"tags", nlohmann::json::array()},
                               {"library_name", "transformers"},
                               {"siblings", siblings}};
  return info;
}

// GET /api/models/{repo}/tree/{rev}[/{path}] (huggingface_hub's list_repo_tree, which
// snapshot_download calls): the files under `path` (all of them: listed as recursive=True asks),
// as the hub lists them (type, oid = git blob sha1, size, path, lfs with the sha256).
static nlohmann::json tree_listing(const FakeHub::Repo& r, const std::string& path) {
  nlohmann::json out = nlohmann::json::array();
  const std::string prefix = path.empty() ? "" : path + "/";
  for (const FakeHub::File& f : r.files) {
    if (f.rfilename.rfind(prefix, 0) != 0) continue;
    nlohmann::json e = {
        {"type", "file"}, {"oid", f.git_sha1}, {"size", f.size}, {"path", f.rfilename}};
    if (f.lfs) e["lfs"] = {{"oid", f.sha256}, {"size", f.size}, {"pointerSize", 134}};
    out.push_back(e);
  }
  return out;
}

struct FakeHub::Impl {
  std::vector<Repo> repos;
  FakeHubFaults faults;
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::thread accept_thread;
  mutable std::mutex mu;
  std::vector<std::thread> conns;
  std::vector<std::string> log;
  bool dropped = false;
  std::atomic<bool> stopped{false};
  uint16_t port = 0;

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
      if (ec || stopped) return;
      std::lock_guard<std::mutex> lock(mu);
      conns.emplace_back([this, s = std::make_shared<tcp::socket>(std::move(sock))] { serve(*s); });
      accept();
    });
  }

  void serve(tcp::socket& sock);
  void answer(int fd, const http::request<http::empty_body>& req);
  void send_status(int fd, int status, const std::string& reason,
                   const std::vector<std::pair<std::string, std::string>>& headers,
                   const std::string& body, bool head);
  void send_file(int fd, const File& f, const http::request<http::empty_body>& req, bool head,
                 std::vector<std::pair<std::string, std::string>> headers);
  const Repo* find(const std::string& repo) const {
    for (const Repo& r : repos)
      if (r.spec.repo == repo) return &r;
    return nullptr;
  }
};

namespace {

bool send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

void FakeHub::Impl::send_status(int fd, int status, const std::string& reason,
                                const std::vector<std::pair<std::string, std::string>>& headers,
                                const std::string& body, bool head) {
  std::string h = fmt::format("HTTP/1.1 {} {}\r\n", status, reason);
  for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
  h += fmt::format("Content-Length: {}\r\nConnection: close\r\n\r\n", body.size());
  if (!head) h += body;
  send_all(fd, h.data(), h.size());
}

void FakeHub::Impl::send_file(int fd, const File& f, const http::request<http::empty_body>& req,
                              bool head, std::vector<std::pair<std::string, std::string>> headers) {
  uint64_t begin = 0, end = f.size;  // [begin, end)
  const auto range = req.find(http::field::range);
  int status = 200;
  if (range != req.end() && !faults.ignore_range) {
    const std::string r(range->value());
    if (r.rfind("bytes=", 0) != 0)
      return send_status(fd, 400, "Bad Request", {}, "bad range", head);
    const size_t dash = r.find('-');
    begin = std::stoull(r.substr(6, dash - 6));
    if (dash + 1 < r.size()) end = std::min<uint64_t>(f.size, std::stoull(r.substr(dash + 1)) + 1);
    if (begin >= f.size)
      return send_status(fd, 416, "Range Not Satisfiable",
                         {{"Content-Range", fmt::format("bytes */{}", f.size)}}, "", head);
    status = 206;
    headers.emplace_back("Content-Range", fmt::format("bytes {}-{}/{}", begin, end - 1, f.size));
  }
  bool drop = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!head && status == 200 && f.rfilename == faults.drop_file && !dropped)
      drop = dropped = true;
  }
  std::string h =
      fmt::format("HTTP/1.1 {} {}\r\n", status, status == 206 ? "Partial Content" : "OK");
  for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
  h += fmt::format(
      "Accept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\nContent-Length: "
      "{}\r\nConnection: close\r\n\r\n",
      end - begin);
  if (!send_all(fd, h.data(), h.size()) || head) return;
  if (drop) end = begin + (end - begin) / 2;
  // A late file: its first half goes out, then a pause.
  const auto delay = faults.delay_ms.find(f.rfilename);
  uint64_t pause_at = delay == faults.delay_ms.end() ? end : begin + (end - begin) / 2;
  const int file = ::open(f.path.c_str(), O_RDONLY);
  if (file < 0) return;
  const bool corrupt = f.rfilename == faults.corrupt_file;
  const uint64_t bad_at = f.size / 2;
  std::vector<char> buf(corrupt ? 1 << 20 : 0);
  if (pause_at == begin) pause_at = end;  // nothing to send before it
  for (uint64_t off = begin; off < end;) {
    if (off == pause_at) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay->second));
      pause_at = end;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(pause_at - off, 1 << 26));
    if (corrupt) {
      const ssize_t got =
          ::pread(file, buf.data(), std::min(n, buf.size()), static_cast<off_t>(off));
      if (got <= 0) break;
      if (bad_at >= off && bad_at < off + static_cast<uint64_t>(got)) buf[bad_at - off] ^= 0x5a;
      if (!send_all(fd, buf.data(), static_cast<size_t>(got))) break;
      off += static_cast<uint64_t>(got);
    } else {
      off_t o = static_cast<off_t>(off);
      const ssize_t sent = ::sendfile(fd, file, &o, n);
      if (sent <= 0) break;
      off += static_cast<uint64_t>(sent);
    }
  }
  ::close(file);
}

void FakeHub::Impl::answer(int fd, const http::request<http::empty_body>& req) {
  const bool head = req.method() == http::verb::head;
  std::string target(req.target());
  if (const size_t q = target.find('?'); q != std::string::npos) target.resize(q);
  target = url_decode(target);
  {
    std::lock_guard<std::mutex> lock(mu);
    std::string line = std::string(req.method_string()) + " " + target;
    if (const auto range = req.find(http::field::range); range != req.end())
      line += " range=" + std::string(range->value());
    log.push_back(std::move(line));
  }
  const auto error = [&](int status, const std::string& code, const std::string& msg) {
    send_status(fd, status,
                status == 404   ? "Not Found"
                : status == 401 ? "Unauthorized"
                                : "Error",
                {{"X-Error-Code", code}, {"Content-Type", "application/json"}},
                nlohmann::json{{"error", msg}}.dump(), head);
  };
  const auto authorized = [&](const Repo& r) {
    if (r.spec.token.empty()) return true;
    const auto auth = req.find(http::field::authorization);
    return auth != req.end() && std::string(auth->value()) == "Bearer " + r.spec.token;
  };
  const auto rev_ok = [](const Repo& r, const std::string& rev) {
    return rev == r.spec.branch || rev == r.commit;
  };
  if (target.rfind("/api/models/", 0) == 0) {
    const std::string rest = target.substr(12);
    if (const size_t tree = rest.find("/tree/"); tree != std::string::npos) {
      const Repo* r = find(rest.substr(0, tree));
      if (r == nullptr) return error(404, "RepoNotFound", "Repository not found");
      if (!authorized(*r)) return error(401, "GatedRepo", "Access to this model is restricted");
      const std::string rev_path = rest.substr(tree + 6);
      const size_t slash = rev_path.find('/');
      if (!rev_ok(*r, rev_path.substr(0, slash)))
        return error(404, "RevisionNotFound", "Invalid rev id");
      const std::string path = slash == std::string::npos ? "" : rev_path.substr(slash + 1);
      return send_status(fd, 200, "OK", {{"Content-Type", "application/json"}},
                         tree_listing(*r, path).dump(), head);
    }
    const size_t at = rest.find("/revision/");
    const Repo* r = find(rest.substr(0, at));
    if (r == nullptr) return error(404, "RepoNotFound", "Repository not found");
    if (!authorized(*r)) return error(401, "GatedRepo", "Access to this model is restricted");
    if (at != std::string::npos && !rev_ok(*r, rest.substr(at + 10)))
      return error(404, "RevisionNotFound", "Invalid rev id");
    const nlohmann::json info = model_info(*r, faults);
    return send_status(fd, 200, "OK", {{"Content-Type", "application/json"}}, info.dump(), head);
  }
  const size_t res = target.find("/resolve/");
  const bool blob_route = target.rfind("/blobs/", 0) == 0;
  if (res == std::string::npos && !blob_route) return error(404, "NotFound", "no such route");
  std::string repo_name, rest;
  if (blob_route) {
    const size_t last = target.rfind('/');
    repo_name = target.substr(7, last - 7);
    rest = target.substr(last + 1);
  } else {
    repo_name = target.substr(1, res - 1);
    rest = target.substr(res + 9);
  }
  const Repo* r = find(repo_name);
  if (r == nullptr) return error(404, "RepoNotFound", "Repository not found");
  if (blob_route) {
    for (const File& f : r->files)
      // X-Repo-Commit as the resolve route sends it: a client that follows the redirect to
      // this host (the same as the endpoint's, unlike the hub's CDN) still finds the commit
      // (huggingface_hub 1.33's HEAD of an LFS file did, and stopped without it).
      if (f.sha256 == rest)
        return send_file(fd, f, req, head,
                         {{"ETag", "\"" + f.sha256 + "\""}, {"X-Repo-Commit", r->commit}});
    return error(404, "EntryNotFound", "no such blob");
  }
  if (!authorized(*r)) return error(401, "GatedRepo", "Access to this model is restricted");
  const size_t slash = rest.find('/');
  if (!rev_ok(*r, rest.substr(0, slash))) return error(404, "RevisionNotFound", "Invalid rev id");
  const std::string file = slash == std::string::npos ? "" : rest.substr(slash + 1);
  for (const File& f : r->files) {
    if (f.rfilename != file) continue;
    if (f.lfs) {
      const std::string location =
          fmt::format("http://127.0.0.1:{}/blobs/{}/{}", port, r->spec.repo, f.sha256);
      return send_status(fd, 302, "Found",
                         {{"Location", location},
                          {"X-Repo-Commit", r->commit},
                          {"X-Linked-Etag", "\"" + f.sha256 + "\""},
                          {"X-Linked-Size", std::to_string(f.size)},
                          {"ETag", "\"" + f.git_sha1 + "\""}},
                         "", head);
    }
    return send_file(fd, f, req, head,
                     {{"ETag", "\"" + f.git_sha1 + "\""}, {"X-Repo-Commit", r->commit}});
  }
  return error(404, "EntryNotFound", "Entry not found");
}

void FakeHub::Impl::serve(tcp::socket& sock) {
  boost::system::error_code ec;
  sock.native_non_blocking(false, ec);
  boost::beast::flat_buffer buf;
  http::request_parser<http::empty_body> parser;
  http::read(sock, buf, parser, ec);
  if (ec) return;
  answer(sock.native_handle(), parser.get());
  sock.shutdown(tcp::socket::shutdown_send, ec);
  sock.close(ec);
}

FakeHub::FakeHub(std::vector<FakeHubRepo> repos, FakeHubFaults faults, uint16_t port)
    : impl_(std::make_unique<Impl>()) {
  // A client that stops reading (a download that needs only a file's first bytes) must not kill
  // the process through sendfile's SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  for (const FakeHubRepo& spec : repos) impl_->repos.push_back(load_repo(spec));
  impl_->faults = std::move(faults);
  const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(net::socket_base::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept();
  impl_->accept_thread = std::thread([this] { impl_->io.run(); });
}

FakeHub::~FakeHub() {
  stop();
}

void FakeHub::stop() {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->io, [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->accept_thread.join();
  std::vector<std::thread> conns;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    conns.swap(impl_->conns);
  }
  for (std::thread& t : conns) t.join();
}

uint16_t FakeHub::port() const {
  return impl_->port;
}

std::string FakeHub::endpoint() const {
  return fmt::format("http://127.0.0.1:{}", port());
}

std::string FakeHub::commit(const std::string& repo) const {
  const Repo* r = impl_->find(repo);
  return r == nullptr ? "" : r->commit;
}

std::vector<std::string> FakeHub::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->log;
}

}  // namespace inferd::testing
