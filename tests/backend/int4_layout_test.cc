// The CUDA int4 weight layout (backend/cuda/int4_layout.h, issue 28), on the host: the repack is a
// bijection, and an emulation of one warp of int4_gemm.cu (its loads of the A fragments, its
// decoding of a tile word into B fragments, its epilogue's row/column of each accumulator),
// combined by mma.sync m16n8k16's fragment layouts as the PTX ISA defines them, computes x W^T.
// Runs everywhere (no GPU, no CUDA headers).
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "backend/cuda/int4_layout.h"
#include "core/rng.h"

namespace inferd {
namespace {

TEST(Int4Layout, RepackIsABijection) {
  const int64_t N = 48, K = 192;
  std::set<std::pair<int64_t, int>> seen;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      int64_t word;
      int shift;
      cuda::int4_tile_position(n, k, K, &word, &shift);
      ASSERT_GE(word, 0);
      ASSERT_LT(word, N * K / 8);
      ASSERT_TRUE(shift >= 0 && shift <= 28 && shift % 4 == 0);
      EXPECT_TRUE(seen.insert({word, shift}).second) << n << " " << k;
    }
  EXPECT_TRUE(cuda::int4_shape_supported(4096, 14336, 128));
  EXPECT_FALSE(cuda::int4_shape_supported(4096, 4096 + 32, 32));  // K % 64
  EXPECT_FALSE(cuda::int4_shape_supported(4104, 4096, 128));      // N % 16
  EXPECT_FALSE(cuda::int4_shape_supported(4096, 4096, 8));        // group % 16
}

// One block of int4_gemm_kernel<1, 1> (16 rows, 16 outputs, every 64-input chunk), emulated.
TEST(Int4Layout, WarpEmulationComputesTheProduct) {
  const int64_t N = 32, K = 128, T = 16;
  Rng rng(28);
  std::vector<uint32_t> q(size_t(N * K / 8));
  for (auto& w : q) w = uint32_t(rng.next_u64());
  std::vector<uint32_t> tiles(q.size(), 0u);
  cuda::int4_repack_tiles(q.data(), N, K, tiles.data());
  auto code = [&](int64_t n, int64_t k) {
    return int((q[size_t(n * (K / 8) + k / 8)] >> (4 * (k % 8))) & 15u);
  };
  std::vector<double> x(size_t(T * K));
  for (auto& v : x) v = rng.uniform() * 2 - 1;
  for (int64_t nb = 0; nb < N / 16; ++nb) {
    double acc[32][2][4] = {};  // [lane][n8 tile][c], as the kernel's acc[0][j][c]
    for (int64_t kc = 0; kc < K / 64; ++kc)
      for (int kk = 0; kk < 4; ++kk) {
        const int64_t k0 = kc * 64 + kk * 16;
        // What each lane holds: A pairs as the kernel loads them, B pairs as it decodes them.
        double a[32][4][2], b[32][2][2][2];
        for (int lane = 0; lane < 32; ++lane) {
          const int g = lane / 4, t = lane % 4;
          const int64_t rows[4] = {g, g + 8, g, g + 8},
                        cols[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
          for (int r = 0; r < 4; ++r)
            for (int h = 0; h < 2; ++h) a[lane][r][h] = x[size_t(rows[r] * K + k0 + cols[r] + h)];
          const uint32_t word = tiles[size_t(((nb * (K / 64) + kc) * 32 + lane) * 4 + kk)];
          for (int j = 0; j < 2; ++j)      // n8 tile: pairs 2 j ..
            for (int r = 0; r < 2; ++r)    // b0 / b1 register: pair 2 j + r
              for (int h = 0; h < 2; ++h)  // low / high half: nibble + 4 h
                b[lane][j][r][h] = double((word >> (4 * (2 * j + r + 4 * h))) & 15u);
        }
        // mma.m16n8k16 by the PTX ISA's fragment layouts: A (row-major 16x16): lane 4g+t holds
        // a0,a1 = A[g][2t, 2t+1], a2,a3 = A[g+8][..], a4,a5 = A[g][2t+8, 2t+9], a6,a7 = A[g+8][..];
        // B (16x8): b0,b1 = B[2t, 2t+1][g], b2,b3 = B[2t+8, 2t+9][g]; C: c0,c1 = C[g][2t, 2t+1],
        // c2,c3 = C[g+8][2t, 2t+1].
        double A[16][16], B[2][16][8];
        for (int lane = 0; lane < 32; ++lane) {
          const int g = lane / 4, t = lane % 4;
          for (int h = 0; h < 2; ++h) {
            A[g][2 * t + h] = a[lane][0][h];
            A[g + 8][2 * t + h] = a[lane][1][h];
            A[g][2 * t + 8 + h] = a[lane][2][h];
            A[g + 8][2 * t + 8 + h] = a[lane][3][h];
            for (int j = 0; j < 2; ++j) {
              B[j][2 * t + h][g] = b[lane][j][0][h];
              B[j][2 * t + 8 + h][g] = b[lane][j][1][h];
            }
          }
        }
        for (int lane = 0; lane < 32; ++lane) {
          const int g = lane / 4, t = lane % 4;
          for (int j = 0; j < 2; ++j)
            for (int c = 0; c < 4; ++c) {
              const int row = g + (c >= 2 ? 8 : 0), col = 2 * t + (c & 1);
              for (int kx = 0; kx < 16; ++kx) acc[lane][j][c] += A[row][kx] * B[j][kx][col];
            }
        }
      }
    // The kernel's epilogue: accumulator (lane l, j, c) is row (l >> 2) + 8 (c >= 2), column
    // 16 nb + 8 j + 2 (l & 3) + (c & 1).
    for (int l = 0; l < 32; ++l)
      for (int j = 0; j < 2; ++j)
        for (int c = 0; c < 4; ++c) {
          const int64_t row = (l >> 2) + (c >= 2 ? 8 : 0);
          const int64_t col = nb * 16 + j * 8 + 2 * (l & 3) + (c & 1);
          double want = 0;
          for (int64_t k = 0; k < K; ++k) want += x[size_t(row * K + k)] * code(col, k);
          EXPECT_NEAR(acc[l][j][c], want, 1e-9) << "row " << row << " col " << col;
        }
  }
}

}  // namespace
}  // namespace inferd
