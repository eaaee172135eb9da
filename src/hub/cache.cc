// The Hugging Face cache (cache.h, hub.h): names, refs, snapshot links, `ls` and `rm`. The layout
// follows huggingface_hub's "Manage the huggingface_hub cache-system" guide.
#include "hub/cache.h"

#include <unistd.h>

#include <sys/stat.h>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "hub/hub.h"

namespace inferd::hub {

namespace fs = std::filesystem;

namespace {

bool name_part_ok(const std::string& p) {
  if (p.empty() || p.size() > 96 || p[0] == '.' || p[0] == '-') return false;
  if (p.find("..") != std::string::npos || p.find("--") != std::string::npos) return false;
  for (const char c : p) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool revision_ok(const std::string& r) {
  if (r.empty() || r.size() > 200 || r[0] == '.' || r[0] == '/' || r.back() == '/') return false;
  if (r.find("..") != std::string::npos) return false;
  for (const char c : r)
    if (c <= ' ' || c == ':' || c == '\\' || c == '?' || c == '*' || c == '~' || c == '^')
      return false;
  return true;
}

bool env_true(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return false;
  const std::string s = v;
  return s == "1" || s == "true" || s == "TRUE" || s == "True" || s == "yes" || s == "on" ||
         s == "ON";
}

}  // namespace

std::optional<HubName> parse_hub_name(const std::string& s) {
  HubName n;
  std::string repo = s;
  if (const size_t colon = s.find(':'); colon != std::string::npos) {
    repo = s.substr(0, colon);
    n.revision = s.substr(colon + 1);
    if (!revision_ok(n.revision)) return std::nullopt;
  }
  const size_t slash = repo.find('/');
  if (slash == std::string::npos || repo.find('/', slash + 1) != std::string::npos)
    return std::nullopt;
  if (!name_part_ok(repo.substr(0, slash)) || !name_part_ok(repo.substr(slash + 1)))
    return std::nullopt;
  n.repo = repo;
  return n;
}

bool is_hub_name(const std::string& s) {
  std::error_code ec;
  if (fs::exists(s, ec)) return false;
  // A mistyped file path ("models/x.gguf") is left to the loader's "no such file" error.
  for (const char* ext : {".gguf", ".safetensors", ".json", ".bin"})
    if (s.ends_with(ext)) return false;
  return parse_hub_name(s).has_value();
}

std::string hub_cache_dir() {
  if (const char* d = std::getenv("HF_HUB_CACHE"); d && *d) return d;
  if (const char* d = std::getenv("HF_HOME"); d && *d) return (fs::path(d) / "hub").string();
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return (fs::path(x) / "huggingface" / "hub").string();
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : ".") / ".cache" / "huggingface" / "hub").string();
}

