// What the router reads in the bytes it passes through from a replica: the opening (preamble)
// event of a chat stream, held back so that a replica that dies before its first token leaves the
// request retryable; and the usage a response reports (tokens-per-minute accounting), with the
// usage event dropped from a stream when the router asked for it on the client's behalf.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace inferd::router {

// True for the opening event of a chat stream (the assistant role, no text yet).
bool is_preamble_event(std::string_view data);

// True when `held` (the start of an SSE body) holds a complete event that is not the preamble
// (or more than 64 KiB): the stream may then go to the client.
bool ready_to_commit(const std::string& held);

// total_tokens of a response's (or a stream event's) "usage" object, or -1.
int64_t usage_total(std::string_view json_text);

// Passes SSE bytes through event by event, taking the usage event's total_tokens and dropping
// that event when `strip` (the router asked for it on the client's behalf).
class UsageTap {
 public:
  explicit UsageTap(bool strip) : strip_(strip) {}
  // The complete events of what arrived so far (a partial event waits for the rest).
  std::string feed(std::string_view bytes);
  // What is left at the end of the body.
  std::string flush();
  int64_t total() const { return total_; }

 private:
  bool strip_;
  std::string pending_;
  int64_t total_ = -1;
};

}  // namespace inferd::router
