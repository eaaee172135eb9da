// The router's parts alone: the approximate radix tree, the routing policy, the replica table,
// backend URLs and files, the replica /metrics parser and the routing key.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/error.h"
#include "router/health_checker.h"
#include "router/prefix_index.h"
#include "router/prompt_key.h"
#include "router/replica_table.h"
#include "router/routing_policy.h"

namespace inferd::router {
namespace {

std::string text(char c, size_t n) {
  return std::string(n, c);
}

TEST(PrefixIndex, MatchesWholeChunksOfTheLongestHeldPrefix) {
  PrefixIndex idx(1000, 4, 100);
  idx.insert("abcdefghijkl", 1);  // chunks abcd efgh ijkl
  idx.insert("abcdXXXX", 2);      // chunk abcd, then another
  const auto m = idx.match("abcdefghZZZZ", {1, 2, 3});
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].chars, 8u);  // abcd efgh
  EXPECT_EQ(m[1].chars, 4u);  // abcd
  EXPECT_EQ(m[2].chars, 0u);
  // A chunk only counts after the same preceding chunks (the key is the whole prefix).
  EXPECT_EQ(idx.match("efghabcd", {1})[0].chars, 0u);
  // A partial trailing chunk does not count.
  EXPECT_EQ(idx.match("abcdefg", {1})[0].chars, 4u);
  EXPECT_EQ(idx.indexed_chars("abcdefg"), 4u);
  EXPECT_EQ(idx.chars_held(1), 12u);
  EXPECT_EQ(idx.chars_held(2), 8u);
}

TEST(PrefixIndex, EvictsLeastRecentlyUsedEntriesBeyondCapacity) {
  PrefixIndex idx(4, 2, 100);
  idx.insert("aabb", 1);  // 2 entries
  idx.insert("ccdd", 1);  // 4 entries
  idx.match("aabb", {1});
  idx.insert("aabb", 1);  // touches aa, bb: now the most recent
  idx.insert("eeff", 2);  // evicts cc, dd
  EXPECT_EQ(idx.size(), 4u);
  EXPECT_EQ(idx.match("aabb", {1})[0].chars, 4u);
  EXPECT_EQ(idx.match("ccdd", {1})[0].chars, 0u);
  EXPECT_EQ(idx.match("eeff", {2})[0].chars, 4u);
  idx.remove_replica(2);
  EXPECT_EQ(idx.match("eeff", {2})[0].chars, 0u);
  EXPECT_EQ(idx.chars_held(2), 0u);
  EXPECT_EQ(idx.size(), 2u);
}

TEST(PrefixIndex, LooksAtTheFirstChunksOnly) {
  PrefixIndex idx(1000, 4, 2);
  idx.insert("aaaabbbbcccc", 1);
  EXPECT_EQ(idx.size(), 2u);
  EXPECT_EQ(idx.match("aaaabbbbdddd", {1})[0].chars, 8u);
}

std::vector<Candidate> idle(std::initializer_list<uint32_t> ids) {
  std::vector<Candidate> c;
  for (uint32_t id : ids) c.push_back({id, 0, 0});
  return c;
}

TEST(RoutingPolicy, CacheAwareKeepsEachPrefixOnOneReplicaAndSpreadsNewOnes) {
  RoutingPolicy p(PolicyConfig{});
  const auto c = idle({1, 2, 3});
  std::map<char, uint32_t> owner;
  std::set<uint32_t> used;
  for (int round = 0; round < 4; ++round) {
    for (char k : {'a', 'b', 'c'}) {
      const Decision d = p.choose(c, text(k, 1000) + "unique tail " + std::to_string(round));
      if (round == 0) {
        EXPECT_STREQ(d.reason, "cache_miss");
        owner[k] = d.id;
        used.insert(d.id);
      } else {
        EXPECT_STREQ(d.reason, "cache_hit");
        EXPECT_EQ(d.id, owner[k]) << "prefix " << k << " moved";
        EXPECT_GE(d.matched_chars, 960u);
      }
    }
  }
  EXPECT_EQ(used.size(), 3u) << "three new prefixes on three idle replicas should spread";
}

