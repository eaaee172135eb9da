// A tolerant scanner for JSON that may be cut short (a tool call still streaming in): how far a
// value, or a call object {"name": ..., "arguments": ...}, goes, and whether it is complete, may
// still be completed, or can no longer be JSON.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace inferd::server {

// JSON whitespace.
bool is_json_ws(char c);
// The first position at or after `i` that is not JSON whitespace.
size_t skip_json_ws(std::string_view s, size_t i);

// Scanning JSON that may be cut short: kOk (complete; `i` moved past it), kMore (the text ends
// inside it), kBad (not JSON; `i` moved to the offending byte). Escapes and numbers are checked
// loosely; a finished call is parsed for real before it is accepted.
enum class Scan { kOk, kMore, kBad };

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

// Scans the call object starting at `start`.
CallScan scan_call(std::string_view s, size_t start);

}  // namespace inferd::server
