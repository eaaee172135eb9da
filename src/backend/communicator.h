// The communicator of a tensor-parallel group (issue 33): the collectives one rank runs with the
// other ranks of its group. Every rank calls the same collectives in the same order with tensors of
// the same shape; a call returns when this rank's part is done. The CPU implementation
// (cpu/cpu_communicator.h: threads sharing memory) proves the sharding in CI; an NCCL one on the
// GPU implements the same interface (on the backend's stream, capturable in CUDA graphs).
//
// Failure: a rank whose step fails calls abort(); every rank waiting in a collective of the group
// (or calling one later) then throws Error naming the failed rank and its reason, so no rank is
// left waiting for one that will never come.
#pragma once

#include <string>

#include "core/tensor.h"

namespace inferd {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;

  // t = the sum of every rank's t, in place, the same value on every rank. The order of the sum
  // is fixed (rank 0 + rank 1 + ... for every element), so results are reproducible run to run
  // and identical across ranks.
  virtual void all_reduce_sum(Tensor t) = 0;
  // Every rank's t becomes `root`'s t.
  virtual void broadcast(Tensor t, int root) = 0;
  // `out`'s extent along `dim` (0 or 1 of a 2-D tensor) is size() times `in`'s; block r along
  // `dim` gets rank r's `in`. `in` may be this rank's own block of `out` (in place).
  virtual void all_gather(const Tensor& in, Tensor out, int dim) = 0;
  // Waits for every rank.
  virtual void barrier() = 0;
  // This rank failed with `reason`: the group is broken for good (see above). Never throws.
  virtual void abort(const std::string& reason) noexcept = 0;
};

}  // namespace inferd
