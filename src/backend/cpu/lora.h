// The CPU reference of the batched multi-LoRA op (KernelOps::lora_add, issue 29): for each row
// whose slot is set, shrink (x A^T into an fp32 vector of `rank` values) and expand (+= that
// vector times B^T), fp32 throughout. Rows run in parallel on the pool; each thread keeps one
// scratch vector, grown once.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend_types.h"
#include "core/thread_pool.h"

namespace inferd::cpu {

// x [T, in] and out [T, out] fp32 (rows may be strided); w's slots fp32; slots [T].
void lora_add(ThreadPool& pool, const Tensor& x, const LoraLinear& w, const int32_t* slots,
              Tensor out, std::vector<std::vector<float>>& scratch);

}  // namespace inferd::cpu
