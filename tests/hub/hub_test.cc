// The hub downloader (src/hub) against a local hub (fake_hub.h): the cache layout huggingface_hub
// writes (refs, relative snapshot links, blobs named by sha256 / git blob id), only the needed
// files, resume after a dropped connection and of a partial blob, checksums, gated / missing
// repos, offline mode, `ls` and `rm`; weights loaded while later shards still download.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <fmt/format.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "core/arriving_files.h"
#include "core/error.h"
#include "core/tensor.h"
#include "fake_hub.h"
#include "hub/hub.h"
#include "model/loader/safetensors.h"

namespace fs = std::filesystem;
using inferd::Error;
using namespace inferd::hub;
using inferd::testing::FakeHub;
using inferd::testing::FakeHubFaults;
using inferd::testing::FakeHubRepo;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

int count_requests(const FakeHub& hub, const std::string& needle, const std::string& also = "") {
  int n = 0;
  for (const std::string& r : hub.requests())
    n += r.find(needle) != std::string::npos && r.find(also) != std::string::npos;
  return n;
}

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("inferd_hub_test_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    repo_dir_ = root_ / "repo";
    write_file(repo_dir_ / "config.json", R"({"architectures": ["LlamaForCausalLM"]})");
    write_file(repo_dir_ / "tokenizer.json", R"({"model": {"type": "BPE"}})");
    write_file(repo_dir_ / "generation_config.json", "{}");
    shard1_ = random_bytes(1500000, 1);
    shard2_ = random_bytes(700000, 2);
    write_file(repo_dir_ / "model-00001-of-00002.safetensors", shard1_);
    write_file(repo_dir_ / "model-00002-of-00002.safetensors", shard2_);
    write_file(repo_dir_ / "model.safetensors.index.json", R"({"weight_map": {}})");
    write_file(repo_dir_ / "pytorch_model.bin", random_bytes(1000, 3));
    write_file(repo_dir_ / "onnx" / "model.onnx", random_bytes(1000, 4));
    write_file(repo_dir_ / "README.md", "# test model\n");
    opts_.cache_dir = (root_ / "cache").string();
    opts_.progress = false;
    opts_.parallel = 4;
    opts_.stall_timeout_s = 5;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<FakeHub> start(FakeHubFaults faults = {}, std::string token = "") {
    auto hub = std::make_unique<FakeHub>(
        std::vector<FakeHubRepo>{{"org/model", repo_dir_.string(), token}}, faults);
    opts_.endpoint = hub->endpoint();
    return hub;
  }
  fs::path repo_cache() const { return fs::path(opts_.cache_dir) / "models--org--model"; }

  fs::path root_, repo_dir_;
  std::string shard1_, shard2_;
  HubOptions opts_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// GET `target` from the hub at `endpoint` ("http://127.0.0.1:PORT"): status and body.
std::pair<int, std::string> http_get(const std::string& endpoint, const std::string& target) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  const std::string hostport = endpoint.substr(endpoint.find("//") + 2);
  const size_t colon = hostport.rfind(':');
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  stream.connect(resolver.resolve(hostport.substr(0, colon), hostport.substr(colon + 1)));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, hostport);
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  return {int(res.result_int()), res.body()};
}

}  // namespace

TEST(HubNames, ParsesOrgNameAndRevision) {
  auto n = parse_hub_name("Qwen/Qwen3-8B");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->repo, "Qwen/Qwen3-8B");
  EXPECT_EQ(n->revision, "main");
  n = parse_hub_name("meta-llama/Llama-3.1-8B-Instruct:v1.0");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->revision, "v1.0");
  EXPECT_EQ(n->str(), "meta-llama/Llama-3.1-8B-Instruct:v1.0");
  for (const char* bad : {"model", "a/b/c", "/abs/path", "./rel/dir", "a/", "/b", "a/b:", "a/..",
                          "../x", "a b/c", "org/name:../x", "ollama:qwen3:8b", "a/b.gguf:"})
    EXPECT_FALSE(parse_hub_name(bad)) << bad;
  EXPECT_EQ(repo_folder_name("org/name"), "models--org--name");
}

