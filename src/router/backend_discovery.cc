// Router's replica discovery: --backend URLs, a --backend-file (re-read when its mtime changes)
// and --backend-dns names (every address a replica, resolved again each round), merged into the
// replica table.
#include "router/router.h"

#include <sys/stat.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/logging.h"

namespace inferd::router {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

namespace {

int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// The URLs of a --backend-file; throws Error when it cannot be read or holds a bad URL.
std::vector<std::string> read_backend_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("--backend-file '{}': cannot read it", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_backend_list(ss.str(), path);
}

// One replica URL per address a --backend-dns name resolves to.
std::vector<std::string> expand_dns(const BackendAddress& a,
                                    const tcp::resolver::results_type& results) {
  std::vector<std::string> out;
  for (const auto& r : results) {
    const auto ip = r.endpoint().address();
    const std::string host = ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string();
    std::string url = "http://" + host + ":" + std::to_string(a.port) + a.path;
    if (std::find(out.begin(), out.end(), url) == out.end()) out.push_back(std::move(url));
  }
  return out;
}

}  // namespace

void Router::apply_backends() {
  std::vector<std::string> urls = config_.backends;
  urls.insert(urls.end(), file_urls_.begin(), file_urls_.end());
  for (const auto& [name, list] : dns_urls_) urls.insert(urls.end(), list.begin(), list.end());
  for (auto& r : table_.set_backends(urls)) health_->watch(r);
  std::vector<uint32_t> ids;
  for (const auto& r : table_.replicas()) ids.push_back(r->id());
  pool_.retain(ids);
}

void Router::reload_backend_file() {
  file_urls_ = read_backend_file(config_.backend_file);
  apply_backends();
}

void Router::load_backends() {
  if (!config_.backend_file.empty()) {
    backend_file_mtime_ = mtime_ns(config_.backend_file);
    file_urls_ = read_backend_file(config_.backend_file);
  }
  for (const auto& name : config_.backend_dns) {
    const BackendAddress a = parse_backend_url(name);
    tcp::resolver resolver(http_.io());
    beast::error_code ec;
    auto results = resolver.resolve(a.host, std::to_string(a.port), ec);
    if (ec)
      LOG_WARN("router: --backend-dns '{}': {} (no replicas from it yet)", name, ec.message());
    else
      dns_urls_[name] = expand_dns(a, results);
  }
}

net::awaitable<void> Router::discover() {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer timer(ex);
  tcp::resolver resolver(ex);
  while (!stopped_) {
    timer.expires_after(config_.discovery_interval);
    beast::error_code ec;
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (stopped_) break;
    bool changed = false;
    if (!config_.backend_file.empty()) {
      const int64_t m = mtime_ns(config_.backend_file);
      if (m < 0) {
        LOG_WARN("router: --backend-file '{}' is gone; keeping the replicas it listed",
                 config_.backend_file);
      } else if (m != backend_file_mtime_) {
        backend_file_mtime_ = m;
        try {
          // (A file that cannot be opened reads as empty here: no replicas from it.)
          std::ifstream f(config_.backend_file);
          std::stringstream ss;
          ss << f.rdbuf();
          file_urls_ = parse_backend_list(ss.str(), config_.backend_file);
          changed = true;
        } catch (const Error& e) {
          LOG_WARN("router: {}; keeping the previous replicas", e.what());
        }
      }
    }
    for (const auto& name : config_.backend_dns) {
      const BackendAddress a = parse_backend_url(name);
      auto results = co_await resolver.async_resolve(a.host, std::to_string(a.port),
                                                     net::redirect_error(net::use_awaitable, ec));
      if (stopped_) co_return;
      std::vector<std::string> urls;
      if (ec) {
        // A headless Service without ready pods has no addresses: no replicas, not an error.
        if (ec != net::error::host_not_found && ec != net::error::host_not_found_try_again) {
          LOG_WARN("router: --backend-dns '{}': {}; keeping the previous replicas", name,
                   ec.message());
          continue;
        }
      } else {
        urls = expand_dns(a, results);
      }
      if (dns_urls_[name] != urls) {
        dns_urls_[name] = std::move(urls);
        changed = true;
      }
    }
    if (changed) apply_backends();
  }
}

}  // namespace inferd::router
