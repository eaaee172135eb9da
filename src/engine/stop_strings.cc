#include "engine/stop_strings.h"

#include <algorithm>

namespace inferd {

StopStringMatcher::StopStringMatcher(std::span<const std::string> stops,
                                     bool include_stop_in_output)
    : include_(include_stop_in_output) {
  for (const auto& s : stops) {
    if (!s.empty()) stops_.push_back(s);
  }
}

std::optional<size_t> StopStringMatcher::push(std::string_view text, std::string& emit) {
  if (stops_.empty()) {
    emit.append(text);
    return std::nullopt;
  }
  held_.append(text);
  // Earliest match; at equal positions the longest stop string.
  size_t best_pos = std::string::npos, best = 0;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = held_.find(stops_[i]);
    if (pos == std::string::npos) continue;
    if (pos < best_pos || (pos == best_pos && stops_[i].size() > stops_[best].size())) {
      best_pos = pos;
      best = i;
    }
  }
  if (best_pos != std::string::npos) {
    emit.append(held_, 0, include_ ? best_pos + stops_[best].size() : best_pos);
    held_.clear();
    return best;
  }
  // Hold back the longest tail that is a proper prefix of some stop string. Everything before
  // it can never be part of a match (a match starting earlier would make a longer tail a
  // prefix). The tail starts with a stop string's first byte, so the cut is on a character
  // boundary of valid UTF-8.
  size_t hold = 0;
  for (const auto& s : stops_) {
    const size_t max_k = std::min(s.size() - 1, held_.size());
    for (size_t k = max_k; k > hold; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  emit.append(held_, 0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return std::nullopt;
}

std::string StopStringMatcher::flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace inferd
