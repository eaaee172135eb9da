// Tool-call parsers: the framing of each format around the calls' JSON (markers, separators; the
// JSON itself is read by partial_json.h's tolerant scanner), the streaming bookkeeping (what was
// already returned), and the grammar of each format.
#include "server/tool_calls.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "core/error.h"
#include "grammar/json_schema.h"
#include "grammar/regex_converter.h"
#include "server/partial_json.h"

namespace inferd::server {

namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kMistralMarker = "[TOOL_CALLS]";
constexpr std::string_view kPythonTag = "<|python_tag|>";

// The length of the longest suffix of `s` that is a proper prefix of `marker` (text to hold back
// because the marker may be arriving).
size_t partial_marker_suffix(std::string_view s, std::string_view marker) {
  for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == marker.substr(0, n)) return n;
  return 0;
}

// True when `s` from `i` is a proper prefix of `marker` (the marker may still arrive).
bool starts_partial(std::string_view s, size_t i, std::string_view marker) {
  const std::string_view rest = s.substr(i);
  return rest.size() < marker.size() && marker.substr(0, rest.size()) == rest;
}

// The arguments of a complete call object as JSON text: "{}" when it has none; arguments written
// as a JSON string are that string's text.
std::string call_arguments(std::string_view s, const CallScan& c) {
  std::string args = "{}";
  if (c.args_started) {
    args = std::string(s.substr(c.args_begin, c.args_end - c.args_begin));
    if (c.args_string) {
      try {
        args = nlohmann::json::parse(args).get<std::string>();
      } catch (const std::exception&) {
      }
    }
  }
  return args;
}

}  // namespace

std::optional<ToolCallFormat> tool_call_parser_from_name(std::string_view name) {
  if (name == "hermes") return ToolCallFormat::kHermes;
  if (name == "llama3_json") return ToolCallFormat::kLlama3Json;
  if (name == "mistral") return ToolCallFormat::kMistral;
  return std::nullopt;
}

const char* tool_call_parser_names() {
  return "hermes, llama3_json, mistral";
}

std::string make_tool_call_id() {
  thread_local std::mt19937_64 rng{
      std::random_device{}() ^
      uint64_t(std::chrono::steady_clock::now().time_since_epoch().count())};
  static const char* kHex = "0123456789abcdef";
  std::string s = "chatcmpl-tool-";
  for (int i = 0; i < 32; ++i) s += kHex[rng() & 15];
  return s;
}

ToolCallParser::ToolCallParser(ToolCallFormat format, std::string function_name)
    : format_(format), function_name_(std::move(function_name)) {
  mode_ = (format_ == ToolCallFormat::kHermes || format_ == ToolCallFormat::kMistral)
              ? Mode::kContent
              : Mode::kStart;
}

ToolParseDelta ToolCallParser::feed(std::string_view text) {
  ToolParseDelta out;
  if (finished_) return out;
  buf_.append(text);
  run(out, false);
  return out;
}

ToolParseDelta ToolCallParser::finish() {
  ToolParseDelta out;
  if (finished_) return out;
  finished_ = true;
  run(out, true);
  return out;
}

void ToolCallParser::run(ToolParseDelta& out, bool final) {
  for (int guard = 0; guard < 1 << 20; ++guard) {
    bool progressed = false;
    switch (mode_) {
      case Mode::kStart:
      case Mode::kContent:
        progressed = step_content(out, final);
        break;
      case Mode::kCalls:
        progressed = step_calls(out, final);
        break;
      case Mode::kAfterCalls:
      case Mode::kPlain:
        emit_content(out, buf_.size());
        return;
      case Mode::kSkip: {
        const size_t close = buf_.find(kHermesClose, pos_);
        if (close == std::string::npos) {
          pos_ = buf_.size() - (final ? 0 : partial_marker_suffix(buf_.substr(pos_), kHermesClose));
          return;
        }
        pos_ = close + kHermesClose.size();
        mode_ = Mode::kContent;
        progressed = true;
        break;
      }
      case Mode::kDrop:
        pos_ = buf_.size();
        return;
    }
    if (!progressed) return;
  }
}

