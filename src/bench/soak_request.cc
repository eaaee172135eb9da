// `inferd bench soak`'s requests (see soak_request.h).
#include "bench/soak_request.h"

#include <array>

#include "core/rng.h"

namespace inferd::bench {

namespace {

using json = nlohmann::json;

constexpr std::array<const char*, 40> kWords = {
    "the",   "king", "said",   "unto",  "them",  "and",   "it",     "came",  "to",    "pass",
    "that",  "when", "a",      "word",  "is",    "what",  "does",   "mean",  "light", "water",
    "house", "of",   "lord",   "land",  "day",   "night", "people", "city",  "wise",  "man",
    "shall", "be",   "become", "great", "river", "stone", "bread",  "heart", "fire",  "sea"};

constexpr std::array<const char*, 6> kStops = {" the", ".", "\n", " and", ",", " of"};

uint64_t mix64(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9e3779b97f4a7c15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int32_t pick(Rng& rng, int32_t lo, int32_t hi) {  // uniform in [lo, hi]
  return lo + int32_t(rng.next_u64() % uint64_t(hi - lo + 1));
}

bool chance(Rng& rng, double p) {
  return rng.uniform() < p;
}

std::string prompt_text(Rng& rng, int32_t words) {
  std::string s;
  for (int32_t i = 0; i < words; ++i) {
    if (i) s += ' ';
    s += kWords[size_t(rng.next_u64() % kWords.size())];
  }
  return s;
}

json tools_json() {
  return json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                     "required": ["city"], "additionalProperties": false}}},
    {"type": "function", "function": {"name": "add", "description": "Adds two numbers",
      "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                     "b": {"type": "integer"}}, "required": ["a", "b"],
                     "additionalProperties": false}}}])");
}

// The sampling fields, each present or not.
void add_sampling(Rng& rng, json& b) {
  if (chance(rng, 0.7)) b["temperature"] = chance(rng, 0.3) ? 0.0 : rng.uniform() * 1.5;
  if (chance(rng, 0.4)) b["top_p"] = 0.05 + 0.95 * rng.uniform();
  if (chance(rng, 0.3)) b["top_k"] = chance(rng, 0.2) ? -1 : pick(rng, 1, 50);
  if (chance(rng, 0.2)) b["min_p"] = 0.2 * rng.uniform();
  if (chance(rng, 0.2)) b["presence_penalty"] = 4.0 * rng.uniform() - 2.0;
  if (chance(rng, 0.2)) b["frequency_penalty"] = 4.0 * rng.uniform() - 2.0;
  if (chance(rng, 0.2)) b["repetition_penalty"] = 0.8 + 0.7 * rng.uniform();
  if (chance(rng, 0.1)) {
    json lb = json::object();
    for (int i = pick(rng, 1, 4); i > 0; --i)
      lb[std::to_string(pick(rng, 10, 4000))] = 200.0 * rng.uniform() - 100.0;
    b["logit_bias"] = lb;
  }
  if (chance(rng, 0.5)) b["seed"] = int64_t(rng.next_u64() % 1000000);
}

// One output constraint (or none), with what the answer must then satisfy.
void add_constraint(Rng& rng, json& b, SoakRequest& r) {
  const double u = rng.uniform();
  if (u < 0.06) {
    r.constraint = SoakConstraint::kJsonSchema;
    r.required_keys = {"name", "age"};
    b["response_format"] = {
        {"type", "json_schema"},
        {"json_schema",
         {{"name", "person"},
          {"schema",
           {{"type", "object"},
            {"properties",
             {{"name", {{"type", "string"}, {"maxLength", 8}}},
              {"age", {{"type", "integer"}, {"minimum", 0}, {"maximum", 120}}}}},
            {"required", {"name", "age"}},
            {"additionalProperties", false}}}}}};
  } else if (u < 0.09) {
    r.constraint = SoakConstraint::kJsonObject;
    b["response_format"] = {{"type", "json_object"}};
  } else if (u < 0.13) {
    r.constraint = SoakConstraint::kRegex;
    r.regex = "[a-z]{1,6}( [a-z]{1,6}){0,3}";
    b["structured_outputs"] = {{"regex", r.regex}};
  } else if (u < 0.17) {
    r.constraint = SoakConstraint::kChoice;
    r.choices = {"yes", "no", "perhaps"};
    b["structured_outputs"] = {{"choice", r.choices}};
  }
}

