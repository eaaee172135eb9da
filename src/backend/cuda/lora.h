// Launchers of the batched multi-LoRA kernels (issue 29; KernelOps::lora_add on CUDA), SGMV-style:
// rows are grouped by adapter slot into tiles of at most kLoraTileRows rows on the host, once a
// step (the step metadata, DeviceBatch::lora_tiles), and the kernels read the tiles on the device,
// so one captured CUDA graph replays any mix of adapters. Launch grids depend only on the number
// of rows and of slots. Plain C++ for nvcc and the host compiler alike; device pointers; bf16
// buffers as void*; ld* in elements.
//
// Tile metadata (int32): [0] the number of tiles n; then 3 ints a tile for tiles 0..T-1 (start in
// the row list, rows, slot); then the row list [T]: the rows of slot >= 0 sorted by slot (rows of
// the base model, slot -1, are in no tile).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace inferd::cuda {

inline constexpr int32_t kLoraTileRows = 64;

// Ints of the tile metadata for a step of `num_tokens` rows.
inline constexpr size_t lora_tile_ints(int32_t num_tokens) {
  return 4 * size_t(num_tokens) + 1;
}

// Fills `meta` (lora_tile_ints(slots.size()) ints) from each row's slot; `order` is scratch.
void build_lora_tiles(std::span<const int32_t> slots, int32_t* meta, std::span<int64_t> order);

// The most tiles a step of `num_tokens` rows can have with `num_slots` slots (the grids' y).
int32_t lora_max_tiles(int32_t num_tokens, int32_t num_slots);

// The K splits of the shrink; depends only on the shapes, so a captured graph and its replays
// agree.
int32_t lora_shrink_splits(int32_t num_tokens, int32_t max_tiles, int64_t in_features,
                           int64_t rank);
// Floats of the partial-sum scratch any step of at most `max_tokens` rows and `rank` columns
// needs.
size_t lora_partial_floats(int32_t max_tokens, int64_t rank);
// Ints of the shrink's split tickets for such steps; zero before the first shrink (each shrink
// leaves them zero).
size_t lora_ticket_ints(int32_t max_tokens, int64_t rank);

// The splits of partial the expand adds (1 where the shrink added them itself).
int32_t lora_expand_splits(int32_t num_tokens, int32_t max_tiles, int64_t in_features,
                           int64_t rank);
// Whether a step of `num_tokens` rows gains from its shrink beside the base GEMM (lora_begin);
// small steps issue the shrink right before the expand, which overlaps it instead (programmatic
// dependent launch).
bool lora_fork_shrink(int32_t num_tokens);

// partial [splits, num_tokens, R] (fp32) scratch: split j holds x[t] A_s^T over its K chunk for
// every row t of a tile (slot s); x [rows, K] bf16 (row stride ld_x), a [num_slots, R, K] bf16.
// Rows at or past `num_rows` are skipped. Small steps (at most 8 rows) use a split-K SIMT kernel
// with 16-byte loads and leave the splits to the expand (lora_expand_splits); larger ones a
// tensor-core (mma.sync bf16, fp32 sums) kernel over 64-row tiles, cp.async double-buffered,
// whose last block of each tile adds the splits into split 0 (in split order: deterministic;
// `tickets`, lora_ticket_ints of them, count the blocks and are left zero).
cudaError_t launch_lora_shrink(const void* x, int64_t ld_x, int32_t num_rows, const void* a,
                               const int32_t* tiles, int32_t num_tokens, int32_t max_tiles,
                               int64_t in_features, int64_t rank, float* partial, int32_t* tickets,
                               cudaStream_t stream);

// out [rows, N] (bf16, row stride ld_out) += (sum of the first `splits` splits of partial)[t]
// B_s^T for the rows of each tile, where output n of part p (part_end[p-1] <= n < part_end[p])
// reads only columns [p * max_rank, +max_rank) (b [num_slots, N, R] bf16). Tensor cores, the sums
// split into two bf16 halves (no visible rounding), fp32 sums, one rounding to bf16. In place: the
// base GEMM's output gets the adapter's contribution added. `after_shrink`: the shrink is the
// kernel issued right before on `stream`, and the expand is launched as its programmatic dependent
// (it overlaps the shrink until it needs the sums); else (the shrink forked on another stream and
// joined by an event) an ordinary launch.
cudaError_t launch_lora_expand(const float* partial, int32_t splits, const void* b,
                               const int32_t* tiles, int32_t num_rows, int32_t num_tokens,
                               int32_t max_tiles, int64_t out_features, int64_t rank,
                               int64_t max_rank, int32_t num_parts, const int64_t* part_end,
                               void* out, int64_t ld_out, bool after_shrink, cudaStream_t stream);

}  // namespace inferd::cuda
