// Tensor parallelism as a model sees it (issue 33): which rank of how many this copy of the model
// is, the communicator its row-parallel linears all-reduce over, and how a tensor is split among
// the ranks (Shard). A column-parallel linear keeps 1/size of its output rows (q/k/v by heads,
// gate/up by columns), a row-parallel one 1/size of its inputs (o, down) and sums the ranks'
// partial outputs; the vocabulary (embedding, lm_head) is split by rows when it divides evenly.
// KV heads are divided too, or, when there are more ranks than KV heads, each rank keeps the one
// KV head its query heads read (replicated on size / num_kv_heads ranks).
#pragma once

#include <cstdint>

#include "core/error.h"

namespace inferd {

class Communicator;

// The slice of a tensor this rank holds: part `rank` of `size` equal parts along `dim` (-1: the
// whole tensor).
struct Shard {
  int dim = -1;
  int64_t rank = 0;
  int64_t size = 1;
  bool whole() const { return dim < 0 || size == 1; }
};

struct TensorParallel {
  int rank = 0;
  int size = 1;
  Communicator* comm = nullptr;  // null when size is 1

  bool enabled() const { return size > 1; }
  // This rank's 1/size along `dim`.
  Shard shard(int dim) const { return enabled() ? Shard{dim, rank, size} : Shard{}; }
  // Attention heads (rows of q, or of o's inputs): `num_heads` must divide by size.
  int64_t local_heads(int64_t num_heads) const {
    if (num_heads % size != 0)
      fail("--tensor-parallel-size {}: the model's {} attention heads do not divide into {} ranks",
           size, num_heads, size);
    return num_heads / size;
  }
  // KV heads: divided when there are at least as many as ranks, else one a rank (replicated).
  int64_t local_kv_heads(int64_t num_kv_heads) const {
    check_kv(num_kv_heads);
    return num_kv_heads >= size ? num_kv_heads / size : 1;
  }
  // The rows (dim 0) of k or v this rank keeps, in units of heads.
  Shard kv_shard(int64_t num_kv_heads) const {
    if (!enabled()) return {};
    check_kv(num_kv_heads);
    if (num_kv_heads >= size) return {0, rank, size};
    return {0, rank / (size / num_kv_heads), num_kv_heads};  // head rank / (ranks a head)
  }

 private:
  void check_kv(int64_t num_kv_heads) const {
    if (num_kv_heads >= size ? num_kv_heads % size != 0 : size % num_kv_heads != 0)
      fail(
          "--tensor-parallel-size {}: the model's {} KV heads neither divide into {} ranks nor "
          "replicate evenly across them",
          size, num_kv_heads, size);
  }
};

}  // namespace inferd
