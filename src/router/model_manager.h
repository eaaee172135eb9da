// Several models behind one `inferd serve` (issue 31 item 3; llama.cpp's router mode, Ollama's
// scheduling): each configured model runs, while loaded, as a child `inferd serve` process on a
// loopback port that the router front proxies to. A model is loaded on its first request, within a
// memory budget (each model's need estimated before it loads); when another needs room the least
// recently used idle model is unloaded (its process stopped, which frees all its memory); a model
// with requests in flight is never unloaded. Idle models are unloaded after their keep_alive
// (Ollama's semantics: the last request's keep_alive, else --idle-unload-seconds).
//
// One thread (the manager's) does every process step without blocking: starting a child,
// probing its /ready, reaping it, the expiry and the evictions; request threads only take and
// give back leases and read the states, under one mutex.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace inferd::router {

// One configured model.
struct ModelSpec {
  std::string name;                  // the id clients use; /v1/models lists it
  std::vector<std::string> aliases;  // further names a request's `model` may use
  std::string path;                  // what the child serves (directory, GGUF file, ...)
  // The child's further flags (after `serve PATH`), each "--flag=value" or "--flag".
  std::vector<std::string> args;
  int64_t need_bytes = 0;  // memory it takes once loaded (weights + KV + overhead), estimated
};

enum class ModelState { kUnloaded, kLoading, kLoaded, kUnloading };
const char* to_string(ModelState s);

struct ModelManagerConfig {
  std::vector<ModelSpec> models;
  int64_t memory_budget_bytes = 0;     // sum of the loaded models' need_bytes stays below
  double idle_unload_s = 300;          // default keep_alive; <= 0: never
  double load_timeout_s = 600;         // how long a request waits for its model
  double stop_timeout_s = 10;          // SIGTERM, then SIGKILL after this
  std::string executable;              // the inferd binary (default /proc/self/exe)
  std::string api_key;                 // the children's key (INFERD_API_KEY in their env)
  std::chrono::milliseconds tick{20};  // the manager thread's period
};

// A copy of one model's state (for /v1/models, /metrics, tests).
struct ModelStatus {
  std::string name;
  std::vector<std::string> aliases;
  std::string path;
  ModelState state = ModelState::kUnloaded;
  int64_t need_bytes = 0;
  int64_t in_flight = 0;  // requests holding a lease (waiting for the load or running)
  uint16_t port = 0;      // while loading / loaded
  pid_t pid = -1;
  std::string last_error;  // why the last load failed or the process ended; empty after a load
  std::optional<double> expires_in_s;  // loaded and idle: seconds until it is unloaded
  double last_load_s = 0;              // seconds the last load took
  int64_t loads = 0, load_failures = 0;
  std::map<std::string, int64_t> unloads;  // by reason: lru, idle, keep_alive, exited, shutdown
};

class ModelManager {
 public:
  // Fills `url` with the loopback URL of each loaded model (name -> http://127.0.0.1:PORT);
  // called from the manager thread whenever that set changes.
  using OnChange = std::function<void(const std::map<std::string, std::string>& loaded)>;

  // Throws Error for an empty list, a duplicate name / alias, or a budget <= 0.
  explicit ModelManager(ModelManagerConfig config);
  ~ModelManager();

  void set_on_change(OnChange f);
  // Starts the manager thread.
  void start();
  // Stops every child (SIGTERM, SIGKILL after stop_timeout_s), waits for them; no more loads.
  void stop();

  // The configured name a request's `model` refers to (a name or an alias); nullopt if none.
  std::optional<std::string> resolve(const std::string& model) const;
  std::vector<std::string> names() const;  // in configuration order

  // A request's hold on a model: while any lease is held the model is not unloaded. Ends
  // (release) when destroyed.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& o) noexcept { *this = std::move(o); }
    Lease& operator=(Lease&& o) noexcept;
    ~Lease();
    explicit operator bool() const { return mgr_ != nullptr; }

   private:
    friend class ModelManager;
    ModelManager* mgr_ = nullptr;
    std::string model_;
    uint64_t epoch_ = 0;  // the failure count when taken: a later failure is this request's
    std::optional<double> keep_alive_s;
  };
  // Takes a lease on `model` (a configured name) and asks for it to be loaded. keep_alive_s:
  // the request's keep_alive in seconds (0: unload as soon as idle; < 0: never), nullopt: the
  // default.
  Lease acquire(const std::string& model, std::optional<double> keep_alive_s);

  // Where a lease's request stands.
  struct Wait {
    enum Kind { kReady, kPending, kFailed } kind = kPending;
    std::string message;  // kFailed: the cause; kPending: what it waits for
  };
  Wait poll(const Lease& lease) const;

  std::vector<ModelStatus> status() const;
  int64_t budget_bytes() const { return config_.memory_budget_bytes; }
  double load_timeout_s() const { return config_.load_timeout_s; }
  // Prometheus text (inferd:model_* families, model_name label).
  std::string render_metrics() const;

 private:
  struct Entry;
  using Clock = std::chrono::steady_clock;

  void release(const std::string& model, uint64_t epoch, std::optional<double> keep_alive_s);
  void run();
  void tick();                                       // under mu_
  void step_loading(Entry& e);                       // under mu_
  void step_loaded(Entry& e);                        // under mu_
  void step_unloading(Entry& e);                     // under mu_
  void schedule_loads();                             // under mu_
  void start_load(Entry& e);                         // under mu_
  void begin_unload(Entry& e, const char* reason);   // under mu_
  void fail_load(Entry& e, const std::string& why);  // under mu_
  int64_t reserved_bytes() const;                    // under mu_: loading + loaded + unloading
  std::string holders() const;                       // under mu_: who holds the budget
  void notify_change();                              // under mu_
  Entry* find(const std::string& name) const;

  ModelManagerConfig config_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::map<std::string, std::string> alias_to_name_;
  OnChange on_change_;
  std::thread thread_;
  bool stopping_ = false;
  bool started_ = false;
};

// keep_alive as Ollama takes it: a number of seconds, or a duration string ("5m", "30s", "1h",
// "1h30m", "250ms", "-1"); 0 unloads right after the request, a negative value keeps the model
// loaded. Returns the seconds; throws Error naming the problem on anything else.
double parse_keep_alive(const std::string& text);

}  // namespace inferd::router
