// The int4 weight layout of the CUDA backend (issue 28), in a header without CUDA so the host
// repack and a host test (tests/backend/int4_layout_test.cc) share it with the kernels.
//
// Device layout of an Int4Linear [N, K] (N % 16 == 0, K % 64 == 0, group_size % 16 == 0): the
// weight is cut into tiles of 16 outputs x 64 inputs, tile (nb, kc) at word offset
// (nb * K/64 + kc) * 128; in a tile, lane l (g = l / 4, t = l % 4) owns the 16 bytes at words
// 4 l .. 4 l + 3, word kk covering inputs 64 kc + 16 kk .. + 16 (one k16 step of mma.m16n8k16).
// A lane's B fragments of that step (mma.sync m16n8k16, bf16 pairs b0 = inputs (2t, 2t+1),
// b1 = (2t+8, 2t+9), for output 16 nb + g in n8 tile 0 and 16 nb + g + 8 in tile 1) are pairs
// j = 2 * tile + (b0: 0, b1: 1); pair j keeps its low input in nibble j and its high input in
// nibble j + 4, so (word >> 4 j) & 0x000f000f puts both codes in the mantissas of a bf16x2 at once.
// So one coalesced 16-byte load a lane gives a warp the B fragments of 4 k16 steps x 2 n8 tiles.
// Inputs are in the linear's canonical (act-order) order; the input columns are gathered by perm
// first. Group scales and zero points: fp16 pairs (scale, zero) [K / group_size, N].
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define INFERD_INT4_HD __host__ __device__
#else
#define INFERD_INT4_HD
#endif

namespace inferd::cuda {

// Whether the int4 kernels take an [N, K] weight of this group size.
inline bool int4_shape_supported(int64_t n, int64_t k, int64_t group_size) {
  return n > 0 && k > 0 && n % 16 == 0 && k % 64 == 0 && group_size > 0 && group_size % 16 == 0 &&
         k % group_size == 0;
}

// Where the code of (output n, input k) of an [N, K] weight lives in the tile layout: its word
// and bit shift (the host repack writes there, the dequantization kernel reads there).
INFERD_INT4_HD inline void int4_tile_position(int64_t n, int64_t k, int64_t K, int64_t* word,
                                              int* shift) {
  const int64_t nb = n / 16, kc = k / 64, kk = (k % 64) / 16, kr = k % 16;
  const int64_t nr = n % 16, g = nr % 8, hi = nr / 8;
  const int64_t t = (kr % 8) / 2;
  const int64_t lane = g * 4 + t;
  const int nib = int((kr % 2) * 4 + hi * 2 + kr / 8);
  *word = ((nb * (K / 64) + kc) * 32 + lane) * 4 + kk;
  *shift = 4 * nib;
}

// The canonical codes (backend_types.h's Int4Linear: q [N, K/8] words, nibble i of word w is
// input 8w + i) in the tile layout: tiles [N * K / 8] words, zero-initialised by the caller.
inline void int4_repack_tiles(const uint32_t* q, int64_t N, int64_t K, uint32_t* tiles) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const uint32_t code = (q[n * (K / 8) + k / 8] >> (4 * (k % 8))) & 15u;
      int64_t word;
      int shift;
      int4_tile_position(n, k, K, &word, &shift);
      tiles[word] |= code << shift;
    }
}

}  // namespace inferd::cuda
