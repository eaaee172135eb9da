// ModelManager: leases, the manager thread's steps (load, probe, reap, expire, evict) and the
// states it reports; keep_alive parsing (Go's time.ParseDuration grammar, as Ollama reads it).
#include "router/model_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/logging.h"
#include "router/child_process.h"
#include "server/metrics.h"

namespace inferd::router {

namespace {

double gib(int64_t bytes) {
  return double(bytes) / double(1ll << 30);
}

}  // namespace

const char* to_string(ModelState s) {
  switch (s) {
    case ModelState::kUnloaded:
      return "unloaded";
    case ModelState::kLoading:
      return "loading";
    case ModelState::kLoaded:
      return "loaded";
    case ModelState::kUnloading:
      return "unloading";
  }
  return "unloaded";
}

struct ModelManager::Entry {
  ModelSpec spec;
  ModelState state = ModelState::kUnloaded;
  std::unique_ptr<ChildProcess> child;
  uint16_t port = 0;
  bool probed_ready = false;  // set by the probe (outside the lock), applied by tick()
  bool port_retried = false;  // this load was started again after its port was taken
  int64_t in_flight = 0;      // leases held
  int64_t waiting_new = 0;    // leases taken since the last failed load: they want a load
  uint64_t failures = 0;      // failed loads so far (a lease's epoch)
  Clock::time_point last_used = Clock::now();
  std::optional<double> keep_alive_s;  // the last request's; nullopt: the default
  Clock::time_point load_started, stop_started;
  std::string last_error;
  std::string pending_why;  // why a wanted load has not started
  double last_load_s = 0;
  int64_t loads = 0, load_failures = 0;
  std::map<std::string, int64_t> unloads;
};

ModelManager::ModelManager(ModelManagerConfig config) : config_(std::move(config)) {
  if (config_.models.empty()) fail("multi-model serving: no models configured");
  if (config_.memory_budget_bytes <= 0)
    fail("--memory-budget must be positive, got {} bytes", config_.memory_budget_bytes);
  if (!(config_.load_timeout_s > 0))
    fail("--model-load-timeout must be positive, got {}", config_.load_timeout_s);
  if (config_.executable.empty()) config_.executable = "/proc/self/exe";
  for (const ModelSpec& s : config_.models) {
    if (s.name.empty()) fail("multi-model serving: a model without a name (path '{}')", s.path);
    for (const std::string& n : [&] {
           std::vector<std::string> all{s.name};
           all.insert(all.end(), s.aliases.begin(), s.aliases.end());
           return all;
         }()) {
      if (!alias_to_name_.emplace(n, s.name).second)
        fail("multi-model serving: the name '{}' is given to two models", n);
    }
    auto e = std::make_unique<Entry>();
    e->spec = s;
    entries_.push_back(std::move(e));
  }
}

ModelManager::~ModelManager() {
  stop();
}

void ModelManager::set_on_change(OnChange f) {
  std::lock_guard lk(mu_);
  on_change_ = std::move(f);
}

void ModelManager::start() {
  std::lock_guard lk(mu_);
  if (started_) return;
  started_ = true;
  thread_ = std::thread([this] { run(); });
}

void ModelManager::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lk(mu_);
  for (auto& e : entries_)
    if (e->child) {
      e->child->terminate();
      if (e->state == ModelState::kLoaded) e->unloads["shutdown"]++;
    }
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(config_.stop_timeout_s));
  for (auto& e : entries_) {
    if (!e->child) continue;
    while (!e->child->poll_exit() && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    e->child.reset();  // SIGKILL when still running
    e->state = ModelState::kUnloaded;
  }
}

std::optional<std::string> ModelManager::resolve(const std::string& model) const {
  auto it = alias_to_name_.find(model);
  if (it == alias_to_name_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ModelManager::names() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e->spec.name);
  return out;
}

ModelManager::Entry* ModelManager::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e->spec.name == name) return e.get();
  return nullptr;
}

