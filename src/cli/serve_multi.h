// `inferd serve --model A --model B ...` / `--models FILE`: several models in one server
// (cmd_serve_multi.cc; docs/multi-model.md). The serve process becomes a router front whose
// replicas are child `inferd serve` processes, one a loaded model, started on a model's first
// request and stopped when idle or when another model needs the memory (router/model_manager.h).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace inferd::cli {

struct MultiServeFlags {
  std::vector<std::string> models;  // --model (repeated): PATH or NAME=PATH
  std::string models_file;          // --models FILE
  std::string memory_budget;        // --memory-budget: bytes or a size ("40GiB"); "": derived
  double load_timeout_s = 600;      // --model-load-timeout
  double idle_unload_s = 300;       // --idle-unload-seconds (<= 0: never)

  // Several models (more than one --model, or --models): the multi-model server.
  bool active() const { return models.size() > 1 || !models_file.empty(); }
  void add_to(CLI::App* cmd);
};

// What the front takes from serve's own flags.
struct MultiServeFront {
  std::string host;
  int port = 8000;
  std::vector<std::string> api_keys;
  std::vector<std::string> allowed_origins;
  int64_t rate_limit_rpm = 0, rate_limit_tpm = 0, max_concurrent_per_key = 0;
  HttpFlags http;
};

// Runs the multi-model server until SIGTERM / SIGINT. `cmd`: the serve command, whose other flags
// given on the command line are passed to every model's process.
void serve_multi(const MultiServeFlags& flags, const MultiServeFront& front, const CLI::App& cmd);

}  // namespace inferd::cli