TEST(RoutingPolicy, CacheAwareLeavesABusyHolderForTheLeastLoaded) {
  PolicyConfig cfg;
  cfg.balance_abs_threshold = 4;
  cfg.balance_rel_threshold = 1.5;
  RoutingPolicy p(cfg);
  const std::string prompt = text('p', 640);
  const uint32_t holder = p.choose(idle({1, 2}), prompt).id;
  const uint32_t other = holder == 1 ? 2 : 1;
  // A little busier: stays.
  std::vector<Candidate> c = {{holder, 4, 0}, {other, 1, 0}};
  EXPECT_STREQ(p.choose(c, prompt).reason, "cache_hit");
  // Much busier (by more than 4 and more than 1.5 times): the least loaded takes it.
  c = {{holder, 20, 0}, {other, 2, 0}};
  Decision d = p.choose(c, prompt);
  EXPECT_STREQ(d.reason, "load_balanced");
  EXPECT_EQ(d.id, other);
  // A full KV cache counts as busy too.
  c = {{holder, 0, 0.99}, {other, 0, 0.2}};
  PolicyConfig cfg2;
  RoutingPolicy p2(cfg2);
  const uint32_t h2 = p2.choose(idle({1, 2}), prompt).id;
  c = {{h2, 0, 0.99}, {h2 == 1 ? 2u : 1u, 0, 0.2}};
  EXPECT_STREQ(p2.choose(c, prompt).reason, "load_balanced");
}

TEST(RoutingPolicy, ShortMatchesBelowTheThresholdGoToTheLeastLoaded) {
  PolicyConfig cfg;
  cfg.cache_threshold = 0.5;
  RoutingPolicy p(cfg);
  const std::string system = text('s', 128);
  const uint32_t first = p.choose(idle({1, 2}), system + text('x', 1000)).id;
  // Shares 128 of 1128 characters with the first: not enough to pin it there.
  std::vector<Candidate> c = {{first, 1, 0}, {first == 1 ? 2u : 1u, 0, 0}};
  const Decision d = p.choose(c, system + text('y', 1000));
  EXPECT_STREQ(d.reason, "cache_miss");
  EXPECT_NE(d.id, first);
}

TEST(RoutingPolicy, FixedPolicies) {
  PolicyConfig cfg;
  cfg.policy = Policy::kRoundRobin;
  RoutingPolicy rr(cfg);
  const auto c = idle({7, 8, 9});
  std::vector<uint32_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(rr.choose(c, text('a', 640)).id);
  EXPECT_EQ(got, (std::vector<uint32_t>{7, 8, 9, 7, 8, 9}));
  cfg.policy = Policy::kLeastLoaded;
  RoutingPolicy ll(cfg);
  EXPECT_EQ(ll.choose({{1, 5, 0}, {2, 1, 0}, {3, 3, 0}}, "x").id, 2u);
  EXPECT_STREQ(ll.choose({{1, 5, 0}, {2, 1, 0}}, "x").reason, "least_loaded");
  EXPECT_EQ(parse_policy("cache-aware"), Policy::kCacheAware);
  EXPECT_EQ(parse_policy("round_robin"), Policy::kRoundRobin);
  EXPECT_THROW(parse_policy("fastest"), Error);
}

TEST(BackendUrl, ParsesAndRejectsWithAClearMessage) {
  BackendAddress a = parse_backend_url("http://10.0.0.5:8001/");
  EXPECT_EQ(a.host, "10.0.0.5");
  EXPECT_EQ(a.port, 8001);
  EXPECT_EQ(a.path, "");
  EXPECT_EQ(a.url, "http://10.0.0.5:8001");
  a = parse_backend_url("http://replica-0.inferd/prefix");
  EXPECT_EQ(a.port, 80);
  EXPECT_EQ(a.path, "/prefix");
  a = parse_backend_url("http://[::1]:9000");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.host_header(), "[::1]:9000");
  try {
    parse_backend_url("https://x:1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("https is not supported"), std::string::npos);
  }
  EXPECT_THROW(parse_backend_url("10.0.0.5:8001"), Error);
  EXPECT_THROW(parse_backend_url("http://x:0"), Error);
  EXPECT_THROW(parse_backend_url("http://x:port"), Error);
  EXPECT_THROW(parse_backend_url("http://:80"), Error);
}