ModelManager::Lease& ModelManager::Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    if (mgr_) mgr_->release(model_, epoch_, keep_alive_s);
    mgr_ = std::exchange(o.mgr_, nullptr);
    model_ = std::move(o.model_);
    epoch_ = o.epoch_;
    keep_alive_s = o.keep_alive_s;
  }
  return *this;
}

ModelManager::Lease::~Lease() {
  if (mgr_) mgr_->release(model_, epoch_, keep_alive_s);
}

ModelManager::Lease ModelManager::acquire(const std::string& model,
                                          std::optional<double> keep_alive_s) {
  Lease l;
  {
    std::lock_guard lk(mu_);
    Entry* e = find(model);
    INFERD_CHECK(e != nullptr, "acquire of an unknown model '{}'", model);
    e->in_flight++;
    e->waiting_new++;
    e->last_used = Clock::now();
    l.mgr_ = this;
    l.model_ = model;
    l.epoch_ = e->failures;
    l.keep_alive_s = keep_alive_s;
  }
  cv_.notify_all();
  return l;
}

void ModelManager::release(const std::string& model, uint64_t epoch,
                           std::optional<double> keep_alive_s) {
  {
    std::lock_guard lk(mu_);
    Entry* e = find(model);
    if (e == nullptr) return;
    e->in_flight--;
    // A lease of the current epoch counts in waiting_new (a failed load resets it to 0).
    if (epoch == e->failures && e->waiting_new > 0) e->waiting_new--;
    e->keep_alive_s = keep_alive_s;
    e->last_used = Clock::now();
  }
  cv_.notify_all();
}

ModelManager::Wait ModelManager::poll(const Lease& lease) const {
  std::lock_guard lk(mu_);
  const Entry* e = find(lease.model_);
  if (e == nullptr) return {Wait::kFailed, "unknown model"};
  if (lease.epoch_ < e->failures) return {Wait::kFailed, e->last_error};
  switch (e->state) {
    case ModelState::kLoaded:
      return {Wait::kReady, ""};
    case ModelState::kLoading:
      return {Wait::kPending,
              fmt::format("it is still loading ({:.1f} s so far)",
                          std::chrono::duration<double>(Clock::now() - e->load_started).count())};
    case ModelState::kUnloading:
      return {Wait::kPending, "its previous process is still stopping"};
    case ModelState::kUnloaded:
      break;
  }
  return {Wait::kPending, e->pending_why.empty() ? "it is waiting to load" : e->pending_why};
}

void ModelManager::run() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    // Probe the loading children without the lock (a probe may take half a second).
    std::vector<std::pair<Entry*, uint16_t>> probes;
    for (auto& e : entries_)
      if (e->state == ModelState::kLoading && !e->probed_ready)
        probes.emplace_back(e.get(), e->port);
    if (!probes.empty()) {
      lk.unlock();
      std::vector<Entry*> ready;
      for (auto& [e, port] : probes)
        if (probe_ready(port)) ready.push_back(e);
      lk.lock();
      for (Entry* e : ready)
        if (e->state == ModelState::kLoading) e->probed_ready = true;
    }
    tick();
    cv_.wait_for(lk, config_.tick);
  }
}

void ModelManager::tick() {
  for (auto& e : entries_) {
    switch (e->state) {
      case ModelState::kLoading:
        step_loading(*e);
        break;
      case ModelState::kLoaded:
        step_loaded(*e);
        break;
      case ModelState::kUnloading:
        step_unloading(*e);
        break;
      case ModelState::kUnloaded:
        break;
    }
  }
  schedule_loads();
}