TEST(HubNames, AnExistingPathIsNotAHubName) {
  const fs::path tmp = fs::temp_directory_path() / ("inferd_hub_path_" + std::to_string(getpid()));
  fs::create_directories(tmp / "org" / "name");
  const fs::path cwd = fs::current_path();
  fs::current_path(tmp);
  EXPECT_FALSE(is_hub_name("org/name"));
  EXPECT_TRUE(is_hub_name("org/other"));
  fs::current_path(cwd);
  fs::remove_all(tmp);
}

TEST(HubNames, CacheDirFollowsHuggingFaceHubOrder) {
  setenv("HF_HUB_CACHE", "/x/hub-cache", 1);
  setenv("HF_HOME", "/y/hf-home", 1);
  EXPECT_EQ(hub_cache_dir(), "/x/hub-cache");
  unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(hub_cache_dir(), "/y/hf-home/hub");
  unsetenv("HF_HOME");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(hub_cache_dir(), "/home/u/.cache/huggingface/hub");
  setenv("HF_ENDPOINT", "http://mirror.local:8080/", 1);
  setenv("HF_TOKEN", "hf_env", 1);
  setenv("HF_HUB_OFFLINE", "1", 1);
  HubOptions o = options_from_env();
  EXPECT_EQ(o.endpoint, "http://mirror.local:8080");
  EXPECT_EQ(o.token, "hf_env");
  EXPECT_TRUE(o.offline);
  EXPECT_EQ(options_from_env("hf_flag").token, "hf_flag");
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_TOKEN");
  unsetenv("HF_HUB_OFFLINE");
  EXPECT_EQ(options_from_env().endpoint, "https://huggingface.co");
  // The token `hf auth login` stored, when HF_TOKEN is not set.
  const fs::path tok = fs::temp_directory_path() / ("inferd_hub_token_" + std::to_string(getpid()));
  write_file(tok, "hf_stored\n");
  setenv("HF_TOKEN_PATH", tok.c_str(), 1);
  EXPECT_EQ(options_from_env().token, "hf_stored");
  setenv("HF_TOKEN", "hf_env", 1);
  EXPECT_EQ(options_from_env().token, "hf_env");
  unsetenv("HF_TOKEN");
  unsetenv("HF_TOKEN_PATH");
  fs::remove(tok);
}

