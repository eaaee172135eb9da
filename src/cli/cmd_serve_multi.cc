// `inferd serve` with several models (serve_multi.h): its flags, the models and their flags, each
// model's memory need, and the router front over the model manager's child processes.
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>

#include "cli/serve_multi.h"
#include "core/error.h"
#include "core/logging.h"
#include "router/model_manager.h"
#include "router/models_config.h"
#include "router/router.h"
#include "server/http.h"

namespace inferd::cli {

namespace {

using router::FlagValue;

// Serve flags the front keeps for itself: never passed to a model's process.
const std::set<std::string>& front_only_flags() {
  static const std::set<std::string> kFlags = {"model",
                                               "models",
                                               "memory-budget",
                                               "model-load-timeout",
                                               "idle-unload-seconds",
                                               "host",
                                               "port",
                                               "api-key",
                                               "api-key-file",
                                               "allowed-origins",
                                               "rate-limit-rpm",
                                               "rate-limit-tpm",
                                               "max-concurrent-requests-per-key",
                                               "served-model-name",
                                               "help"};
  return kFlags;
}

// The serve flags given on the command line, for every model's process.
std::vector<FlagValue> shared_flags(const CLI::App& cmd) {
  std::vector<FlagValue> out;
  for (const CLI::Option* o : cmd.get_options()) {
    if (o->count() == 0 || o->get_lnames().empty()) continue;
    const std::string& name = o->get_lnames().front();
    if (front_only_flags().count(name)) continue;
    for (const std::string& r : o->results()) out.emplace_back(name, r);
  }
  return out;
}

std::string random_key() {
  std::random_device rd;
  std::string key = "inferd-internal-";
  for (int i = 0; i < 4; ++i) key += fmt::format("{:08x}", rd());
  return key;
}

std::vector<router::ModelEntry> read_models(const MultiServeFlags& f, const CLI::App& cmd) {
  if (const CLI::Option* pos = cmd.get_option_no_throw("model_tag"); pos && pos->count() > 0)
    fail(
        "serve: with several models give every one with --model (or in --models), not as the "
        "positional argument");
  if (const CLI::Option* o = cmd.get_option_no_throw("--served-model-name"); o && o->count() > 0)
    fail(
        "--served-model-name: with several models name each with --model NAME=PATH, or with "
        "\"name\" and \"aliases\" in --models");
  if (f.models_file.empty()) {
    std::vector<router::ModelEntry> out;
    for (const auto& m : f.models) out.push_back(router::model_from_flag(m));
    return out;
  }
  if (!f.models.empty()) fail("serve: give the models with --model or with --models, not both");
  std::ifstream in(f.models_file);
  if (!in) fail("--models: cannot read '{}'", f.models_file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  auto known = [&cmd](const std::string& flag) {
    return !front_only_flags().count(flag) && cmd.get_option_no_throw("--" + flag) != nullptr;
  };
  return router::parse_models_file(text, f.models_file, known);
}

std::shared_ptr<router::ModelManager> make_manager(const MultiServeFlags& f, const CLI::App& cmd,
                                                   const std::string& key) {
  std::vector<router::ModelEntry> entries = read_models(f, cmd);
  router::check_models(entries);
  const std::vector<FlagValue> shared = shared_flags(cmd);
  const router::MachineMemory mm = router::probe_machine_memory();
  router::ModelManagerConfig mc;
  bool any_gpu = false;
  for (const router::ModelEntry& e : entries) {
    const std::vector<FlagValue> flags = router::merge_flags(shared, e.flags);
    router::ModelSpec s;
    s.name = e.name;
    s.aliases = e.aliases;
    s.path = e.path;
    s.args = router::to_args(flags);
    std::string how;
    s.need_bytes = router::estimate_need_bytes(e, flags, mm, &how);
    any_gpu = any_gpu || router::runs_on_gpu(flags, mm);
    LOG_INFO("model {}: {} needs about {:.2f} GiB ({}); flags: {}", s.name, s.path,
             double(s.need_bytes) / double(1ll << 30), how, fmt::join(s.args, " "));
    std::error_code ec;
    const bool local = s.path.rfind('/', 0) == 0 || s.path.rfind('.', 0) == 0;
    if (local && !std::filesystem::exists(s.path, ec))
      LOG_WARN("model {}: '{}' does not exist; its requests will fail until it does", s.name,
               s.path);
    mc.models.push_back(std::move(s));
  }
  mc.memory_budget_bytes = f.memory_budget.empty()
                               ? router::default_memory_budget(any_gpu, mm)
                               : router::parse_memory_size(f.memory_budget, "--memory-budget");
  mc.idle_unload_s = f.idle_unload_s;
  mc.load_timeout_s = f.load_timeout_s;
  mc.api_key = key;
  return std::make_shared<router::ModelManager>(std::move(mc));
}

}  // namespace

void MultiServeFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--model", models,
                  "Several models in one server: repeat --model PATH or NAME=PATH (a directory, "
                  "GGUF file or ollama:NAME); each is loaded on its first request within "
                  "--memory-budget. One --model alone is the same as the model argument");
  cmd->add_option("--models", models_file,
                  "Several models from a YAML (.yaml, .yml) or JSON file: {\"models\": [{\"name\": "
                  "N, \"model\": PATH, "
                  "\"aliases\": [...], \"memory\": \"20GiB\", <serve flag>: value, ...}]} "
                  "(docs/multi-model.md)");
  cmd->add_option("--memory-budget", memory_budget,
                  "With several models: the memory the loaded models may take together, bytes "
                  "or a size (40GiB, 40GB); default: the GPU's memory, else 90 % of the host's");
  cmd->add_option("--model-load-timeout", load_timeout_s,
                  "With several models: seconds a request waits for its model to load; then 503 "
                  "naming the model")
      ->capture_default_str();
  cmd->add_option("--idle-unload-seconds", idle_unload_s,
                  "With several models: unload a model idle this long (a request's keep_alive "
                  "overrides it; 0 or negative: never)")
      ->capture_default_str();
}