void ModelManager::step_loading(Entry& e) {
  if (auto st = e.child->poll_exit()) {
    const std::string line = e.child->last_error_line();
    // Its port taken meanwhile by another process (free_loopback_port's race): once more.
    if (line.find("cannot listen on") != std::string::npos && !e.port_retried) {
      LOG_WARN("model {}: port {} was taken; starting again on another", e.spec.name, e.port);
      e.port_retried = true;
      e.child.reset();
      start_load(e);
      return;
    }
    fail_load(e, fmt::format("its process exited with status {} while loading{}{}", *st,
                             line.empty() ? "" : ": ", line));
    return;
  }
  const double took = std::chrono::duration<double>(Clock::now() - e.load_started).count();
  if (e.probed_ready) {
    e.state = ModelState::kLoaded;
    e.loads++;
    e.last_load_s = took;
    e.last_error.clear();
    e.last_used = Clock::now();
    LOG_INFO("model {}: loaded in {:.2f} s (port {}, pid {}, estimated {:.2f} GiB)", e.spec.name,
             took, e.port, e.child->pid(), gib(e.spec.need_bytes));
    notify_change();
    return;
  }
  if (took > config_.load_timeout_s)
    fail_load(e, fmt::format("it was not ready after {:.0f} s (--model-load-timeout)", took));
}

void ModelManager::step_loaded(Entry& e) {
  if (auto st = e.child->poll_exit()) {
    const std::string line = e.child->last_error_line();
    e.last_error =
        fmt::format("its process exited with status {}{}{}", *st, line.empty() ? "" : ": ", line);
    LOG_ERROR("model {}: {}", e.spec.name, e.last_error);
    e.unloads["exited"]++;
    e.child.reset();
    e.state = ModelState::kUnloaded;
    e.port = 0;
    notify_change();
    return;
  }
  if (e.in_flight > 0) return;
  const double keep =
      e.keep_alive_s.value_or(config_.idle_unload_s > 0 ? config_.idle_unload_s : -1.0);
  if (keep < 0) return;
  const double idle = std::chrono::duration<double>(Clock::now() - e.last_used).count();
  if (idle >= keep) begin_unload(e, e.keep_alive_s ? "keep_alive" : "idle");
}

void ModelManager::step_unloading(Entry& e) {
  if (e.child->poll_exit()) {
    LOG_INFO("model {}: unloaded", e.spec.name);
    e.child.reset();
    e.state = ModelState::kUnloaded;
    e.port = 0;
    return;
  }
  if (std::chrono::duration<double>(Clock::now() - e.stop_started).count() > config_.stop_timeout_s)
    e.child->kill();
}

void ModelManager::begin_unload(Entry& e, const char* reason) {
  LOG_INFO("model {}: unloading ({})", e.spec.name, reason);
  e.state = ModelState::kUnloading;
  e.unloads[reason]++;
  e.stop_started = Clock::now();
  notify_change();  // out of the router's table before the process stops
  e.child->terminate();
}

void ModelManager::fail_load(Entry& e, const std::string& why) {
  e.last_error = why;
  e.failures++;
  e.waiting_new = 0;
  e.load_failures++;
  e.child.reset();  // killed when still running
  e.state = ModelState::kUnloaded;
  e.port = 0;
  LOG_ERROR("model {}: load failed: {}", e.spec.name, why);
}

int64_t ModelManager::reserved_bytes() const {
  int64_t n = 0;
  for (const auto& e : entries_)
    if (e->state != ModelState::kUnloaded) n += e->spec.need_bytes;
  return n;
}

std::string ModelManager::holders() const {
  std::string out;
  for (const auto& e : entries_) {
    if (e->state == ModelState::kUnloaded) continue;
    out += fmt::format("{}{} ({:.2f} GiB, {}, {} request(s) in flight)", out.empty() ? "" : "; ",
                       e->spec.name, gib(e->spec.need_bytes), to_string(e->state), e->in_flight);
  }
  return out;
}