void add_tools(Rng& rng, json& b, SoakRequest& r) {
  b["tools"] = tools_json();
  r.tool_names = {"get_weather", "add"};
  const double u = rng.uniform();
  if (u < 0.4) {
    b["tool_choice"] = "required";
    r.constraint = SoakConstraint::kToolsRequired;
  } else if (u < 0.8) {
    const std::string name = chance(rng, 0.5) ? "get_weather" : "add";
    b["tool_choice"] = {{"type", "function"}, {"function", {{"name", name}}}};
    r.constraint = SoakConstraint::kToolNamed;
    r.tool_names = {name};
  } else {
    b["tool_choice"] = "none";
  }
  if (chance(rng, 0.3)) b["parallel_tool_calls"] = false;
}

// A valid request drawn from rng.
SoakRequest valid_request(Rng& rng, const std::string& model, const SoakMix& mix, bool stream) {
  SoakRequest r;
  r.chat = chance(rng, mix.chat_share);
  r.path = r.chat ? "/v1/chat/completions" : "/v1/completions";
  r.stream = stream;
  r.n = chance(rng, 0.75) ? 1 : pick(rng, 2, 4);
  r.max_tokens = pick(rng, 1, std::max(1, mix.max_tokens));
  json b;
  b["model"] = model;
  const std::string text = prompt_text(rng, pick(rng, 3, 60));
  if (r.chat) {
    json msgs = json::array();
    if (chance(rng, 0.2)) msgs.push_back({{"role", "system"}, {"content", "Answer briefly."}});
    msgs.push_back({{"role", "user"}, {"content", text}});
    b["messages"] = msgs;
    b[chance(rng, 0.5) ? "max_tokens" : "max_completion_tokens"] = r.max_tokens;
  } else {
    b["prompt"] = text;
    b["max_tokens"] = r.max_tokens;
  }
  if (r.n > 1) b["n"] = r.n;
  add_sampling(rng, b);
  const bool tools = r.chat && chance(rng, 0.1);
  if (tools) {
    add_tools(rng, b, r);
  } else if (chance(rng, 0.9)) {
    add_constraint(rng, b, r);
  }
  if (r.constraint == SoakConstraint::kNone && !tools) {
    // Stop strings and forced lengths only where no constraint must finish its text.
    if (chance(rng, 0.3)) {
      json stops = json::array();
      for (int i = pick(rng, 1, 3); i > 0; --i) stops.push_back(kStops[rng.next_u64() % 6]);
      b["stop"] = stops.size() == 1 && chance(rng, 0.5) ? stops[0] : stops;
      if (chance(rng, 0.3)) b["include_stop_str_in_output"] = true;
    }
    if (chance(rng, 0.1)) b["stop_token_ids"] = {pick(rng, 10, 4000)};
    if (chance(rng, 0.15)) {
      b["ignore_eos"] = true;
      b["min_tokens"] = pick(rng, 0, r.max_tokens);
    }
  }
  if (chance(rng, 0.25)) {
    r.logprobs = pick(rng, 0, 5);
    if (r.chat) {
      b["logprobs"] = true;
      b["top_logprobs"] = r.logprobs;
    } else {
      b["logprobs"] = r.logprobs;
    }
  }
  if (stream) {
    b["stream"] = true;
    r.include_usage = chance(rng, 0.6);
    if (r.include_usage) b["stream_options"] = {{"include_usage", true}};
  } else if (chance(rng, 0.2)) {
    b["stream"] = false;
  }
  r.body = b.dump();
  return r;
}

}  // namespace

const char* soak_kind_name(SoakKind k) {
  switch (k) {
    case SoakKind::kNormal:
      return "normal";
    case SoakKind::kAbort:
      return "aborted";
    case SoakKind::kSlowReader:
      return "slow reader";
    case SoakKind::kHostile:
      return "hostile";
    case SoakKind::kDeterminism:
      return "determinism";
  }
  return "?";
}

SoakRequest make_probe_request(uint64_t seed, int32_t probe, const std::string& model,
                               const SoakMix& mix) {
  Rng rng(mix64(seed ^ 0x5eedull, uint64_t(probe)));
  SoakRequest r;
  // Plain seeded sampling (no constraint, so that the comparison covers the sampler alone), half
  // streamed, on both routes.
  for (;;) {
    r = valid_request(rng, model, mix, probe % 2 == 1);
    if (r.constraint == SoakConstraint::kNone && r.tool_names.empty()) break;
  }
  json b = json::parse(r.body);
  b["seed"] = 1000 + probe;
  b["temperature"] = 0.9;
  r.body = b.dump();
  r.kind = SoakKind::kDeterminism;
  r.probe = probe;
  return r;
}

