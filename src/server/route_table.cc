// The route table (see route_table.h).
#include "server/route_table.h"

namespace inferd::server {

void RouteTable::add(Route route) {
  if (route.label.empty()) route.label = route.path;
  routes_.push_back(std::move(route));
}

std::vector<const Route*> RouteTable::match(const std::string& path) const {
  std::vector<const Route*> out;
  for (const auto& r : routes_)
    if (r.prefix ? path.compare(0, r.path.size(), r.path) == 0 : path == r.path) out.push_back(&r);
  return out;
}

std::string allowed_methods(const std::vector<const Route*>& routes) {
  std::string s;
  for (const Route* r : routes) {
    const std::string m(http::to_string(r->method));
    bool seen = false;
    for (const Route* q : routes) {
      if (q == r) break;
      seen = seen || q->method == r->method;
    }
    if (seen) continue;
    if (!s.empty()) s += ", ";
    s += m;
  }
  return s;
}

}  // namespace inferd::server