void ModelManager::schedule_loads() {
  for (auto& ep : entries_) {
    Entry& e = *ep;
    if (e.state != ModelState::kUnloaded || e.waiting_new <= 0) continue;
    const int64_t budget = config_.memory_budget_bytes;
    if (e.spec.need_bytes > budget) {
      fail_load(e, fmt::format("it needs about {:.2f} GiB, more than the whole --memory-budget "
                               "of {:.2f} GiB",
                               gib(e.spec.need_bytes), gib(budget)));
      continue;
    }
    int64_t after = 0;  // what stays reserved once the unloads under way end
    for (const auto& o : entries_)
      if (o->state == ModelState::kLoading || o->state == ModelState::kLoaded)
        after += o->spec.need_bytes;
    if (reserved_bytes() + e.spec.need_bytes <= budget) {
      start_load(e);
      continue;
    }
    while (after + e.spec.need_bytes > budget) {
      Entry* victim = nullptr;
      for (auto& o : entries_)
        if (o->state == ModelState::kLoaded && o->in_flight == 0 &&
            (victim == nullptr || o->last_used < victim->last_used))
          victim = o.get();
      if (victim == nullptr) break;
      begin_unload(*victim, "lru");
      after -= victim->spec.need_bytes;
    }
    e.pending_why =
        after + e.spec.need_bytes <= budget
            ? "it waits for the least recently used idle model(s) to unload"
            : fmt::format(
                  "it needs {:.2f} GiB and the --memory-budget of {:.2f} GiB is held by "
                  "models that are busy or loading: {}",
                  gib(e.spec.need_bytes), gib(budget), holders());
  }
}

void ModelManager::start_load(Entry& e) {
  e.pending_why.clear();
  try {
    e.port = free_loopback_port();
    std::vector<std::string> argv{config_.executable,
                                  "serve",
                                  e.spec.path,
                                  "--host",
                                  "127.0.0.1",
                                  "--port",
                                  std::to_string(e.port),
                                  "--served-model-name",
                                  e.spec.name};
    argv.insert(argv.end(), e.spec.args.begin(), e.spec.args.end());
    std::vector<std::string> env;
    if (!config_.api_key.empty()) env.push_back("INFERD_API_KEY=" + config_.api_key);
    e.child = std::make_unique<ChildProcess>(argv, env, e.spec.name);
  } catch (const Error& err) {
    fail_load(e, err.what());
    return;
  }
  if (e.state != ModelState::kLoading) {  // a new load, not the retry of one
    e.port_retried = false;
    e.load_started = Clock::now();
  }
  e.state = ModelState::kLoading;
  e.probed_ready = false;
  LOG_INFO("model {}: loading {} (pid {}, port {}, estimated {:.2f} GiB of the {:.2f} GiB budget)",
           e.spec.name, e.spec.path, e.child->pid(), e.port, gib(e.spec.need_bytes),
           gib(config_.memory_budget_bytes));
}

void ModelManager::notify_change() {
  if (!on_change_) return;
  std::map<std::string, std::string> loaded;
  for (const auto& e : entries_)
    if (e->state == ModelState::kLoaded)
      loaded[e->spec.name] = fmt::format("http://127.0.0.1:{}", e->port);
  on_change_(loaded);
}