void ToolCallParser::emit_content(ToolParseDelta& out, size_t end) {
  if (end <= pos_) return;
  // Trailing whitespace is held until something else follows: before, between and after calls
  // it is dropped; at the end of an answer without calls it is content. (So a stream splits the
  // text the same way whatever the pieces.)
  size_t e = end;
  while (e > pos_ && is_json_ws(buf_[e - 1])) --e;
  if (e > pos_) {
    out.content.append(buf_, pos_, e - pos_);
    content_.append(buf_, pos_, e - pos_);
    pos_ = e;
  }
  if (pos_ < end && finished_ && end == buf_.size()) {
    if (calls_.empty() && !cur_.announced) {
      out.content.append(buf_, pos_, end - pos_);
      content_.append(buf_, pos_, end - pos_);
    }
    pos_ = end;
  }
}

void ToolCallParser::announce(ToolParseDelta& out, const std::string& name) {
  if (cur_.announced) return;
  cur_.announced = true;
  cur_.id = make_tool_call_id();
  cur_.name = name;
  ToolCallDelta d;
  d.index = calls_.size();
  d.id = cur_.id;
  d.name = name;
  out.calls.push_back(std::move(d));
}

void ToolCallParser::send_args(ToolParseDelta& out, std::string_view args) {
  if (!cur_.announced || args.size() <= cur_.args_sent) return;
  ToolCallDelta d;
  d.index = calls_.size();
  d.arguments = std::string(args.substr(cur_.args_sent));
  cur_.args_sent = args.size();
  cur_.args.append(d.arguments);
  out.calls.push_back(std::move(d));
}

void ToolCallParser::finish_call(ToolParseDelta& out, std::string_view args) {
  // What was streamed is what the call holds: only text past it is added.
  if (args.size() > cur_.args_sent && args.substr(0, cur_.args_sent) == cur_.args)
    send_args(out, args);
  calls_.push_back({cur_.id, cur_.name, cur_.args});
  cur_ = Progress{};
  ++region_calls_;
}

void ToolCallParser::fall_back_to_content(ToolParseDelta& out, size_t from) {
  if (format_ == ToolCallFormat::kHermes ||
      (format_ == ToolCallFormat::kMistral && !in_array_ && region_calls_ == 0)) {
    // The marker was not a call: it is text, and scanning for calls goes on after it.
    const size_t marker_end =
        region_start_ + (format_ == ToolCallFormat::kHermes ? kHermesOpen : kMistralMarker).size();
    const std::string_view seg =
        std::string_view(buf_).substr(region_start_, marker_end - region_start_);
    out.content.append(seg);
    content_.append(seg);
    pos_ = marker_end;
    mode_ = Mode::kContent;
    return;
  }
  pos_ = from;
  mode_ = Mode::kPlain;
}

bool ToolCallParser::step_content(ToolParseDelta& out, bool final) {
  const std::string_view s = buf_;
  if (format_ == ToolCallFormat::kHermes || format_ == ToolCallFormat::kMistral) {
    const std::string_view marker =
        format_ == ToolCallFormat::kHermes ? kHermesOpen : kMistralMarker;
    const size_t p = s.find(marker, pos_);
    if (p != std::string_view::npos) {
      emit_content(out, p);
      region_start_ = p;
      region_calls_ = 0;
      in_array_ = false;
      need_sep_ = false;
      pos_ = p + marker.size();
      mode_ = Mode::kCalls;
      return true;
    }
    const size_t hold = final ? 0 : partial_marker_suffix(s.substr(pos_), marker);
    emit_content(out, s.size() - hold);
    return false;
  }
  // The JSON formats: the output is calls when it starts like one, plain text otherwise.
  const size_t i = skip_json_ws(s, pos_);
  if (i == s.size()) return false;
  region_start_ = i;
  region_calls_ = 0;
  switch (format_) {
    case ToolCallFormat::kArguments:
      announce(out, function_name_);
      pos_ = i;
      mode_ = Mode::kCalls;
      return true;
    case ToolCallFormat::kLlama3Json:
      if (s.substr(i, kPythonTag.size()) == kPythonTag) {
        pos_ = i + kPythonTag.size();
        mode_ = Mode::kCalls;
        return true;
      }
      if (!final && starts_partial(s, i, kPythonTag)) return false;
      if (s[i] == '{') {
        pos_ = i;
        mode_ = Mode::kCalls;
        return true;
      }
      break;
    case ToolCallFormat::kJsonArray:
      if (s[i] == '[') {
        pos_ = i + 1;
        in_array_ = true;
        mode_ = Mode::kCalls;
        return true;
      }
      break;
    default:
      break;
  }
  mode_ = Mode::kPlain;
  return true;
}

