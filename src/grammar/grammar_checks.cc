// Checks of a normalised grammar: rules that can match nothing, and left recursion (a rule that
// can start with itself, directly or through rules that can match the empty string).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/grammar_ir.h"

namespace inferd::grammar {

std::vector<bool> nullable_rules(const Grammar& g) {
  std::vector<bool> nullable(g.rules.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < g.rules.size(); ++r) {
      if (nullable[r]) continue;
      for (const auto& alt : g.rules[r].alts) {
        bool all = true;
        for (const GElement& e : alt) {
          if (e.kind == GElement::kBytes || !nullable[static_cast<size_t>(e.rule)]) {
            all = false;
            break;
          }
        }
        if (all) {
          nullable[r] = changed = true;
          break;
        }
      }
    }
  }
  return nullable;
}

namespace {

// Every rule has an alternative, every reference names a rule, no byte class is empty.
void check_references(const Grammar& g) {
  const size_t n = g.rules.size();
  if (g.root < 0 || static_cast<size_t>(g.root) >= n) throw GrammarError("grammar: no root rule");
  for (const GRule& r : g.rules) {
    if (r.alts.empty()) throw GrammarError("grammar: rule '" + r.name + "' has no alternative");
    for (const auto& alt : r.alts) {
      for (const GElement& e : alt) {
        if (e.kind == GElement::kRule && (e.rule < 0 || static_cast<size_t>(e.rule) >= n)) {
          throw GrammarError("grammar: rule '" + r.name + "' refers to an undefined rule");
        }
        if (e.kind == GElement::kBytes && e.bytes.empty()) {
          throw GrammarError("grammar: rule '" + r.name + "' has an empty byte class");
        }
      }
    }
  }
}

// Rules reachable from the root must be able to match some finite string.
void check_productive(const Grammar& g) {
  const size_t n = g.rules.size();
  std::vector<bool> productive(n, false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (productive[r]) continue;
      for (const auto& alt : g.rules[r].alts) {
        bool ok = true;
        for (const GElement& e : alt) {
          if (e.kind == GElement::kRule && !productive[static_cast<size_t>(e.rule)]) ok = false;
        }
        if (ok) {
          productive[r] = changed = true;
          break;
        }
      }
    }
  }
  std::vector<bool> reach(n, false);
  std::vector<int32_t> todo{g.root};
  reach[static_cast<size_t>(g.root)] = true;
  while (!todo.empty()) {
    const int32_t r = todo.back();
    todo.pop_back();
    for (const auto& alt : g.rules[static_cast<size_t>(r)].alts) {
      for (const GElement& e : alt) {
        if (e.kind == GElement::kRule && !reach[static_cast<size_t>(e.rule)]) {
          reach[static_cast<size_t>(e.rule)] = true;
          todo.push_back(e.rule);
        }
      }
    }
  }
  for (size_t r = 0; r < n; ++r) {
    if (reach[r] && !productive[r]) {
      throw GrammarError("grammar: rule '" + g.rules[r].name +
                         "' can match nothing (every alternative needs the rule itself again or "
                         "another rule that matches nothing); expected a way to end");
    }
  }
}

// A "can start with" edge: rule r can start with rule `to` (through rules that match the empty
// string); `tail` when `to` is the last element of the alternative.
struct Edge {
  int32_t to;
  bool tail;
};

std::vector<std::vector<Edge>> start_edges(const Grammar& g) {
  const size_t n = g.rules.size();
  const std::vector<bool> nullable = nullable_rules(g);
  std::vector<std::vector<Edge>> edges(n);
  for (size_t r = 0; r < n; ++r) {
    for (const auto& alt : g.rules[r].alts) {
      for (size_t i = 0; i < alt.size(); ++i) {
        const GElement& e = alt[i];
        if (e.kind == GElement::kBytes) break;
        edges[r].push_back({e.rule, i + 1 == alt.size()});
        if (!nullable[static_cast<size_t>(e.rule)]) break;
      }
    }
  }
  return edges;
}

