#include "router/replica_table.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/logging.h"

namespace inferd::router {

BackendAddress parse_backend_url(const std::string& url) {
  return server::parse_http_url(url, "backend", "replicas sit on a private network", "PREFIX");
}

std::vector<std::string> parse_backend_list(const std::string& text, const std::string& source) {
  std::vector<std::string> out;
  size_t pos = 0, line_no = 0;
  while (pos <= text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    size_t start = 0;
    while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
    line = line.substr(start);
    if (line.empty()) continue;
    try {
      out.push_back(parse_backend_url(line).url);
    } catch (const Error& e) {
      fail("{}:{}: {}", source, line_no, e.what());
    }
  }
  return out;
}

double ReplicaState::load() const {
  return std::max(double(in_flight), running + waiting);
}

ReplicaTable::ReplicaTable(PolicyConfig policy, HealthThresholds health)
    : policy_(policy), health_(health) {}

std::vector<std::shared_ptr<Replica>> ReplicaTable::set_backends(
    const std::vector<std::string>& urls) {
  std::vector<BackendAddress> want;
  std::set<std::string> seen;
  for (const auto& u : urls) {
    BackendAddress a = parse_backend_url(u);
    if (seen.insert(a.url).second) want.push_back(std::move(a));
  }
  std::lock_guard lk(mu_);
  std::vector<std::shared_ptr<Replica>> added;
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    if (!seen.count((*it)->addr().url)) {
      (*it)->state_.removed = true;
      policy_.forget_replica((*it)->id());
      LOG_INFO("router: replica {} removed", (*it)->addr().url);
      it = replicas_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& a : want) {
    const bool have = std::any_of(replicas_.begin(), replicas_.end(),
                                  [&](const auto& r) { return r->addr().url == a.url; });
    if (have) continue;
    auto r = std::make_shared<Replica>(next_id_++, a);
    r->state_.id = r->id();
    r->state_.url = a.url;
    r->state_.last_error = "not checked yet";
    replicas_.push_back(r);
    added.push_back(r);
    LOG_INFO("router: replica {} added", a.url);
  }
  return added;
}

std::optional<ReplicaTable::Pick> ReplicaTable::pick(const std::string& model, std::string_view key,
                                                     const std::vector<uint32_t>& exclude) {
  std::lock_guard lk(mu_);
  std::vector<Candidate> cands;
  std::vector<Replica*> by_index;
  for (const auto& r : replicas_) {
    const ReplicaState& s = r->state_;
    if (!s.healthy || r->endpoints_.empty()) continue;
    if (std::find(exclude.begin(), exclude.end(), r->id()) != exclude.end()) continue;
    if (!model.empty() && std::find(s.models.begin(), s.models.end(), model) == s.models.end())
      continue;
    cands.push_back(Candidate{r->id(), s.load(), s.kv_usage});
    by_index.push_back(r.get());
  }
  if (cands.empty()) return std::nullopt;
  const Decision d = policy_.choose(cands, key);
  for (const auto& r : replicas_) {
    if (r->id() != d.id) continue;
    r->state_.in_flight++;
    return Pick{r, r->endpoints_, d.reason};
  }
  INFERD_CHECK(false, "routing chose replica {} that is not in the table", d.id);
  return std::nullopt;
}

void ReplicaTable::release(Replica& r) {
  std::lock_guard lk(mu_);
  auto& s = r.state_;
  if (s.in_flight > 0) s.in_flight--;
}

void ReplicaTable::mark_failed(Replica& r, const std::string& error) {
  std::lock_guard lk(mu_);
  auto& rep = r;
  if (rep.state_.healthy) LOG_WARN("router: replica {} out: {}", rep.addr().url, error);
  if (rep.state_.healthy) rep.logged_problem_ = health_reason::kConnection;
  rep.state_.healthy = false;
  rep.state_.last_error = error;
  rep.state_.problem = health_reason::kConnection;
  rep.successes_ = 0;
  rep.failures_ = std::max(rep.failures_, health_.failures_to_remove);
}

bool ReplicaTable::apply(Replica& r, const HealthReport& h) {
  std::lock_guard lk(mu_);
  auto& rep = r;
  ReplicaState& s = rep.state_;
  if (!h.endpoints.empty()) rep.endpoints_ = h.endpoints;
  if (h.models) s.models = *h.models;
  if (h.running) s.running = *h.running;
  if (h.waiting) s.waiting = *h.waiting;
  if (h.kv_usage) s.kv_usage = *h.kv_usage;
  const bool was = s.healthy;
  if (h.ready) {
    rep.failures_ = 0;
    rep.successes_++;
    // Ready, but not routable until its models are known.
    if (!s.healthy && rep.successes_ >= health_.successes_to_add && !s.models.empty() &&
        !rep.endpoints_.empty()) {
      s.healthy = true;
      s.last_error.clear();
      // It may have restarted with an empty cache: forget what it was believed to hold.
      policy_.forget_replica(rep.id());
    }
  } else {
    rep.successes_ = 0;
    rep.failures_++;
    s.last_error = h.error;
    s.check_failures[h.reason.empty() ? "unknown" : h.reason]++;
    if (s.healthy && rep.failures_ >= health_.failures_to_remove) s.healthy = false;
  }
  s.problem = h.ready || s.healthy ? std::string() : h.reason;
  if (was != s.healthy) {
    if (s.healthy) {
      rep.logged_problem_.clear();
      LOG_INFO("router: replica {} in (models: {})", rep.addr().url, fmt::join(s.models, ", "));
    } else {
      rep.logged_problem_ = h.reason;
      LOG_WARN("router: replica {} out: {}", rep.addr().url, h.error);
    }
  } else if (!s.healthy && !h.ready && h.reason != rep.logged_problem_) {
    // Out (or never in) for a new reason: said once, not at every check.
    rep.logged_problem_ = h.reason;
    LOG_WARN("router: replica {} not in rotation: {}", rep.addr().url, h.error);
  }
  return was != s.healthy;
}

std::vector<std::string> ReplicaTable::served_models() const {
  std::lock_guard lk(mu_);
  std::set<std::string> out;
  for (const auto& r : replicas_)
    if (r->state_.healthy) out.insert(r->state_.models.begin(), r->state_.models.end());
  return {out.begin(), out.end()};
}

bool ReplicaTable::knows_model(const std::string& model) const {
  std::lock_guard lk(mu_);
  for (const auto& r : replicas_) {
    const auto& m = r->state_.models;
    if (std::find(m.begin(), m.end(), model) != m.end()) return true;
  }
  return false;
}

size_t ReplicaTable::num_healthy() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& r : replicas_) n += r->state_.healthy;
  return n;
}

std::vector<ReplicaState> ReplicaTable::states() const {
  std::lock_guard lk(mu_);
  std::vector<ReplicaState> out;
  for (const auto& r : replicas_) out.push_back(r->state_);
  return out;
}

std::vector<std::shared_ptr<Replica>> ReplicaTable::replicas() const {
  std::lock_guard lk(mu_);
  return replicas_;
}

size_t ReplicaTable::prefix_index_size() const {
  std::lock_guard lk(mu_);
  return policy_.index().size();
}

bool ReplicaTable::removed(const Replica& r) const {
  std::lock_guard lk(mu_);
  return r.state_.removed;
}

}  // namespace inferd::router
