// fake_hub: the local stand-in for the Hugging Face hub (fake_hub.h) as a program, for
// scripts/hub-gpu-check.sh: `fake_hub --dir D --repo org/name [--port P] [--token T]` serves D as
// org/name on 127.0.0.1:P (0: any free port), prints "fake_hub: listening on http://127.0.0.1:P
// (org/name at COMMIT)" and runs until SIGINT or SIGTERM.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>

#include "fake_hub.h"

int main(int argc, char** argv) {
  CLI::App app{"fake_hub: a local Hugging Face hub serving one repo from a directory"};
  inferd::testing::FakeHubRepo repo;
  inferd::testing::FakeHubFaults faults;
  int port = 0;
  app.add_option("--dir", repo.dir, "The repo's files")->required()->check(CLI::ExistingDirectory);
  app.add_option("--repo", repo.repo, "Its name, org/name")->required();
  app.add_option("--port", port, "Port on 127.0.0.1 (0: any free one)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--token", repo.token, "Gate the repo: requests need this bearer token");
  app.add_option("--drop-file", faults.drop_file, "Drop the first full GET of this file mid-body");
  app.add_option("--corrupt-file", faults.corrupt_file, "Serve this file with one byte flipped");
  CLI11_PARSE(app, argc, argv);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // the server's threads inherit the mask
  try {
    inferd::testing::FakeHub hub({repo}, faults, static_cast<uint16_t>(port));
    std::printf("fake_hub: listening on %s (%s at %s)\n", hub.endpoint().c_str(), repo.repo.c_str(),
                hub.commit(repo.repo).c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    hub.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake_hub: %s\n", e.what());
    return 1;
  }
  return 0;
}
