// Incremental parser of a Server-Sent Events stream (the WHATWG event-stream format): lines end
// in \n, \r\n or \r; "data:" lines of one event are joined with \n; a blank line ends the event;
// lines starting with ':' are comments.
#pragma once

#include <string>
#include <string_view>

namespace inferd::bench {

class SseParser {
 public:
  // Feeds the next bytes of the stream; calls on_event(event_type, data) for each complete event
  // that had at least one data line (event_type is "" unless an "event:" line named it).
  template <typename F>
  void feed(std::string_view bytes, F&& on_event) {
    for (char c : bytes) {
      if (c == '\n' && last_cr_) {
        last_cr_ = false;
        continue;
      }
      last_cr_ = c == '\r';
      if (c == '\n' || c == '\r') {
        line_done(on_event);
        line_.clear();
      } else {
        line_ += c;
      }
    }
  }
  // At the end of the stream: an event still open (no final blank line) is dispatched.
  template <typename F>
  void finish(F&& on_event) {
    if (!line_.empty()) line_done(on_event);
    line_.clear();
    dispatch(on_event);
  }

 private:
  template <typename F>
  void line_done(F& on_event) {
    if (line_.empty()) {
      dispatch(on_event);
      return;
    }
    if (line_[0] == ':') return;
    const size_t colon = line_.find(':');
    std::string_view field(line_);
    std::string_view value;
    if (colon != std::string::npos) {
      field = std::string_view(line_).substr(0, colon);
      value = std::string_view(line_).substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data_) data_ += '\n';
      data_ += value;
      has_data_ = true;
    } else if (field == "event") {
      event_ = value;
    }
  }
  template <typename F>
  void dispatch(F& on_event) {
    if (has_data_) on_event(std::string_view(event_), std::string_view(data_));
    has_data_ = false;
    data_.clear();
    event_.clear();
  }

  std::string line_;
  std::string data_;
  std::string event_;
  bool has_data_ = false;
  bool last_cr_ = false;
};

}  // namespace inferd::bench
