// Errors. `Error` is for problems a user can cause (bad flag, bad model directory, bad request):
// its message names the thing and what was expected. `InternalError` is for broken invariants.
#pragma once

#include <fmt/format.h>

#include <string>

#include "core/error_types.h"

namespace inferd {

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] void internal_failure(const char* file, int line, const char* cond,
                                   const std::string& msg);

}  // namespace inferd

// Internal invariant: fails loudly with file, line and the condition.
#define INFERD_CHECK(cond, ...)                                                          \
  do {                                                                                   \
    if (!(cond)) [[unlikely]]                                                            \
      ::inferd::internal_failure(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
  } while (0)