// The strongly connected component of every rule over `edges` (Tarjan's, iteratively).
std::vector<int32_t> components(const std::vector<std::vector<Edge>>& edges) {
  const size_t n = edges.size();
  std::vector<int32_t> index(n, -1), low(n, 0), comp(n, -1), stack;
  std::vector<bool> on_stack(n, false);
  int32_t counter = 0, ncomp = 0;
  for (size_t s = 0; s < n; ++s) {
    if (index[s] >= 0) continue;
    std::vector<std::pair<int32_t, size_t>> call{{static_cast<int32_t>(s), 0}};
    index[s] = low[s] = counter++;
    stack.push_back(static_cast<int32_t>(s));
    on_stack[s] = true;
    while (!call.empty()) {
      auto& [v, k] = call.back();
      const auto vu = static_cast<size_t>(v);
      if (k < edges[vu].size()) {
        const auto w = static_cast<size_t>(edges[vu][k++].to);
        if (index[w] < 0) {
          index[w] = low[w] = counter++;
          stack.push_back(static_cast<int32_t>(w));
          on_stack[w] = true;
          call.emplace_back(static_cast<int32_t>(w), 0);
        } else if (on_stack[w]) {
          low[vu] = std::min(low[vu], index[w]);
        }
        continue;
      }
      if (low[vu] == index[vu]) {
        for (;;) {
          const auto w = static_cast<size_t>(stack.back());
          stack.pop_back();
          on_stack[w] = false;
          comp[w] = ncomp;
          if (w == vu) break;
        }
        ++ncomp;
      }
      const int32_t done = v;
      call.pop_back();
      if (!call.empty()) {
        const auto p = static_cast<size_t>(call.back().first);
        low[p] = std::min(low[p], low[static_cast<size_t>(done)]);
      }
    }
  }
  return comp;
}

// The left-recursive cycle through the non-tail edge r -> e.to, as "r -> ... -> r" by rule names:
// a path from e.to back to r inside their component.
std::string cycle_text(const Grammar& g, const std::vector<std::vector<Edge>>& edges,
                       const std::vector<int32_t>& comp, size_t r, const Edge& e) {
  const size_t n = g.rules.size();
  std::vector<int32_t> prev(n, -2);
  std::vector<int32_t> q{e.to};
  prev[static_cast<size_t>(e.to)] = -1;
  for (size_t qi = 0; qi < q.size() && prev[r] == -2; ++qi) {
    const auto v = static_cast<size_t>(q[qi]);
    for (const Edge& f : edges[v]) {
      const auto w = static_cast<size_t>(f.to);
      if (comp[w] == comp[r] && prev[w] == -2) {
        prev[w] = static_cast<int32_t>(v);
        q.push_back(f.to);
      }
    }
  }
  std::vector<std::string> path;
  for (int32_t v = static_cast<int32_t>(r); v >= 0; v = prev[static_cast<size_t>(v)]) {
    path.push_back(g.rules[static_cast<size_t>(v)].name);
    if (v == e.to) break;
  }
  std::reverse(path.begin(), path.end());
  std::string chain = g.rules[r].name;
  for (const std::string& p : path) chain += " -> " + p;
  return chain;
}

// Left recursion: a cycle of "can start with" edges that contains a non-tail edge. (A cycle of
// tail edges only, like x ::= y? x | "", is harmless: it re-enters the same stack.)
void check_left_recursion(const Grammar& g) {
  const size_t n = g.rules.size();
  const std::vector<std::vector<Edge>> edges = start_edges(g);
  const std::vector<int32_t> comp = components(edges);
  for (size_t r = 0; r < n; ++r) {
    for (const Edge& e : edges[r]) {
      if (e.tail || comp[static_cast<size_t>(e.to)] != comp[r]) continue;
      const std::string chain = cycle_text(g, edges, comp, r, e);
      throw GrammarError("grammar: rule '" + g.rules[r].name +
                         "' is left-recursive (it can start with itself: " + chain +
                         "); expected right recursion or repetition, e.g. x ::= y (\"+\" y)*");
    }
  }
}

}  // namespace

void check_grammar(const Grammar& g) {
  check_references(g);
  check_productive(g);
  check_left_recursion(g);
}

}  // namespace inferd::grammar
