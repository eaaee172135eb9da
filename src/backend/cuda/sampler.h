// The CUDA sampler's launcher (sampler.cu). Plain C++ for nvcc and the host compiler alike. The
// semantics are the reference sampler's (backend/sampling.h), with the same arithmetic
// (backend/sampling_math.h): from the same logits it returns the same tokens.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/sampling_math.h"

namespace inferd::cuda {

// Per-row logprobs, written for rows with num_logprobs >= 0: the sampled token's raw logprob and
// rank, then `num_top` (id, logprob) pairs, most likely first. A record takes
// logprob_record_bytes(max_top) bytes.
struct LogprobRecordHead {
  float logprob;
  int32_t rank;
  int32_t num_top;
  int32_t pad;
  // followed by int32_t ids[max_top], float logprobs[max_top]
};
INFERD_HD int64_t logprob_record_bytes(int32_t max_top) {
  return int64_t(sizeof(LogprobRecordHead)) + 8 * int64_t(max_top);
}

struct SamplerParams {
  float* logits = nullptr;  // [num_rows, ld] fp32, overwritten at edited tokens while sampling
  int64_t ld = 0;
  int32_t vocab = 0;
  int32_t num_rows = 0;
  const sampling::SamplingRow* rows = nullptr;  // [num_rows]
  // Edits live in the metadata buffer at meta + header[kHeaderEditsOffset] (ints); rows index them.
  const int32_t* header = nullptr;
  int32_t* meta = nullptr;
  int32_t* tokens = nullptr;  // [num_rows] out
  char* records = nullptr;    // [num_rows] logprob records out
  int32_t max_top = 0;        // rows ask for at most this many top logprobs
};

cudaError_t launch_sampler(const SamplerParams& p, cudaStream_t stream);

}  // namespace inferd::cuda