void serve_multi(const MultiServeFlags& f, const MultiServeFront& fr, const CLI::App& cmd) {
  if (fr.port < 0 || fr.port > 65535) fail("--port must be in [0, 65535], got {}", fr.port);
  const std::string key = random_key();
  router::RouterConfig c;
  c.models = make_manager(f, cmd, key);
  const sigset_t sigs = prepare_process();

  auto ms = [](double s) { return std::chrono::milliseconds(int64_t(s * 1000)); };
  c.http.host = fr.host;
  c.http.port = uint16_t(fr.port);
  c.http.io_threads = fr.http.io_threads;
  c.http.max_body_bytes = fr.http.max_request_body_bytes;
  c.http.keep_alive_timeout = ms(std::max(0.001, fr.http.keep_alive_timeout));
  fr.http.apply_read_timeouts(c.http);
  c.api_keys = fr.api_keys;
  c.allowed_origins = split_commas(fr.allowed_origins);
  c.rate_limit_rpm = fr.rate_limit_rpm;
  c.rate_limit_tpm = fr.rate_limit_tpm;
  c.max_concurrent_per_key = fr.max_concurrent_per_key;
  c.drain_timeout_s = fr.http.drain_timeout;
  // The children are ours: only a key we made reaches them, and a busy one is not taken out of
  // rotation by one slow health check (the manager sees it exit).
  c.backend_api_key = key;
  c.health_check.api_key = key;
  c.health_check.timeout = std::chrono::milliseconds(5000);
  c.health.failures_to_remove = 5;
  c.max_retries = 0;
  const router::ModelManager& mgr = *c.models;
  router::Router r(c);
  r.start();
  LOG_INFO(
      "ready: {} models on demand ({}), memory budget {:.2f} GiB, idle unload {}; "
      "http://{}:{}",
      mgr.names().size(), fmt::join(mgr.names(), ", "),
      double(mgr.budget_bytes()) / double(1ll << 30),
      f.idle_unload_s > 0 ? fmt::format("after {:g} s", f.idle_unload_s) : "never", fr.host,
      r.port());
  int sig = 0;
  sigwait(&sigs, &sig);
  LOG_INFO("received {}: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  r.drain_and_stop();
}

}  // namespace inferd::cli
