// Tool-call parsers: a tolerant scanner for possibly-unfinished JSON, the framing of each format
// around it (markers, separators), and the streaming bookkeeping (what was already returned).
#include "server/tool_calls.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <random>

#include "core/error.h"
#include "grammar/json_schema.h"
#include "grammar/regex_converter.h"

namespace inferd::server {

namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kMistralMarker = "[TOOL_CALLS]";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr int kMaxDepth = 128;  // deeper JSON in a call is malformed (bounds the recursion)

bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

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

// Scanning JSON that may be cut short: kOk (complete; `i` moved past it), kMore (the text ends
// inside it), kBad (not JSON; `i` moved to the offending byte). Escapes and numbers are checked
// loosely; a finished call is parsed for real before it is accepted.
enum class Scan { kOk, kMore, kBad };

Scan scan_value(std::string_view s, size_t& i, int depth);

Scan scan_string(std::string_view s, size_t& i) {
  size_t j = i + 1;
  while (j < s.size()) {
    const char c = s[j];
    if (c == '"') {
      i = j + 1;
      return Scan::kOk;
    }
    if (c == '\\') {
      j += 2;
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      i = j;
      return Scan::kBad;
    }
    ++j;
  }
  return Scan::kMore;
}

Scan scan_number(std::string_view s, size_t& i) {
  size_t j = i;
  while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '-' ||
                          s[j] == '+' || s[j] == '.' || s[j] == 'e' || s[j] == 'E'))
    ++j;
  if (j == s.size()) return Scan::kMore;  // more digits may follow
  i = j;
  return Scan::kOk;
}

Scan scan_literal(std::string_view s, size_t& i, std::string_view word) {
  const std::string_view rest = s.substr(i);
  if (rest.size() < word.size())
    return word.substr(0, rest.size()) == rest ? Scan::kMore : Scan::kBad;
  if (rest.substr(0, word.size()) != word) return Scan::kBad;
  i += word.size();
  return Scan::kOk;
}

Scan scan_container(std::string_view s, size_t& i, int depth, bool object) {
  if (depth > kMaxDepth) return Scan::kBad;
  const char close = object ? '}' : ']';
  size_t j = skip_ws(s, i + 1);
  auto fail = [&](Scan r) {
    if (r == Scan::kBad) i = j;
    return r;
  };
  if (j == s.size()) return Scan::kMore;
  if (s[j] == close) {
    i = j + 1;
    return Scan::kOk;
  }
  for (;;) {
    if (object) {
      if (j == s.size()) return Scan::kMore;
      if (s[j] != '"') return fail(Scan::kBad);
      if (Scan r = scan_string(s, j); r != Scan::kOk) return fail(r);
      j = skip_ws(s, j);
      if (j == s.size()) return Scan::kMore;
      if (s[j] != ':') return fail(Scan::kBad);
      j = skip_ws(s, j + 1);
    }
    if (Scan r = scan_value(s, j, depth + 1); r != Scan::kOk) return fail(r);
    j = skip_ws(s, j);
    if (j == s.size()) return Scan::kMore;
    if (s[j] == close) {
      i = j + 1;
      return Scan::kOk;
    }
    if (s[j] != ',') return fail(Scan::kBad);
    j = skip_ws(s, j + 1);
  }
}

Scan scan_value(std::string_view s, size_t& i, int depth) {
  if (i >= s.size()) return Scan::kMore;
  switch (s[i]) {
    case '{':
      return scan_container(s, i, depth, true);
    case '[':
      return scan_container(s, i, depth, false);
    case '"':
      return scan_string(s, i);
    case 't':
      return scan_literal(s, i, "true");
    case 'f':
      return scan_literal(s, i, "false");
    case 'n':
      return scan_literal(s, i, "null");
    default:
      if (s[i] == '-' || std::isdigit(static_cast<unsigned char>(s[i]))) return scan_number(s, i);
      return Scan::kBad;
  }
}