TEST(HubNames, OnlyServingFilesAreNeeded) {
  for (const char* f : {"model.safetensors", "model-00001-of-00004.safetensors", "config.json",
                        "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                        "generation_config.json", "chat_template.jinja", "special_tokens_map.json"})
    EXPECT_TRUE(is_needed_file(f)) << f;
  for (const char* f : {"pytorch_model.bin", "model.pt", "tf_model.h5", "onnx/model.onnx",
                        "model-q4.gguf", "README.md", ".gitattributes", "onnx/config.json"})
    EXPECT_FALSE(is_needed_file(f)) << f;
}

TEST_F(HubTest, PullWritesTheHuggingFaceCacheLayout) {
  auto hub = start();
  const std::string commit = hub->commit("org/model");
  const std::string snap = pull({"org/model"}, opts_);
  EXPECT_EQ(snap, (repo_cache() / "snapshots" / commit).string());
  EXPECT_EQ(read_file(repo_cache() / "refs" / "main"), commit);  // no newline, as huggingface_hub
  // LFS files are blobs named by their sha256, the others by their git blob id; the snapshot
  // holds relative links.
  const fs::path shard = fs::path(snap) / "model-00001-of-00002.safetensors";
  ASSERT_TRUE(fs::is_symlink(shard));
  const std::string target = fs::read_symlink(shard).string();
  EXPECT_EQ(target.rfind("../../blobs/", 0), 0u) << target;
  EXPECT_EQ(target.size(), 12u + 64u) << target;
  EXPECT_EQ(read_file(shard), shard1_);
  EXPECT_EQ(read_file(fs::path(snap) / "model-00002-of-00002.safetensors"), shard2_);
  const std::string cfg_target = fs::read_symlink(fs::path(snap) / "config.json").string();
  EXPECT_EQ(cfg_target.size(), 12u + 40u) << cfg_target;
  EXPECT_TRUE(fs::is_regular_file(repo_cache() / "blobs" / cfg_target.substr(12)));
  // Only what serving needs.
  for (const char* f : {"pytorch_model.bin", "onnx", "README.md"}) {
    EXPECT_FALSE(fs::exists(fs::path(snap) / f)) << f;
    EXPECT_EQ(count_requests(*hub, std::string("/") + f), 0) << f;
  }
  for (const auto& e : fs::directory_iterator(repo_cache() / "blobs"))
    EXPECT_NE(e.path().extension(), ".incomplete") << e.path();
  // A second pull asks for the file list only.
  const int before = count_requests(*hub, "/resolve/");
  EXPECT_EQ(pull({"org/model"}, opts_), snap);
  EXPECT_EQ(count_requests(*hub, "/resolve/"), before);
}

TEST_F(HubTest, ByCommitHashWritesNoRef) {
  auto hub = start();
  const std::string commit = hub->commit("org/model");
  const std::string snap = pull({"org/model", commit}, opts_);
  EXPECT_TRUE(fs::is_regular_file(fs::path(snap) / "config.json"));
  EXPECT_FALSE(fs::exists(repo_cache() / "refs" / commit));
  HubOptions off = opts_;
  off.offline = true;
  EXPECT_EQ(resolve({"org/model", commit}, off), snap);
}

TEST_F(HubTest, OfflineUsesTheCacheOnly) {
  auto hub = start();
  HubOptions off = opts_;
  off.offline = true;
  const std::string e = error_of([&] { resolve({"org/model"}, off); });
  EXPECT_NE(e.find("HF_HUB_OFFLINE"), std::string::npos) << e;
  EXPECT_NE(e.find(opts_.cache_dir), std::string::npos) << e;
  EXPECT_TRUE(hub->requests().empty());
  const std::string snap = pull({"org/model"}, opts_);
  const size_t n = hub->requests().size();
  EXPECT_EQ(resolve({"org/model"}, off), snap);
  EXPECT_EQ(hub->requests().size(), n);
}

TEST_F(HubTest, AnUnreachableHubFallsBackToTheCache) {
  auto hub = start();
  const std::string snap = pull({"org/model"}, opts_);
  opts_.endpoint = "http://127.0.0.1:1";
  EXPECT_EQ(resolve({"org/model"}, opts_), snap);
  const std::string e = error_of([&] { resolve({"org/other"}, opts_); });
  EXPECT_NE(e.find("cannot reach"), std::string::npos) << e;
  EXPECT_NE(e.find("http://127.0.0.1:1"), std::string::npos) << e;
}

TEST_F(HubTest, ADroppedConnectionIsResumed) {
  FakeHubFaults f;
  f.drop_file = "model-00001-of-00002.safetensors";
  auto hub = start(f);
  const std::string snap = pull({"org/model"}, opts_);
  EXPECT_EQ(read_file(fs::path(snap) / f.drop_file), shard1_);
  EXPECT_EQ(count_requests(*hub, "GET /blobs/", " range=bytes=750000-"), 1);
}

TEST_F(HubTest, AServerIgnoringRangesGetsTheWholeFileAgain) {
  FakeHubFaults f;
  f.drop_file = "model-00001-of-00002.safetensors";
  f.ignore_range = true;
  auto hub = start(f);
  const std::string snap = pull({"org/model"}, opts_);
  EXPECT_EQ(read_file(fs::path(snap) / f.drop_file), shard1_);
}

TEST_F(HubTest, APartialBlobIsResumed) {
  auto hub = start();
  HubOptions one = opts_;
  const std::string snap = pull({"org/model"}, one);
  const fs::path shard = fs::path(snap) / "model-00002-of-00002.safetensors";
  const fs::path blob = repo_cache() / "blobs" / fs::read_symlink(shard).filename();
  fs::remove_all(repo_cache() / "snapshots");
  fs::remove(blob);
  write_file(blob.string() + ".incomplete", shard2_.substr(0, 300000));
  EXPECT_EQ(read_file(fs::path(pull({"org/model"}, opts_)) / shard.filename()), shard2_);
  EXPECT_EQ(count_requests(*hub, "GET /blobs/", " range=bytes=300000-"), 1);
  EXPECT_FALSE(fs::exists(blob.string() + ".incomplete"));
}

TEST_F(HubTest, AChecksumMismatchIsCaughtAndTheBlobRemoved) {
  FakeHubFaults f;
  f.corrupt_file = "model-00002-of-00002.safetensors";
  auto hub = start(f);
  const std::string e = error_of([&] { pull({"org/model"}, opts_); });
  EXPECT_NE(e.find("checksum mismatch for model-00002-of-00002.safetensors"), std::string::npos)
      << e;
  EXPECT_NE(e.find("expected sha256 "), std::string::npos) << e;
  EXPECT_NE(e.find(", got "), std::string::npos) << e;
  for (const auto& b : fs::directory_iterator(repo_cache() / "blobs"))
    EXPECT_NE(fs::file_size(b.path()), shard2_.size()) << b.path();
  EXPECT_FALSE(fs::exists(repo_cache() / "refs" / "main"));
}

TEST_F(HubTest, ADiskTooSmallIsNamedBeforeAnythingIsWritten) {
  FakeHubFaults f;
  f.extra_size = uint64_t{1} << 60;  // an exabyte a file
  auto hub = start(f);
  const std::string e = error_of([&] { pull({"org/model"}, opts_); });
  EXPECT_NE(e.find("disk full: org/model needs"), std::string::npos) << e;
  EXPECT_NE(e.find("in the cache " + opts_.cache_dir), std::string::npos) << e;
  EXPECT_EQ(count_requests(*hub, "/resolve/"), 0);
}

TEST_F(HubTest, AGatedRepoNeedsItsToken) {
  auto hub = start({}, "hf_secret");
  std::string e = error_of([&] { pull({"org/model"}, opts_); });
  EXPECT_NE(e.find("accept its licence"), std::string::npos) << e;
  EXPECT_NE(e.find("HF_TOKEN"), std::string::npos) << e;
  EXPECT_NE(e.find("--hf-token"), std::string::npos) << e;
  opts_.token = "hf_wrong";
  e = error_of([&] { pull({"org/model"}, opts_); });
  EXPECT_NE(e.find("HTTP 401"), std::string::npos) << e;
  opts_.token = "hf_secret";
  EXPECT_EQ(read_file(fs::path(pull({"org/model"}, opts_)) / "model-00001-of-00002.safetensors"),
            shard1_);
}

TEST_F(HubTest, MissingReposAndRevisionsAreNamed) {
  auto hub = start();
  std::string e = error_of([&] { pull({"org/missing"}, opts_); });
  EXPECT_NE(e.find("repository org/missing"), std::string::npos) << e;
  EXPECT_NE(e.find("not found"), std::string::npos) << e;
  e = error_of([&] { pull({"org/model", "nope"}, opts_); });
  EXPECT_NE(e.find("revision 'nope' not found"), std::string::npos) << e;
}

TEST_F(HubTest, AMirrorWithoutBlobMetadataIsAskedPerFile) {
  FakeHubFaults f;
  f.blob_metadata = false;
  auto hub = start(f);
  const std::string snap = pull({"org/model"}, opts_);
  EXPECT_EQ(read_file(fs::path(snap) / "model-00001-of-00002.safetensors"), shard1_);
  EXPECT_EQ(fs::read_symlink(fs::path(snap) / "model-00001-of-00002.safetensors").string().size(),
            12u + 64u);
  EXPECT_GE(count_requests(*hub, "HEAD "), 6);
}

TEST_F(HubTest, ARepoWithoutSafetensorsIsRefused) {
  fs::remove(repo_dir_ / "model-00001-of-00002.safetensors");
  fs::remove(repo_dir_ / "model-00002-of-00002.safetensors");
  auto hub = start();
  const std::string e = error_of([&] { pull({"org/model"}, opts_); });
  EXPECT_NE(e.find("no *.safetensors weights"), std::string::npos) << e;
  EXPECT_NE(e.find("pytorch_model.bin"), std::string::npos) << e;
}

TEST_F(HubTest, ListAndRemove) {
  auto hub = start();
  EXPECT_TRUE(list_cached(opts_.cache_dir).empty());
  pull({"org/model"}, opts_);
  const auto repos = list_cached(opts_.cache_dir);
  ASSERT_EQ(repos.size(), 1u);
  EXPECT_EQ(repos[0].repo, "org/model");
  ASSERT_EQ(repos[0].refs.size(), 1u);
  EXPECT_EQ(repos[0].refs.at("main"), hub->commit("org/model"));
  EXPECT_EQ(repos[0].snapshots, std::vector<std::string>{hub->commit("org/model")});
  const uint64_t expect = shard1_.size() + shard2_.size() +
                          fs::file_size(repo_dir_ / "config.json") +
                          fs::file_size(repo_dir_ / "tokenizer.json") +
                          fs::file_size(repo_dir_ / "generation_config.json") +
                          fs::file_size(repo_dir_ / "model.safetensors.index.json");
  EXPECT_EQ(repos[0].size_bytes, expect);
  EXPECT_TRUE(remove_cached("org/model", opts_.cache_dir));
  EXPECT_FALSE(fs::exists(repo_cache()));
  EXPECT_FALSE(remove_cached("org/model", opts_.cache_dir));
  EXPECT_TRUE(list_cached(opts_.cache_dir).empty());
}

TEST_F(HubTest, ConfigOnlySkipsTheWeights) {
  auto hub = start();
  opts_.config_only = true;
  const std::string snap = pull({"org/model"}, opts_);
  EXPECT_TRUE(fs::is_regular_file(fs::path(snap) / "config.json"));
  EXPECT_TRUE(fs::is_regular_file(fs::path(snap) / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(fs::path(snap) / "model-00001-of-00002.safetensors"));
  EXPECT_EQ(count_requests(*hub, ".safetensors"), 0);
  opts_.config_only = false;  // the weights come when asked for
  EXPECT_EQ(read_file(fs::path(pull({"org/model"}, opts_)) / "model-00001-of-00002.safetensors"),
            shard1_);
}

TEST_F(HubTest, BlobsAreLockedAsHuggingFaceHubLocksThem) {
  auto hub = start();
  const std::string snap = pull({"org/model"}, opts_);
  const std::string blob =
      fs::read_symlink(fs::path(snap) / "model-00001-of-00002.safetensors").filename().string();
  EXPECT_TRUE(
      fs::exists(fs::path(opts_.cache_dir) / ".locks" / "models--org--model" / (blob + ".lock")));
}

namespace {

// Three shards of 1 MiB float tensors a, b, c with their index; returns the tensors' bytes.
std::vector<std::string> write_three_shards(const fs::path& dir) {
  std::vector<std::string> data;
  std::string map;
  for (int i = 0; i < 3; ++i) {
    const std::string name(1, char('a' + i));
    const std::string file = fmt::format("model-0000{}-of-00003.safetensors", i + 1);
    data.push_back(random_bytes(512 * 512 * 4, 10 + i));
    inferd::Tensor t = inferd::Tensor::empty_host(inferd::DType::kF32, {512, 512});
    std::memcpy(t.data(), data.back().data(), data.back().size());
    inferd::write_safetensors((dir / file).string(), {{name, t}});
    map += fmt::format("{}\"{}\": \"{}\"", i ? ", " : "", name, file);
  }
  fs::remove(dir / "model-00001-of-00002.safetensors");
  fs::remove(dir / "model-00002-of-00002.safetensors");
  write_file(dir / "model.safetensors.index.json", "{\"weight_map\": {" + map + "}}");
  return data;
}

std::string bytes_of(const inferd::Tensor& t) {
  return {static_cast<const char*>(t.data()), t.nbytes()};
}

}  // namespace

TEST_F(HubTest, ShardsLoadWhileLaterShardsDownload) {
  const std::vector<std::string> data = write_three_shards(repo_dir_);
  FakeHubFaults f;
  f.delay_ms["model-00003-of-00003.safetensors"] = 1500;  // half of it, then a pause
  auto hub = start(f);
  Resolved r = resolve_overlapped({"org/model"}, opts_);
  ASSERT_TRUE(r.pending);
  EXPECT_TRUE(fs::is_regular_file(fs::path(r.dir) / "config.json"));
  EXPECT_FALSE(fs::exists(repo_cache() / "refs" / "main"));  // written once the weights are in
  const std::shared_ptr<inferd::ArrivingFiles> arriving = inferd::arriving_files(r.dir);
  ASSERT_EQ(arriving, r.pending->arriving());
  const inferd::SafetensorsIndex idx = inferd::SafetensorsIndex::open_dir(r.dir);
  EXPECT_EQ(bytes_of(idx.get("a")), data[0]);
  EXPECT_EQ(bytes_of(idx.get("b")), data[1]);
  // Shards 1 and 2 were read while shard 3 was still on its way.
  std::vector<std::string> ev = arriving->events();
  const auto at = [&](const std::string& e) {
    return std::find(ev.begin(), ev.end(), e) - ev.begin();
  };
  EXPECT_LT(at("load model-00001-of-00003.safetensors"), std::ssize(ev));
  EXPECT_EQ(at("finished model-00003-of-00003.safetensors"), std::ssize(ev))
      << "shard 3 finished before shards 1 and 2 were read";
  EXPECT_EQ(bytes_of(idx.get("c")), data[2]);  // waits for its bytes
  inferd::wait_for_arriving_files(r.dir);
  ev = arriving->events();
  EXPECT_LT(at("load model-00001-of-00003.safetensors"),
            at("finished model-00003-of-00003.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(repo_cache() / "refs" / "main"));
  EXPECT_EQ(read_file(fs::path(r.dir) / "model-00003-of-00003.safetensors"),
            read_file(repo_dir_ / "model-00003-of-00003.safetensors"));
  r.pending.reset();
  EXPECT_EQ(inferd::arriving_files(r.dir), nullptr);
  // Everything in place: nothing is left pending.
  EXPECT_EQ(resolve_overlapped({"org/model"}, opts_).pending, nullptr);
}

TEST_F(HubTest, AChecksumFailureInALateShardFailsTheLoad) {
  write_three_shards(repo_dir_);
  FakeHubFaults f;
  f.corrupt_file = "model-00003-of-00003.safetensors";
  f.delay_ms[f.corrupt_file] = 500;
  auto hub = start(f);
  Resolved r = resolve_overlapped({"org/model"}, opts_);
  ASSERT_TRUE(r.pending);
  const std::string e = error_of([&] {
    const inferd::SafetensorsIndex idx = inferd::SafetensorsIndex::open_dir(r.dir);
    for (const char* t : {"a", "b", "c"}) idx.get(t);
    inferd::wait_for_arriving_files(r.dir);  // as LLM::load does before the model is used
  });
  EXPECT_NE(e.find("checksum mismatch for model-00003-of-00003.safetensors of org/model"),
            std::string::npos)
      << e;
  EXPECT_FALSE(fs::exists(repo_cache() / "refs" / "main"));
  EXPECT_FALSE(fs::exists(fs::path(r.dir) / "model-00003-of-00003.safetensors"));
  r.pending.reset();
  // The next start fetches the shard anew (the corrupt download was removed).
  hub.reset();
  hub = start();
  Resolved again = resolve_overlapped({"org/model"}, opts_);
  ASSERT_TRUE(again.pending);
  EXPECT_NO_THROW(again.pending->wait());
  EXPECT_EQ(read_file(fs::path(again.dir) / "model-00003-of-00003.safetensors"),
            read_file(repo_dir_ / "model-00003-of-00003.safetensors"));
}

// The weights come a few files at a time, in order; every shard's header is fetched first, so
// that the loader knows all tensors while shard 1 is still on its way.
TEST_F(HubTest, EveryShardsHeaderComesFirst) {
  const std::vector<std::string> data = write_three_shards(repo_dir_);
  FakeHubFaults f;
  f.delay_ms["model-00001-of-00003.safetensors"] = 1500;
  auto hub = start(f);
  opts_.weight_streams = 1;
  Resolved r = resolve_overlapped({"org/model"}, opts_);
  ASSERT_TRUE(r.pending);
  const inferd::SafetensorsIndex idx = inferd::SafetensorsIndex::open_dir(r.dir);
  EXPECT_EQ(idx.tensors().size(), 3u);
  EXPECT_EQ(idx.info("c").shape, (std::vector<int64_t>{512, 512}));
  const std::vector<std::string> ev = r.pending->arriving()->events();
  EXPECT_EQ(std::count(ev.begin(), ev.end(), "finished model-00001-of-00003.safetensors"), 0)
      << "shard 1 finished before the other shards' headers were known";
  EXPECT_EQ(bytes_of(idx.get("c")), data[2]);
  EXPECT_EQ(bytes_of(idx.get("a")), data[0]);
  EXPECT_NO_THROW(r.pending->wait());
  // Shard 3's rest was fetched from where its header ended.
  EXPECT_GE(count_requests(*hub, "GET /blobs/", " range=bytes="), 2);
}

// huggingface_hub's snapshot_download lists the files with list_repo_tree (GET
// /api/models/{repo}/tree/{rev}?recursive=True): the fake hub answers it as the hub does, so the
// GPU machine's cross-check (scripts/hub-gpu-check.sh, part a2) downloads from it.
TEST_F(HubTest, TheTreeRouteListsTheFilesAsTheHubDoes) {
  auto hub = start();
  const fs::path snap = pull({"org/model"}, opts_);
  auto [status, body] =
      http_get(hub->endpoint(), "/api/models/org/model/tree/main?recursive=True&expand=False");
  ASSERT_EQ(status, 200) << body;
  const nlohmann::json tree = nlohmann::json::parse(body);
  ASSERT_TRUE(tree.is_array());
  std::map<std::string, nlohmann::json> by_path;
  for (const auto& e : tree) {
    EXPECT_EQ(e.at("type"), "file");
    EXPECT_EQ(e.at("oid").get<std::string>().size(), 40u);
    by_path[e.at("path").get<std::string>()] = e;
  }
  EXPECT_EQ(by_path.size(), 9u);  // every file of the repo, onnx/model.onnx included
  ASSERT_TRUE(by_path.count("onnx/model.onnx"));
  const nlohmann::json& shard = by_path.at("model-00001-of-00002.safetensors");
  EXPECT_EQ(shard.at("size").get<size_t>(), shard1_.size());
  ASSERT_TRUE(shard.contains("lfs"));
  // The LFS oid is the sha256 the blob is stored under in the cache.
  const std::string sha = shard.at("lfs").at("oid").get<std::string>();
  EXPECT_TRUE(fs::exists(repo_cache() / "blobs" / sha)) << sha;
  EXPECT_EQ(read_file(repo_cache() / "blobs" / sha), shard1_);
  EXPECT_FALSE(by_path.at("config.json").contains("lfs"));
  // A folder lists what is under it; a wrong revision or repository is a 404.
  std::tie(status, body) = http_get(hub->endpoint(), "/api/models/org/model/tree/main/onnx");
  ASSERT_EQ(status, 200) << body;
  EXPECT_EQ(nlohmann::json::parse(body).size(), 1u);
  EXPECT_EQ(http_get(hub->endpoint(), "/api/models/org/model/tree/nope").first, 404);
  EXPECT_EQ(http_get(hub->endpoint(), "/api/models/org/missing/tree/main").first, 404);
  (void)snap;
}