TEST(BackendUrl, ListFileSkipsCommentsAndNamesTheBadLine) {
  const auto urls =
      parse_backend_list("# replicas\nhttp://a:1\n\n  http://b:2/  # second\n", "backends.txt");
  EXPECT_EQ(urls, (std::vector<std::string>{"http://a:1", "http://b:2"}));
  try {
    parse_backend_list("http://a:1\nb:2\n", "backends.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("backends.txt:2"), std::string::npos) << e.what();
  }
}

TEST(ReplicaTable, RoutesOnlyToHealthyReplicasOfTheModelAndCountsInFlight) {
  ReplicaTable t(PolicyConfig{}, HealthThresholds{2, 1});
  auto added = t.set_backends({"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:1/"});
  ASSERT_EQ(added.size(), 2u);
  EXPECT_FALSE(t.pick("m", "", {}).has_value()) << "nothing is healthy before a check";
  HealthReport ok;
  ok.ready = true;
  ok.models = std::vector<std::string>{"m"};
  ok.endpoints = {boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 1)};
  EXPECT_TRUE(t.apply(*added[0], ok));
  HealthReport other = ok;
  other.models = std::vector<std::string>{"n"};
  t.apply(*added[1], other);
  EXPECT_EQ(t.served_models(), (std::vector<std::string>{"m", "n"}));
  auto p = t.pick("m", "", {});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->replica->id(), added[0]->id());
  EXPECT_FALSE(t.pick("m", "", {added[0]->id()}).has_value()) << "excluded";
  EXPECT_EQ(t.states()[0].in_flight, 1);
  t.release(*p->replica);
  EXPECT_EQ(t.states()[0].in_flight, 0);
  // Out after two failed checks (threshold 2), back after one good one.
  HealthReport bad;
  bad.error = "GET /ready answered 503";
  EXPECT_FALSE(t.apply(*added[0], bad));
  EXPECT_TRUE(t.apply(*added[0], bad));
  EXPECT_FALSE(t.pick("m", "", {}).has_value());
  EXPECT_TRUE(t.knows_model("m"));
  EXPECT_EQ(t.served_models(), (std::vector<std::string>{"n"}));
  EXPECT_TRUE(t.apply(*added[0], ok));
  // A failed request takes it out at once.
  t.mark_failed(*added[0], "connect: refused");
  EXPECT_FALSE(t.pick("m", "", {}).has_value());
  EXPECT_EQ(t.states()[0].last_error, "connect: refused");
  // Dropped from the list: removed.
  t.set_backends({"http://127.0.0.1:2"});
  EXPECT_TRUE(t.removed(*added[0]));
  EXPECT_EQ(t.states().size(), 1u);
}

TEST(LoadMetrics, SumsTheReplicaGaugesAcrossLabelSets) {
  const std::string page =
      "# HELP vllm:num_requests_running x\n"
      "vllm:num_requests_running{model_name=\"a\",engine=\"0\"} 3.0\n"
      "vllm:num_requests_running{model_name=\"b\",engine=\"0\"} 2.0\n"
      "vllm:num_requests_waiting{model_name=\"a\",engine=\"0\"} 7.0\n"
      "vllm:num_requests_waiting_other{model_name=\"a\"} 100.0\n"
      "vllm:kv_cache_usage_perc{model_name=\"a\",engine=\"0\"} 0.25\n";
  const LoadMetrics m = parse_load_metrics(page);
  EXPECT_EQ(m.running, 5.0);
  EXPECT_EQ(m.waiting, 7.0);
  EXPECT_EQ(m.kv_usage, 0.25);
  // A replica from before issue 30 serves the inferd: names; with both, vLLM's count.
  const std::string legacy =
      "inferd:num_requests_running{model_name=\"a\"} 4.0\n"
      "inferd:num_requests_waiting{model_name=\"a\"} 1.0\n"
      "vllm:num_requests_waiting{model_name=\"a\",engine=\"0\"} 2.0\n";
  const LoadMetrics l = parse_load_metrics(legacy);
  EXPECT_EQ(l.running, 4.0);
  EXPECT_EQ(l.waiting, 2.0);
  EXPECT_FALSE(l.kv_usage.has_value());
  EXPECT_FALSE(parse_load_metrics("").running.has_value());
  auto models = parse_model_list(R"({"object":"list","data":[{"id":"a"},{"id":"b"}]})");
  ASSERT_TRUE(models.has_value());
  EXPECT_EQ(*models, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(parse_model_list("not json").has_value());
}

TEST(PromptKey, ConversationsSharingTheirFirstMessagesShareAKeyPrefix) {
  using nlohmann::json;
  json a = {{"messages",
             {{{"role", "system"}, {"content", "You are terse."}},
              {{"role", "user"}, {"content", "first question"}}}}};
  json b = a;
  b["messages"].push_back({{"role", "assistant"}, {"content", "answer"}});
  b["messages"].push_back(
      {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "more"}}})}});
  const std::string ka = prompt_key(a, true), kb = prompt_key(b, true);
  EXPECT_EQ(kb.substr(0, ka.size()), ka);
  EXPECT_NE(kb.find("more"), std::string::npos);
  EXPECT_EQ(prompt_key({{"prompt", "hello"}}, false), "hello");
  EXPECT_EQ(prompt_key({{"prompt", {"first", "second"}}}, false), "first");
  EXPECT_EQ(prompt_key({{"prompt", {1, 2, 3}}}, false), "1,2,3,");
  EXPECT_EQ(prompt_key({{"prompt", std::string(100, 'x')}}, false, 10).size(), 10u);
}

}  // namespace
}  // namespace inferd::router