std::vector<ModelStatus> ModelManager::status() const {
  std::lock_guard lk(mu_);
  std::vector<ModelStatus> out;
  const auto now = Clock::now();
  for (const auto& e : entries_) {
    ModelStatus s;
    s.name = e->spec.name;
    s.aliases = e->spec.aliases;
    s.path = e->spec.path;
    s.state = e->state;
    s.need_bytes = e->spec.need_bytes;
    s.in_flight = e->in_flight;
    s.port = e->port;
    s.pid = e->child ? e->child->pid() : -1;
    s.last_error = e->last_error;
    s.last_load_s = e->last_load_s;
    s.loads = e->loads;
    s.load_failures = e->load_failures;
    s.unloads = e->unloads;
    if (e->state == ModelState::kLoaded && e->in_flight == 0) {
      const double keep =
          e->keep_alive_s.value_or(config_.idle_unload_s > 0 ? config_.idle_unload_s : -1.0);
      if (keep >= 0)
        s.expires_in_s =
            std::max(0.0, keep - std::chrono::duration<double>(now - e->last_used).count());
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string ModelManager::render_metrics() const {
  const std::vector<ModelStatus> all = status();
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto label = [](const ModelStatus& s) {
    return fmt::format("model_name=\"{}\"", server::prom_label(s.name));
  };
  family("inferd:model_state", "gauge", "Each configured model's state (1: the current one).");
  for (const auto& s : all)
    for (ModelState st :
         {ModelState::kUnloaded, ModelState::kLoading, ModelState::kLoaded, ModelState::kUnloading})
      out += fmt::format("inferd:model_state{{{},state=\"{}\"}} {}\n", label(s), to_string(st),
                         s.state == st ? 1 : 0);
  family("inferd:model_requests_in_flight", "gauge",
         "Requests holding the model (waiting for its load or running).");
  for (const auto& s : all)
    out += fmt::format("inferd:model_requests_in_flight{{{}}} {}\n", label(s), s.in_flight);
  family("inferd:model_memory_estimate_bytes", "gauge",
         "Memory the model takes once loaded, as estimated before loading.");
  for (const auto& s : all)
    out += fmt::format("inferd:model_memory_estimate_bytes{{{}}} {}\n", label(s), s.need_bytes);
  family("inferd:model_loads_total", "counter", "Loads that ended ready.");
  for (const auto& s : all)
    out += fmt::format("inferd:model_loads_total{{{}}} {}\n", label(s), s.loads);
  family("inferd:model_load_failures_total", "counter", "Loads that failed.");
  for (const auto& s : all)
    out += fmt::format("inferd:model_load_failures_total{{{}}} {}\n", label(s), s.load_failures);
  family("inferd:model_last_load_seconds", "gauge", "Seconds the model's last load took.");
  for (const auto& s : all)
    out += fmt::format("inferd:model_last_load_seconds{{{}}} {}\n", label(s), s.last_load_s);
  family("inferd:model_unloads_total", "counter",
         "Unloads by reason (lru, idle, keep_alive, exited, shutdown).");
  for (const auto& s : all)
    for (const auto& [reason, n] : s.unloads)
      out +=
          fmt::format("inferd:model_unloads_total{{{},reason=\"{}\"}} {}\n", label(s), reason, n);
  int64_t reserved = 0;
  for (const auto& s : all)
    if (s.state != ModelState::kUnloaded) reserved += s.need_bytes;
  family("inferd:model_memory_budget_bytes", "gauge", "--memory-budget.");
  out += fmt::format("inferd:model_memory_budget_bytes {}\n", config_.memory_budget_bytes);
  family("inferd:model_memory_reserved_bytes", "gauge",
         "Estimated memory of the models loading, loaded or unloading.");
  out += fmt::format("inferd:model_memory_reserved_bytes {}\n", reserved);
  return out;
}

double parse_keep_alive(const std::string& text) {
  auto bad = [&](const char* why) -> double {
    fail(
        "'{}' is not a duration ({}): expected seconds as a number, or a duration such as "
        "\"5m\", \"30s\", \"1h30m\", \"-1\" (0: unload after this request; negative: keep "
        "loaded)",
        text, why);
  };
  std::string_view s(text);
  if (s.empty()) return bad("empty");
  double sign = 1;
  if (s.front() == '-' || s.front() == '+') {
    if (s.front() == '-') sign = -1;
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  // A bare number (Ollama's JSON number, here as text): seconds.
  {
    char* end = nullptr;
    const std::string copy(s);
    const double v = std::strtod(copy.c_str(), &end);
    if (!copy.empty() && end == copy.c_str() + copy.size() && std::isfinite(v)) return sign * v;
  }
  if (s.empty()) return bad("no number");
  double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == 0) return bad("expected a number");
    const std::string num(s.substr(0, i));
    char* end = nullptr;
    const double v = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size()) return bad("bad number");
    s.remove_prefix(i);
    size_t u = 0;
    while (u < s.size() && !std::isdigit(static_cast<unsigned char>(s[u])) && s[u] != '.') ++u;
    const std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    double scale = 0;
    if (unit == "ns")
      scale = 1e-9;
    else if (unit == "us" || unit == "\xc2\xb5s")
      scale = 1e-6;
    else if (unit == "ms")
      scale = 1e-3;
    else if (unit == "s")
      scale = 1;
    else if (unit == "m")
      scale = 60;
    else if (unit == "h")
      scale = 3600;
    else
      return bad(unit.empty() ? "missing unit" : "unknown unit");
    total += v * scale;
  }
  return sign * total;
}

}  // namespace inferd::router