SoakRequest make_hostile_request(uint64_t which, const std::string& model) {
  SoakRequest r;
  r.kind = SoakKind::kHostile;
  r.chat = which % 2 == 1;
  r.path = r.chat ? "/v1/chat/completions" : "/v1/completions";
  json b = {{"model", model}, {"max_tokens", 4}};
  if (r.chat)
    b["messages"] = {{{"role", "user"}, {"content", "hello"}}};
  else
    b["prompt"] = "hello";
  auto with = [&](const char* what, const char* key, json v) {
    r.hostile_what = what;
    b[key] = std::move(v);
    r.body = b.dump();
  };
  switch (which % 24) {
    case 0:
      r.hostile_what = "malformed JSON (cut short)";
      r.body = b.dump().substr(0, 20);
      break;
    case 1:
      r.hostile_what = "a JSON array, not an object";
      r.body = "[1, 2, 3]";
      break;
    case 2:
      with("max_tokens a string", "max_tokens", "ten");
      break;
    case 3:
      with("temperature a string", "temperature", "hot");
      break;
    case 4:
      with("n a fraction", "n", 1.5);
      break;
    case 5:
      with(r.chat ? "messages a string" : "prompt an object", r.chat ? "messages" : "prompt",
           r.chat ? json("hi") : json{{"x", 1}});
      break;
    case 6:
      with("an unknown model", "model", "no-such-model-xyz");
      break;
    case 7:
      with("max_tokens 10^12", "max_tokens", int64_t(1000000000000));
      break;
    case 8:
      with("n 100000", "n", 100000);
      break;
    case 9:
      if (r.chat) {
        b["logprobs"] = true;
        with("top_logprobs 1000", "top_logprobs", 1000);
      } else {
        with("logprobs 1000", "logprobs", 1000);
      }
      break;
    case 10:
      with("temperature -1", "temperature", -1.0);
      break;
    case 11:
      with("top_p 5", "top_p", 5.0);
      break;
    case 12: {
      json stops = json::array();
      for (int i = 0; i < 1000; ++i) stops.push_back("s" + std::to_string(i));
      with("1000 stop strings", "stop", stops);
      break;
    }
    case 13:
      with("logit_bias value 10^6", "logit_bias", {{"100", 1e6}});
      break;
    case 14:
      with("a JSON schema of the wrong type", "response_format",
           {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", {{"type", 12}}}}}});
      break;
    case 15:
      with("a regex that does not compile", "structured_outputs", {{"regex", "(["}});
      break;
    case 16:
      with("an empty choice list", "structured_outputs", {{"choice", json::array()}});
      break;
    case 17: {
      // Unknown fields are ignored (as vLLM does), so the nesting goes into a known one.
      r.hostile_what = "stop nested 5000 deep";
      std::string deep = b.dump();
      deep.pop_back();
      deep += ",\"stop\":" + std::string(5000, '[') + std::string(5000, ']') + "}";
      r.body = deep;
      break;
    }
    case 18:
      with(r.chat ? "no messages" : "prompt null", r.chat ? "messages" : "prompt",
           r.chat ? json::array() : json(nullptr));
      break;
    case 19:
      if (r.chat)
        with("a message of an unknown role", "messages",
             {{{"role", "wizard"}, {"content", "hello"}}});
      else
        with("max_tokens -5", "max_tokens", -5);
      break;
    case 20:
      r.hostile_what = "an empty body";
      r.body = "";
      break;
    case 21:
      with("seed a string", "seed", "abc");
      break;
    case 22:
      with("model a number", "model", 42);
      break;
    default:
      with("presence_penalty 10", "presence_penalty", 10.0);
      break;
  }
  return r;
}

SoakRequest make_soak_request(uint64_t seed, uint64_t index, const std::string& model,
                              const SoakMix& mix) {
  Rng rng(mix64(seed, index));
  double u = rng.uniform();
  if ((u -= mix.hostile_share) < 0) return make_hostile_request(rng.next_u64(), model);
  if ((u -= mix.determinism_share) < 0 && mix.num_probes > 0)
    return make_probe_request(seed, int32_t(rng.next_u64() % uint64_t(mix.num_probes)), model, mix);
  if ((u -= mix.abort_share) < 0) {
    SoakRequest r = valid_request(rng, model, mix, true);
    r.kind = SoakKind::kAbort;
    r.abort_after_chunks = pick(rng, 1, 3);
    return r;
  }
  if ((u -= mix.slow_share) < 0) {
    SoakRequest r = valid_request(rng, model, mix, true);
    r.kind = SoakKind::kSlowReader;
    r.slow_read_ms = pick(rng, 20, 200);
    return r;
  }
  return valid_request(rng, model, mix, chance(rng, mix.stream_share));
}

}  // namespace inferd::bench
