// Stop strings over streamed text: text is released as soon as it can no longer be part of a
// stop string; a match cuts the text before the stop string (or after it, when it is to be
// included). Only the held-back tail is searched, so each push costs O(new text + held text).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace inferd {

class StopStringMatcher {
 public:
  StopStringMatcher() = default;
  StopStringMatcher(std::span<const std::string> stops, bool include_stop_in_output);

  // Adds newly decoded text; appends to `emit` the text that became final. Returns the index of
  // the stop string that matched (the earliest in the text; the longest at the same position),
  // after which nothing more is to be emitted.
  std::optional<size_t> push(std::string_view text, std::string& emit);
  // At the end of the sequence: the text still held back.
  std::string flush();

  bool empty() const { return stops_.empty(); }

 private:
  std::vector<std::string> stops_;
  bool include_ = false;
  std::string held_;
};

}  // namespace inferd
