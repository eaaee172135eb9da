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

// The device (a GPU) failed so that this process can run nothing more on it: a sticky CUDA error
// (illegal address, launch failure, uncorrectable ECC error, ...; the CUDA runtime then fails every
// later call). Neither a user's error nor a broken invariant: the serving process stops and exits
// non-zero so that its supervisor restarts it. The message names the device error.
class DeviceFault : public std::runtime_error {
 public:
  explicit DeviceFault(const std::string& msg) : std::runtime_error(msg) {}
};

}  // namespace inferd