std::string stored_token() {
  fs::path path;
  if (const char* p = std::getenv("HF_TOKEN_PATH"); p && *p) {
    path = p;
  } else if (const char* h = std::getenv("HF_HOME"); h && *h) {
    path = fs::path(h) / "token";
  } else {
    const char* x = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    path = (x && *x ? fs::path(x) : fs::path(home && *home ? home : ".") / ".cache") /
           "huggingface" / "token";
  }
  std::ifstream in(path);
  std::string t;
  if (!in || !std::getline(in, t)) return "";
  while (!t.empty() && (t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) t.pop_back();
  return t;
}

HubOptions options_from_env(const std::string& token) {
  HubOptions o;
  if (const char* e = std::getenv("HF_ENDPOINT"); e && *e) o.endpoint = e;
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  if (!token.empty()) {
    o.token = token;
  } else if (const char* t = std::getenv("HF_TOKEN"); t && *t) {
    o.token = t;
  } else {
    o.token = stored_token();
  }
  o.cache_dir = hub_cache_dir();
  o.offline = env_true("HF_HUB_OFFLINE");
  o.progress = isatty(STDERR_FILENO) != 0 && !env_true("HF_HUB_DISABLE_PROGRESS_BARS");
  if (const char* e = std::getenv("INFERD_HUB_WEIGHT_STREAMS"); e && *e) {
    const int n = std::atoi(e);
    if (n < 1 || n > 64)
      fail("INFERD_HUB_WEIGHT_STREAMS='{}': expected a number of files from 1 to 64", e);
    o.weight_streams = n;
  }
  return o;
}

std::string repo_folder_name(const std::string& repo) {
  std::string out = "models--";
  for (const char c : repo) {
    if (c == '/')
      out += "--";
    else
      out += c;
  }
  return out;
}

bool is_needed_file(const std::string& f) {
  const std::string base = fs::path(f).filename().string();
  auto ends = [&](std::string_view suf) {
    return base.size() >= suf.size() &&
           base.compare(base.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (ends(".safetensors") || ends(".safetensors.index.json")) return true;
  static const std::set<std::string> kNames = {"config.json",
                                               "generation_config.json",
                                               "tokenizer.json",
                                               "tokenizer_config.json",
                                               "special_tokens_map.json",
                                               "chat_template.jinja",
                                               "chat_template.json",
                                               "preprocessor_config.json",
                                               "processor_config.json",
                                               "added_tokens.json",
                                               "vocab.json",
                                               "merges.txt",
                                               "modules.json",
                                               "sentence_bert_config.json",
                                               "tokenizer.model"};
  if (kNames.count(base) == 0) return false;
  // Top-level files, and sentence-transformers' pooling config (1_Pooling/config.json).
  return f.find('/') == std::string::npos || f.rfind("1_Pooling/", 0) == 0;
}

std::string repo_dir(const std::string& cache_dir, const std::string& repo) {
  return (fs::path(cache_dir) / repo_folder_name(repo)).string();
}

bool is_commit_hash(const std::string& s) {
  return s.size() == 40 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::optional<std::string> read_ref(const std::string& rdir, const std::string& revision) {
  std::ifstream in(fs::path(rdir) / "refs" / revision);
  std::string commit;
  if (!in || !std::getline(in, commit)) return std::nullopt;
  while (!commit.empty() && (commit.back() == '\r' || commit.back() == ' ')) commit.pop_back();
  if (!is_commit_hash(commit)) return std::nullopt;
  return commit;
}

void write_ref(const std::string& rdir, const std::string& revision, const std::string& commit) {
  const fs::path ref = fs::path(rdir) / "refs" / revision;
  std::error_code ec;
  fs::create_directories(ref.parent_path(), ec);
  if (ec) fail("cannot create {}: {}", ref.parent_path().string(), ec.message());
  const fs::path tmp = ref.string() + ".tmp" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << commit;
    if (!out) fail("cannot write {}", tmp.string());
  }
  fs::rename(tmp, ref, ec);
  if (ec) fail("cannot write {}: {}", ref.string(), ec.message());
}

void link_snapshot_file(const std::string& rdir, const std::string& commit,
                        const std::string& rfilename, const std::string& blob) {
  const fs::path link = fs::path(rdir) / "snapshots" / commit / rfilename;
  std::error_code ec;
  fs::create_directories(link.parent_path(), ec);
  if (ec) fail("cannot create {}: {}", link.parent_path().string(), ec.message());
  // snapshots/COMMIT/a/b/FILE -> ../../../../blobs/BLOB: up from each folder below the repo dir.
  fs::path target;
  const size_t depth = 2 + static_cast<size_t>(std::count(rfilename.begin(), rfilename.end(), '/'));
  for (size_t i = 0; i < depth; ++i) target /= "..";
  target = target / "blobs" / blob;
  fs::remove(link, ec);
  fs::create_symlink(target, link, ec);
  if (ec) fail("cannot link {} -> {}: {}", link.string(), target.string(), ec.message());
}

bool snapshot_has(const std::string& rdir, const std::string& commit,
                  const std::string& rfilename) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(rdir) / "snapshots" / commit / rfilename, ec);
}

std::optional<std::string> cached_snapshot(const HubName& name, const std::string& cache_dir) {
  const std::string rdir = repo_dir(cache_dir, name.repo);
  std::optional<std::string> commit = read_ref(rdir, name.revision);
  if (!commit && is_commit_hash(name.revision)) commit = name.revision;
  if (!commit) return std::nullopt;
  const fs::path snap = fs::path(rdir) / "snapshots" / *commit;
  std::error_code ec;
  if (fs::is_regular_file(snap / "config.json", ec)) return snap.string();
  for (fs::directory_iterator it(snap, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".gguf" && fs::is_regular_file(it->path(), ec))
      return snap.string();
  return std::nullopt;
}

std::vector<CachedRepo> list_cached(const std::string& cache_dir) {
  std::vector<CachedRepo> out;
  std::error_code ec;
  for (fs::directory_iterator it(cache_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string dir = it->path().filename().string();
    if (dir.rfind("models--", 0) != 0 || !it->is_directory()) continue;
    CachedRepo r;
    const std::string rest = dir.substr(8);
    const size_t sep = rest.find("--");
    r.repo = sep == std::string::npos ? rest : rest.substr(0, sep) + "/" + rest.substr(sep + 2);
    std::error_code ec2;
    const fs::path refs = it->path() / "refs";
    for (fs::recursive_directory_iterator ri(refs, ec2), rend; !ec2 && ri != rend;
         ri.increment(ec2)) {
      if (!ri->is_regular_file()) continue;
      const std::string rev = fs::relative(ri->path(), refs, ec2).string();
      if (auto c = read_ref(it->path().string(), rev)) r.refs[rev] = *c;
    }
    for (fs::directory_iterator si(it->path() / "snapshots", ec2), send; !ec2 && si != send;
         si.increment(ec2))
      r.snapshots.push_back(si->path().filename().string());
    std::sort(r.snapshots.begin(), r.snapshots.end());
    for (fs::directory_iterator bi(it->path() / "blobs", ec2), bend; !ec2 && bi != bend;
         bi.increment(ec2)) {
      struct stat st {};
      if (::lstat(bi->path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
        r.size_bytes += static_cast<uint64_t>(st.st_size);
    }
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const CachedRepo& a, const CachedRepo& b) { return a.repo < b.repo; });
  return out;
}

bool remove_cached(const std::string& repo, const std::string& cache_dir) {
  const fs::path dir = repo_dir(cache_dir, repo);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return false;
  fs::remove_all(dir, ec);
  if (ec) fail("cannot remove {}: {}", dir.string(), ec.message());
  fs::remove_all(fs::path(cache_dir) / ".locks" / repo_folder_name(repo), ec);
  return true;
}

}  // namespace inferd::hub