bool ToolCallParser::step_calls(ToolParseDelta& out, bool final) {
  const std::string_view s = buf_;
  if (format_ == ToolCallFormat::kArguments) return step_arguments(out, final);
  const size_t i = skip_json_ws(s, pos_);
  if (need_sep_) return step_separator(final, i);
  // Mistral's calls are an array after the marker; a single object without it is one call.
  if (format_ == ToolCallFormat::kMistral && !in_array_ && (i == s.size() || s[i] != '{'))
    return open_mistral_array(out, final, i);
  const size_t from = region_calls_ == 0 ? region_start_ : pos_;
  if (i == s.size()) {
    if (!final) return false;
    if (region_calls_ == 0)
      fall_back_to_content(out, from);
    else
      mode_ = Mode::kAfterCalls;
    return true;
  }
  if (in_array_ && s[i] == ']' && region_calls_ == 0) {
    pos_ = i + 1;
    mode_ = Mode::kAfterCalls;
    return true;
  }
  return step_call(out, final, i, from);
}

// kArguments: the whole output is the one call's arguments.
bool ToolCallParser::step_arguments(ToolParseDelta& out, bool final) {
  const std::string_view s = buf_;
  send_args(out, s.substr(region_start_));
  if (final) {
    finish_call(out, s.substr(region_start_));
    mode_ = Mode::kAfterCalls;
    pos_ = s.size();
  }
  return false;
}

// After a call (at `i`): its closing marker, a separator before the next call, or the end of the
// calls.
bool ToolCallParser::step_separator(bool final, size_t i) {
  const std::string_view s = buf_;
  if (i == s.size()) {
    if (!final) return false;
    mode_ = Mode::kAfterCalls;  // a missing closing marker or bracket is forgiven
    pos_ = i;
    return true;
  }
  need_sep_ = false;
  switch (format_) {
    case ToolCallFormat::kHermes:
      if (s.substr(i, kHermesClose.size()) == kHermesClose) {
        pos_ = i + kHermesClose.size();
      } else if (!final && starts_partial(s, i, kHermesClose)) {
        need_sep_ = true;
        return false;
      } else {
        pos_ = i;  // text after a call without its closing marker: content
      }
      mode_ = Mode::kContent;
      return true;
    case ToolCallFormat::kLlama3Json:
      if (s[i] == ';') {
        pos_ = i + 1;
        return true;
      }
      break;
    default:  // the array formats
      if (s[i] == ',') {
        pos_ = i + 1;
        return true;
      }
      if (s[i] == ']') i += 1;
      break;
  }
  pos_ = i;
  mode_ = Mode::kAfterCalls;
  return true;
}

// Mistral after its marker (at `i`, not a lone call object): the array's '[', or (the text ends
// there, or goes on otherwise) no calls after all.
bool ToolCallParser::open_mistral_array(ToolParseDelta& out, bool final, size_t i) {
  const std::string_view s = buf_;
  if (i == s.size()) {
    if (!final) return false;
    fall_back_to_content(out, region_start_);
    return true;
  }
  if (s[i] == '[') {
    in_array_ = true;
    pos_ = i + 1;
    return true;
  }
  fall_back_to_content(out, region_start_);
  return true;
}