// What is known of one call object `{"name": ..., "arguments": ...}` starting at `start`.
struct CallScan {
  Scan status = Scan::kMore;
  size_t end = 0;                   // past the closing brace (kOk)
  std::optional<std::string> name;  // once its string is complete
  bool args_started = false;
  bool args_done = false;
  bool args_string = false;  // the arguments were written as a JSON string
  size_t args_begin = 0;
  size_t args_end = 0;  // bytes known to belong to the arguments: [args_begin, args_end)
};

CallScan scan_call(std::string_view s, size_t start) {
  CallScan c;
  auto done = [&](Scan r) {
    c.status = r;
    return c;
  };
  if (start >= s.size()) return done(Scan::kMore);
  if (s[start] != '{') return done(Scan::kBad);
  size_t j = skip_ws(s, start + 1);
  if (j == s.size()) return done(Scan::kMore);
  if (s[j] == '}') {
    c.end = j + 1;
    return done(Scan::kOk);
  }
  for (;;) {
    if (j == s.size()) return done(Scan::kMore);
    if (s[j] != '"') return done(Scan::kBad);
    const size_t key_begin = j;
    if (Scan r = scan_string(s, j); r != Scan::kOk) return done(r);
    std::string key;
    try {
      key = nlohmann::json::parse(s.substr(key_begin, j - key_begin)).get<std::string>();
    } catch (const std::exception&) {
      return done(Scan::kBad);
    }
    j = skip_ws(s, j);
    if (j == s.size()) return done(Scan::kMore);
    if (s[j] != ':') return done(Scan::kBad);
    j = skip_ws(s, j + 1);
    const size_t vbegin = j;
    const Scan r = scan_value(s, j, 1);
    if (key == "name") {
      if (vbegin < s.size() && s[vbegin] != '"' && r != Scan::kMore) return done(Scan::kBad);
      if (r == Scan::kOk) {
        try {
          c.name = nlohmann::json::parse(s.substr(vbegin, j - vbegin)).get<std::string>();
        } catch (const std::exception&) {
          return done(Scan::kBad);
        }
      }
    } else if ((key == "arguments" || key == "parameters") && !c.args_started) {
      c.args_started = true;
      c.args_begin = vbegin;
      c.args_string = vbegin < s.size() && s[vbegin] == '"';
      if (r == Scan::kOk) {
        c.args_done = true;
        c.args_end = j;
      } else if (vbegin < s.size() && (s[vbegin] == '{' || s[vbegin] == '[')) {
        // Everything so far (up to the offending byte when broken) is inside the arguments.
        c.args_end = r == Scan::kMore ? s.size() : j;
      } else {
        c.args_end = vbegin;  // a string or scalar: only whole
      }
    }
    if (r != Scan::kOk) return done(r);
    j = skip_ws(s, j);
    if (j == s.size()) return done(Scan::kMore);
    if (s[j] == '}') {
      c.end = j + 1;
      return done(Scan::kOk);
    }
    if (s[j] != ',') return done(Scan::kBad);
    j = skip_ws(s, j + 1);
  }
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
  while (e > pos_ && is_ws(buf_[e - 1])) --e;
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
  const size_t i = skip_ws(s, pos_);
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
  if (format_ == ToolCallFormat::kArguments) {
    send_args(out, s.substr(region_start_));
    if (final) {
      finish_call(out, s.substr(region_start_));
      mode_ = Mode::kAfterCalls;
      pos_ = s.size();
    }
    return false;
  }
  size_t i = skip_ws(s, pos_);
  if (need_sep_) {
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
  if (format_ == ToolCallFormat::kMistral && !in_array_) {
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
    if (s[i] != '{') {
      fall_back_to_content(out, region_start_);
      return true;
    }
    // A single object without the array: accepted as one call.
  }
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
  const CallScan c = scan_call(s, i);
  const bool complete = c.status == Scan::kOk;
  const bool bad = c.status == Scan::kBad || (complete && !c.name);
  if (c.name) {  // a complete name announces the call, even if what follows is broken
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
  // A complete call object.
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
  const bool valid = nlohmann::json::accept(s.substr(i, c.end - i));
  if (!valid && !cur_.announced) {
    fall_back_to_content(out, from);
    return true;
  }
  finish_call(out, args);
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
