// `inferd pull NAME`, `inferd ls`, `inferd rm NAME`: models by Hugging Face hub name in the HF
// cache (src/hub), as `ollama pull|ls|rm` are for Ollama's store.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "hub/hub.h"

namespace inferd::cli {

namespace {

hub::HubName parse_name(const std::string& s) {
  auto n = hub::parse_hub_name(s);
  if (!n) fail("'{}' is not a hub name: expected org/name[:revision], e.g. Qwen/Qwen3-8B", s);
  return *n;
}

std::string size_text(uint64_t b) {
  const double v = static_cast<double>(b);
  if (b >= 1000000000ull) return fmt::format("{:.1f} GB", v / 1e9);
  if (b >= 1000000ull) return fmt::format("{:.1f} MB", v / 1e6);
  if (b >= 1000ull) return fmt::format("{:.1f} kB", v / 1e3);
  return fmt::format("{} B", b);
}

void list(const std::string& cache_dir) {
  const auto repos = hub::list_cached(cache_dir);
  if (repos.empty()) {
    std::printf("no models in the Hugging Face cache %s\n", cache_dir.c_str());
    return;
  }
  size_t w = 4;
  for (const auto& r : repos) w = std::max(w, r.repo.size());
  std::printf("%-*s  %-9s  %s\n", static_cast<int>(w), "NAME", "SIZE", "REVISIONS");
  for (const auto& r : repos) {
    std::string revs;
    for (const auto& [rev, commit] : r.refs)
      revs += (revs.empty() ? "" : ", ") + rev + " (" + commit.substr(0, 8) + ")";
    for (const std::string& s : r.snapshots) {
      bool named = false;
      for (const auto& ref : r.refs) named = named || ref.second == s;
      if (!named) revs += (revs.empty() ? "" : ", ") + s.substr(0, 8);
    }
    std::printf("%-*s  %-9s  %s\n", static_cast<int>(w), r.repo.c_str(),
                size_text(r.size_bytes).c_str(), revs.empty() ? "-" : revs.c_str());
  }
}

void remove(const std::string& name, bool yes, const std::string& cache_dir) {
  const hub::HubName n = parse_name(name);
  if (name.find(':') != std::string::npos)
    fail("inferd rm removes a whole repo from the cache: give org/name without ':{}'", n.revision);
  uint64_t size = 0;
  bool found = false;
  for (const auto& r : hub::list_cached(cache_dir)) {
    if (r.repo != n.repo) continue;
    found = true;
    size = r.size_bytes;
  }
  if (!found) fail("{} is not in the Hugging Face cache {}", n.repo, cache_dir);
  if (!yes) {
    if (isatty(STDIN_FILENO) == 0)
      fail("inferd rm {}: stdin is not a terminal to confirm on; give -y to remove without asking",
           n.repo);
    std::printf("Remove %s (%s) from %s? [y/N] ", n.repo.c_str(), size_text(size).c_str(),
                cache_dir.c_str());
    std::fflush(stdout);
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      std::printf("kept %s\n", n.repo.c_str());
      return;
    }
  }
  hub::remove_cached(n.repo, cache_dir);
  std::printf("removed %s (%s)\n", n.repo.c_str(), size_text(size).c_str());
}

}  // namespace

void register_hub_commands(CLI::App& app) {
  struct Args {
    std::string name, token;
    bool yes = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* pull = app.add_subcommand(
      "pull",
      "Download a model by hub name (org/name[:revision]) into the Hugging Face cache "
      "($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub); prints its snapshot directory");
  pull->add_option("name", a->name, "org/name[:revision]")->required();
  pull->add_option("--hf-token", a->token,
                   "Token for gated or private models (default: $HF_TOKEN)");
  pull->callback([a] {
    const hub::HubName n = parse_name(a->name);
    std::printf("%s\n", hub::pull(n, hub::options_from_env(a->token)).c_str());
  });
  CLI::App* ls = app.add_subcommand("ls", "List the models in the Hugging Face cache with sizes");
  ls->callback([] { list(hub::hub_cache_dir()); });
  CLI::App* rm = app.add_subcommand("rm", "Remove a model (org/name) from the Hugging Face cache");
  rm->add_option("name", a->name, "org/name")->required();
  rm->add_flag("-y,--yes", a->yes, "Remove without asking");
  rm->callback([a] { remove(a->name, a->yes, hub::hub_cache_dir()); });
}

}  // namespace inferd::cli