// A call object at `i`: announced once its name is complete, its arguments streamed as they come,
// finished when complete. A broken call not yet announced is content from `from`.
bool ToolCallParser::step_call(ToolParseDelta& out, bool final, size_t i, size_t from) {
  const std::string_view s = buf_;
  const CallScan c = scan_call(s, i);
  const bool complete = c.status == Scan::kOk;
  // An empty name is no name: no client could call it (found by fuzz_tool_calls: "" announced a
  // call).
  const bool named = c.name && !c.name->empty();
  const bool bad = c.status == Scan::kBad || (complete && !named);
  if (named) {  // a complete name announces the call, even if what follows is broken
    announce(out, *c.name);
    if (c.args_started && !c.args_string)
      send_args(out, s.substr(c.args_begin, c.args_end - c.args_begin));
  }
  if (!bad && !complete && !final) return false;
  if (bad || !complete) {
    if (!cur_.announced) {
      fall_back_to_content(out, from);
      return true;
    }
    // Announced already: the call keeps what was streamed; the broken rest is dropped (hermes:
    // up to the closing marker, after which text is content again).
    finish_call(out, cur_.args);
    pos_ = i;
    mode_ = format_ == ToolCallFormat::kHermes ? Mode::kSkip : Mode::kDrop;
    return true;
  }
  const bool valid = nlohmann::json::accept(s.substr(i, c.end - i));
  if (!valid && !cur_.announced) {
    fall_back_to_content(out, from);
    return true;
  }
  finish_call(out, call_arguments(s, c));
  pos_ = c.end;
  need_sep_ = true;
  return true;
}

std::string tool_call_grammar(ToolCallFormat format, const std::vector<ToolSpec>& tools,
                              bool single, bool mistral_marker) {
  using grammar::gbnf_literal;
  INFERD_CHECK(!tools.empty(), "tool_call_grammar needs at least one tool");
  if (format == ToolCallFormat::kArguments) {
    INFERD_CHECK(tools.size() == 1, "a named function's grammar takes exactly one tool");
    return grammar::json_schema_to_gbnf(tools[0].parameters, {"root", "args-", tools[0].strict});
  }
  const bool params_key =
      format == ToolCallFormat::kLlama3Json || format == ToolCallFormat::kJsonArray;
  const char* args_key = params_key ? "parameters" : "arguments";
  std::string g;
  std::string alternatives;
  for (size_t i = 0; i < tools.size(); ++i) {
    // {"name": "<fn>", "<args_key>": <arguments>}: the name first, so that a stream can announce
    // the call before its arguments arrive.
    nlohmann::ordered_json props = nlohmann::ordered_json::object();
    props["name"] = {{"const", tools[i].name}};
    props[args_key] = tools[i].parameters;
    nlohmann::ordered_json call = nlohmann::ordered_json::object();
    call["type"] = "object";
    call["properties"] = std::move(props);
    call["required"] = {"name", args_key};
    call["additionalProperties"] = false;
    const std::string rule = fmt::format("call{}", i);
    g += grammar::json_schema_to_gbnf(call, {rule, fmt::format("t{}-", i), tools[i].strict});
    g += "\n";
    alternatives += (i ? " | " : "") + rule;
  }
  g += "call ::= " + alternatives + "\n";
  std::string one, sep, open, close;
  switch (format) {
    case ToolCallFormat::kHermes:
      one = gbnf_literal("<tool_call>\n") + " call " + gbnf_literal("\n</tool_call>");
      sep = gbnf_literal("\n");
      break;
    case ToolCallFormat::kLlama3Json:
      one = "call";
      sep = gbnf_literal("; ");
      break;
    case ToolCallFormat::kMistral:
      one = "call";
      sep = gbnf_literal(", ");
      open = gbnf_literal(mistral_marker ? "[TOOL_CALLS][" : "[");
      close = gbnf_literal("]");
      break;
    default:  // kJsonArray
      one = "call";
      sep = gbnf_literal(", ");
      open = gbnf_literal("[");
      close = gbnf_literal("]");
      break;
  }
  // Up to two newlines first: what models write after </think> (the parsers skip them).
  g += "root ::= (\"\\n\" \"\\n\"?)? ";
  if (!open.empty()) g += open + " ";
  g += one;
  if (!single) g += " (" + sep + " " + one + ")*";
  if (!close.empty()) g += " " + close;
  g += "\n";
  return g;
}

}  // namespace inferd::server
