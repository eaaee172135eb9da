// The error classes alone, without fmt (CUDA sources include this: nvcc cannot compile fmt 9).
#pragma once

#include <stdexcept>
#include <string>

namespace inferd {

// A problem a user can cause (bad flag, bad model directory, bad request); the message names the
// thing and what was expected.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// A broken internal invariant.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& msg) : std::logic_error(msg) {}
};

}  // namespace inferd
