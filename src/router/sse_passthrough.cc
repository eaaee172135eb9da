// The preamble hold-back and usage accounting of streams passed through (see sse_passthrough.h).
#include "router/sse_passthrough.h"

#include <nlohmann/json.hpp>

#include <utility>

namespace inferd::router {

bool is_preamble_event(std::string_view data) {
  const nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
  if (!j.is_object() || j.contains("error")) return false;
  auto ch = j.find("choices");
  if (ch == j.end() || !ch->is_array() || ch->empty()) return false;
  for (const auto& c : *ch) {
    if (!c.is_object()) return false;
    if (auto f = c.find("finish_reason"); f != c.end() && !f->is_null()) return false;
    auto d = c.find("delta");
    if (d == c.end() || !d->is_object() || !d->contains("role")) return false;
    for (const auto& [k, v] : d->items()) {
      if (k == "role") continue;
      if (k == "content" && v.is_string() && v.get_ref<const std::string&>().empty()) continue;
      if (v.is_null()) continue;
      return false;
    }
  }
  return true;
}

bool ready_to_commit(const std::string& held) {
  size_t pos = 0;
  for (;;) {
    const size_t end = held.find("\n\n", pos);
    if (end == std::string::npos) return held.size() > (64u << 10);
    std::string_view ev(held.data() + pos, end - pos);
    pos = end + 2;
    if (!ev.starts_with("data:")) return true;  // a comment or another field: pass it on
    ev.remove_prefix(5);
    if (!ev.empty() && ev[0] == ' ') ev.remove_prefix(1);
    if (!is_preamble_event(ev)) return true;
  }
}

int64_t usage_total(std::string_view json_text) {
  if (json_text.find("\"usage\"") == std::string_view::npos) return -1;
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (!j.is_object()) return -1;
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object()) return -1;
  auto t = u->find("total_tokens");
  return t != u->end() && t->is_number_integer() ? t->get<int64_t>() : -1;
}

std::string UsageTap::feed(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t pos = 0;
  for (size_t end; (end = pending_.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
    std::string_view ev(pending_.data() + pos, end - pos);
    std::string_view data = ev;
    bool usage_only = false;
    if (data.starts_with("data:")) {
      data.remove_prefix(5);
      if (!data.empty() && data[0] == ' ') data.remove_prefix(1);
      const int64_t t = usage_total(data);
      if (t >= 0) {
        total_ = t;
        usage_only = data.find("\"choices\":[]") != std::string_view::npos;
      }
    }
    if (!(strip_ && usage_only)) out.append(ev).append("\n\n");
  }
  pending_.erase(0, pos);
  return out;
}

std::string UsageTap::flush() {
  return std::exchange(pending_, std::string());
}

}  // namespace inferd::router
