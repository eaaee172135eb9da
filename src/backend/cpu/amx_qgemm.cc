// AMX int8 prefill GEMM of the K-quants (amx_qgemm.h). Compiled with -mamx-tile -mamx-int8 and
// AVX-512 (this file only); called only where amx_available() says the CPU and the OS allow it.
//
// Design. The weights stay as they are in the file (no copy, no repack: decode reads the same
// bytes): per 16 (Q4_K/Q5_K) or 32 (Q6_K) output rows and super-block, the rows' quants are
// unpacked to one byte each (8 KiB, L1) and become the A operand of the tile multiply (rows =
// weight rows, 16 per tile), each decoded block reused across every 16-token group of the batch.
// The activations (Q8_K rows) are re-laid once per call into AMX's B layout (4 bytes of 16 tokens
// per 64-byte row: a dword transpose by gathers), with each block's d and its sub-block sums.
// Q4_K / Q5_K fold the 6-bit scales into the weights as two digits (scale = 8 hi + lo; q * hi and
// q * lo fit u8), so two tile products per 64 elements (vpdpbusd u8 x s8) give the block's exact
// int as 8 * C_hi + C_lo. Q6_K (signed 8-bit scales) takes one tile product per 16-element
// sub-block (q - 32 as s8 x s8) and AVX-512 multiplies them by the scales and adds them exactly.
// The mins' int is a vpdpwssd of the mins against the sub-block sums. Then the float steps of
// KQuant::tile512 run lane by lane (tokens in lanes), so each output is the same float the
// one-row path gives.
// Measured (cpu_qgemm_bench --prefill-only --quick, T=128, 2 threads, Intel Xeon with AMX, this
// VM): Q4_K 242-257 GFLOP/s (VNNI tiles) -> 784-1117; Q6_K 117-135 -> 408-517.
#include "backend/cpu/amx_qgemm.h"

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/logging.h"

namespace inferd::cpu {
namespace {

using ggml::BlockQ8_K;

// ---- availability ---------------------------------------------------------------------------

const char* probe_amx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "no CPUID leaf 7";
  if (!(d & (1u << 24)) || !(d & (1u << 25))) return "the CPU has no AMX-TILE / AMX-INT8";
  if (!(c & (1u << 1)) || !(b & (1u << 16)) || !(c & (1u << 11)))
    return "the CPU lacks AVX-512 VBMI / F / VNNI";
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return "the OS has not enabled XSAVE";
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return "the OS has not enabled the AMX tile state (XCR0)";
#if defined(__linux__)
  constexpr long kReqXcompPerm = 0x1023, kXtiledata = 18;
  if (syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) != 0)
    return "Linux refused the AMX tile data permission (arch_prctl)";
  return nullptr;
#else
  return "AMX is used only on Linux";
#endif
}

const char* amx_reason() {
  static const char* const r = [] {
    const char* why = probe_amx();
    if (why) LOG_DEBUG("AMX int8 prefill off: {}", why);
    return why;
  }();
  return r;
}

// ---- tile configuration: C tiles 0..3 (16 x 16 int32), A tiles 4, 5 (16 rows x KS bytes), B
// tiles 6, 7 (KS / 4 rows x 64 bytes) ------------------------------------------------------------

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void configure(int ks) {
  TileConfig c;
  for (int t = 0; t < 4; ++t) c.rows[t] = 16, c.colsb[t] = 64;
  for (int t = 4; t < 6; ++t) c.rows[t] = 16, c.colsb[t] = uint16_t(ks);
  for (int t = 6; t < 8; ++t) c.rows[t] = uint8_t(ks / 4), c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

// ---- per-type weight decoding ------------------------------------------------------------------

// One weight row's block: its integer scales (per sub-block), the min pairs (Q4_K/Q5_K: mins 2p
// and 2p + 1 as int16 halves of dword p) and the float factors, as KQuant::tile512 computes them.
struct RowPrep {
  int32_t sc[16];
  int32_t mnp[4];
  float d, dmin;
};

inline float h2f(uint16_t h) {
  return _cvtsh_ss(h);
}

// Q4_K / Q5_K: the 8 6-bit scales and mins of the 12 packed bytes (ggml's get_scale_min_k4).
inline void scales_k4(const uint8_t* q, int32_t sc[8], int32_t mn[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = q[j] & 63;
    mn[j] = q[j + 4] & 63;
    sc[j + 4] = (q[j + 8] & 0xF) | (q[j] >> 6) << 4;
    mn[j + 4] = (q[j + 8] >> 4) | (q[j + 4] >> 6) << 4;
  }
}

template <class WB, bool kFive>
struct AQ45K {
  using Block = WB;
  static constexpr int kKS = 32;  // elements per sub-block (one tile product)
  static constexpr bool kMins = true, kSigned = false;
  static void prep(const WB& w, RowPrep& p) {
    int32_t mn[8];
    scales_k4(w.scales, p.sc, mn);
    for (int q = 0; q < 4; ++q)
      p.mnp[q] = int32_t(uint32_t(mn[2 * q]) | uint32_t(mn[2 * q + 1]) << 16);
    p.d = h2f(w.d);
    p.dmin = h2f(w.dmin);
  }
  // The 256 quants in element order, one byte each (0..15, or 0..31 with the fifth bit).
  static void unpack(const WB& w, uint8_t* u) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFive) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh));
    for (int h = 0; h < 2; ++h) {
      const __m512i q = _mm512_loadu_si512(w.qs + 64 * h);
      const __m512i lo = _mm512_and_si512(q, m4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      // Chunk j (64 elements: sub-blocks 2j, 2j + 1) = low nibbles then high nibbles of 32 bytes.
      __m512i v[2] = {_mm512_shuffle_i64x2(lo, hi, 0x44), _mm512_shuffle_i64x2(lo, hi, 0xEE)};
      for (int c = 0; c < 2; ++c) {
        if constexpr (kFive) {
          const int s = 4 * h + 2 * c;  // sub-block of the low half
          const uint64_t k0 = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << s)));
          const uint64_t k1 = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (s + 1))));
          v[c] = _mm512_mask_add_epi8(v[c], __mmask64(k0 | k1 << 32), v[c], _mm512_set1_epi8(16));
        }
        _mm512_storeu_si512(u + 128 * h + 64 * c, v[c]);
      }
    }
  }
};

struct AQ6K {
  using Block = ggml::BlockQ6_K;
  static constexpr int kKS = 16;
  static constexpr bool kMins = false, kSigned = true;
  static void prep(const Block& w, RowPrep& p) {
    for (int s = 0; s < 16; ++s) p.sc[s] = w.scales[s];
    p.d = h2f(w.d);
    p.dmin = 0.f;
  }
  // q - 32 (-32..31) in element order.
  static void unpack(const Block& w, uint8_t* u) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(3);
    const __m512i off = _mm512_set1_epi8(32);
    for (int n = 0; n < 2; ++n) {
      const __m512i l = _mm512_loadu_si512(w.ql + 64 * n);
      const __m512i h = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * n)));
      auto hi = [&](int a, int b) {
        const __m512i sh = _mm512_setr_epi64(a, a, a, a, b, b, b, b);
        return _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(h, sh), m3), 4);
      };
      const __m512i v0 = _mm512_or_si512(_mm512_and_si512(l, m4), hi(0, 2));
      const __m512i v1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), hi(4, 6));
      _mm512_storeu_si512(u + 128 * n, _mm512_sub_epi8(v0, off));
      _mm512_storeu_si512(u + 128 * n + 64, _mm512_sub_epi8(v1, off));
    }
  }
};

// Q4_K / Q5_K with the scales folded into the weights: each 6-bit scale is 8 * hi + lo (hi, lo in
// 0..7), and the quants times hi and times lo (at most 31 * 7 = 217) are two u8 A operands over the
// whole block, so one exact int per output and block is 8 * (A_hi . x) + (A_lo . x): two tile
// products per 64 elements and no per-sub-block rescaling.
alignas(64) constexpr auto kMulTab = [] {
  std::array<std::array<uint8_t, 32>, 8> t{};
  for (int m = 0; m < 8; ++m)
    for (int i = 0; i < 32; ++i) t[size_t(m)][size_t(i)] = uint8_t(m * i);
  return t;
}();

template <class Q>
void unpack_digits(const typename Q::Block& w, const RowPrep& p, uint8_t* u /* [2][256] */) {
  alignas(64) uint8_t q[256];
  Q::unpack(w, q);
  const __m512i upper = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi8(32), 1);
  for (int c = 0; c < 4; ++c) {
    const __m512i idx = _mm512_or_si512(_mm512_load_si512(q + 64 * c), upper);
    for (int h = 0; h < 2; ++h) {  // h = 0: hi digits, 1: lo digits
      const int f0 = h ? p.sc[2 * c] & 7 : p.sc[2 * c] >> 3;
      const int f1 = h ? p.sc[2 * c + 1] & 7 : p.sc[2 * c + 1] >> 3;
      const __m512i tab = _mm512_inserti64x4(
          _mm512_castsi256_si512(
              _mm256_load_si256(reinterpret_cast<const __m256i*>(kMulTab[size_t(f0)].data()))),
          _mm256_load_si256(reinterpret_cast<const __m256i*>(kMulTab[size_t(f1)].data())), 1);
      _mm512_storeu_si512(u + 256 * h + 64 * c, _mm512_permutexvar_epi8(idx, tab));
    }
  }
}

using AQ4K = AQ45K<ggml::BlockQ4_K, false>;
using AQ5K = AQ45K<ggml::BlockQ5_K, true>;

// ---- per-thread scratch ----------------------------------------------------------------------

struct alignas(64) Line {
  uint8_t b[64];
};
// One 16-token group of one super-block: the quants in B layout (row k4 = dword k4 of each token),
// the tokens' d and the sub-block sum pairs (lane t: sums 2p and 2p + 1 as int16 halves).
struct alignas(64) XGroup {
  Line q[64];
  float d[16];
  int32_t sp[4][16];
};

struct Scratch {
  std::vector<XGroup> x;            // [nb][G]
  std::vector<float> acc;           // [32][G * 16]
  alignas(64) uint8_t u[32 * 256];  // 32 weight rows of one block, one byte per quant (or 16
                                    // rows of hi and lo digits)
  RowPrep prep[32];
  alignas(64) int32_t c[8][4][16][16];  // tile results of up to 8 sub-blocks
  alignas(64) int32_t tot[4][16][16];   // the exact sums of the sub-blocks so far
};

Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

// Re-lays T rows of Q8_K (row stride xs) into G groups of 16 tokens per block; the rows past T are
// zero (d = 0).
void pack_x(const uint8_t* xq, int64_t T, int64_t xs, int64_t nb, int64_t G, XGroup* out) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i rowoff = _mm512_mullo_epi32(lane, _mm512_set1_epi32(int32_t(xs / 4)));
  for (int64_t g = 0; g < G; ++g) {
    const int64_t t0 = 16 * g, nt = std::clamp<int64_t>(T - t0, 0, 16);
    const __mmask16 m = __mmask16((1u << nt) - 1);
    for (int64_t b = 0; b < nb; ++b) {
      XGroup& o = out[b * G + g];
      const uint8_t* base = xq + t0 * xs + b * int64_t(sizeof(BlockQ8_K));
      const void* qs = base + offsetof(BlockQ8_K, qs);
      for (int k = 0; k < 64; ++k) {
        const __m512i v = _mm512_mask_i32gather_epi32(
            _mm512_setzero_si512(), m, _mm512_add_epi32(rowoff, _mm512_set1_epi32(k)), qs, 4);
        _mm512_store_si512(o.q[k].b, v);
      }
      for (int t = 0; t < 16; ++t) {
        const BlockQ8_K* blk = t < nt ? reinterpret_cast<const BlockQ8_K*>(base + t * xs) : nullptr;
        o.d[t] = blk ? blk->d : 0.f;
        for (int p = 0; p < 4; ++p) {
          int32_t s[2] = {0, 0};
          for (int h = 0; blk && h < 2; ++h)
            s[h] = blk->bsums[4 * p + 2 * h] + blk->bsums[4 * p + 2 * h + 1];
          o.sp[p][t] = int32_t(uint32_t(uint16_t(s[0])) | uint32_t(uint16_t(s[1])) << 16);
        }
      }
    }
  }
}

// Tile products of sub-blocks s0 .. s0 + ns - 1 of one block, weight rows [0, 32) x token groups
// g, g + 1, into sc.c[s - s0][i] (tile i: weight rows 16 (i / 2).., tokens of group g + i % 2).
template <class Q>
void tile_products(Scratch& sc, const XGroup& xa, const XGroup& xb, int s0, int ns) {
  constexpr int kKS = Q::kKS;
  for (int s = s0; s < s0 + ns; ++s) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, sc.u + s * kKS, 256);
    _tile_loadd(5, sc.u + 16 * 256 + s * kKS, 256);
    _tile_loadd(6, xa.q[s * kKS / 4].b, 64);
    _tile_loadd(7, xb.q[s * kKS / 4].b, 64);
    if constexpr (Q::kSigned) {
      _tile_dpbssd(0, 4, 6);
      _tile_dpbssd(1, 4, 7);
      _tile_dpbssd(2, 5, 6);
      _tile_dpbssd(3, 5, 7);
    } else {
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    }
    int32_t(*c)[16][16] = sc.c[s - s0];
    _tile_stored(0, c[0], 64);
    _tile_stored(1, c[1], 64);
    _tile_stored(2, c[2], 64);
    _tile_stored(3, c[3], 64);
  }
}

// Adds sub-blocks s0 .. s0 + ns - 1 (times their scales) to the exact sums; on the block's last
// round, the float steps of KQuant::tile512 per output: acc = fma(d * dx, sum, acc), then the mins.
template <class Q>
void fold(Scratch& sc, const XGroup* xg[2], int64_t g, int64_t ld, int s0, int ns, bool last) {
  for (int i = 0; i < 4; ++i) {
    const XGroup& x = *xg[i % 2];
    const __m512 dx = _mm512_load_ps(x.d);
    for (int r = 0; r < 16; ++r) {
      const int n = 16 * (i / 2) + r;
      const RowPrep& p = sc.prep[n];
      __m512i v = s0 == 0 ? _mm512_setzero_si512() : _mm512_load_si512(sc.tot[i][r]);
      for (int s = 0; s < ns; ++s)
        v = _mm512_add_epi32(v, _mm512_mullo_epi32(_mm512_load_si512(sc.c[s][i][r]),
                                                   _mm512_set1_epi32(p.sc[s0 + s])));
      if (!last) {
        _mm512_store_si512(sc.tot[i][r], v);
        continue;
      }
      float* a = sc.acc.data() + n * ld + (g + i % 2) * 16;
      __m512 acc = _mm512_loadu_ps(a);
      acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(p.d), dx), _mm512_cvtepi32_ps(v), acc);
      if constexpr (Q::kMins) {
        __m512i m = _mm512_setzero_si512();
        for (int q = 0; q < 4; ++q)
          m = _mm512_dpwssd_epi32(m, _mm512_set1_epi32(p.mnp[q]), _mm512_load_si512(x.sp[q]));
        const __m512 dm =
            _mm512_xor_ps(_mm512_mul_ps(_mm512_set1_ps(p.dmin), dx), _mm512_set1_ps(-0.f));
        acc = _mm512_fmadd_ps(dm, _mm512_cvtepi32_ps(m), acc);
      }
      _mm512_storeu_ps(a, acc);
    }
  }
}

// out[t, n + r] = acc[r, t] (+ bias[n + r]) for the `rows` finished weight rows of a tile.
void store_rows(const float* acc, int64_t ld, int64_t rows, int64_t T, const float* bias, int64_t n,
                float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < T; ++t) {
      float s = acc[r * ld + t];
      if (bias) s += bias[n + r];
      out[t * ldo + n + r] = s;
    }
}

template <class Q>
void run(const uint8_t* xq, int64_t T, int64_t K, const uint8_t* W, const float* bias, int64_t n0,
         int64_t n1, float* out, int64_t ldo) {
  using WB = typename Q::Block;
  constexpr int kNS = 256 / Q::kKS;
  const int64_t nb = K / ggml::kQKK, xs = nb * int64_t(sizeof(BlockQ8_K));
  const int64_t ws = nb * int64_t(sizeof(WB)), G = (T + 31) / 32 * 2, ld = G * 16;
  Scratch& sc = scratch();
  if (sc.x.size() < size_t(nb * G)) sc.x.resize(size_t(nb * G));
  if (sc.acc.size() < size_t(32 * ld)) sc.acc.resize(size_t(32 * ld));
  pack_x(xq, T, xs, nb, G, sc.x.data());
  configure(Q::kKS);
  for (int64_t n = n0; n < n1; n += 32) {
    std::fill_n(sc.acc.data(), 32 * ld, 0.f);
    for (int64_t b = 0; b < nb; ++b) {
      for (int r = 0; r < 32; ++r) {  // rows past n1 repeat the last (their outputs are dropped)
        const WB& w = reinterpret_cast<const WB*>(W + std::min(n + r, n1 - 1) * ws)[b];
        Q::unpack(w, sc.u + 256 * r);
        Q::prep(w, sc.prep[r]);
      }
      for (int64_t g = 0; g < G; g += 2) {
        const XGroup* xg[2] = {&sc.x[size_t(b * G + g)], &sc.x[size_t(b * G + g + 1)]};
        for (int s0 = 0; s0 < kNS; s0 += 8) {
          tile_products<Q>(sc, *xg[0], *xg[1], s0, 8);
          fold<Q>(sc, xg, g, ld, s0, 8, s0 + 8 == kNS);
        }
      }
    }
    store_rows(sc.acc.data(), ld, std::min<int64_t>(32, n1 - n), T, bias, n, out, ldo);
  }
  _tile_release();
}

// Q4_K / Q5_K: 16 weight rows at a time (hi and lo digit rows, unpacked once per block), token
// groups in pairs: tiles 0, 1 hi x groups g, g + 1; 2, 3 lo; A 4 (hi), 5 (lo); B 6, 7.
template <class Q>
void products45(const uint8_t* u, const XGroup& xa, const XGroup& xb, int32_t (*c)[16][16]) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int k = 0; k < 4; ++k) {
    _tile_loadd(4, u + 64 * k, 512);
    _tile_loadd(5, u + 256 + 64 * k, 512);
    _tile_loadd(6, xa.q[16 * k].b, 64);
    _tile_loadd(7, xb.q[16 * k].b, 64);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  _tile_stored(0, c[0], 64);
  _tile_stored(1, c[1], 64);
  _tile_stored(2, c[2], 64);
  _tile_stored(3, c[3], 64);
}

void fold45(const int32_t (*c)[16][16], const RowPrep* prep, const XGroup* xg[2], float* acc,
            int64_t ld) {
  for (int j = 0; j < 2; ++j) {
    const XGroup& x = *xg[j];
    const __m512 dx = _mm512_load_ps(x.d);
    __m512i sp[4];
    for (int q = 0; q < 4; ++q) sp[q] = _mm512_load_si512(x.sp[q]);
    for (int r = 0; r < 16; ++r) {
      const RowPrep& p = prep[r];
      const __m512i v = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(c[j][r]), 3),
                                         _mm512_load_si512(c[2 + j][r]));
      float* a = acc + r * ld + 16 * j;
      __m512 s = _mm512_loadu_ps(a);
      s = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(p.d), dx), _mm512_cvtepi32_ps(v), s);
      __m512i m = _mm512_setzero_si512();
      for (int q = 0; q < 4; ++q) m = _mm512_dpwssd_epi32(m, _mm512_set1_epi32(p.mnp[q]), sp[q]);
      const __m512 dm =
          _mm512_xor_ps(_mm512_mul_ps(_mm512_set1_ps(p.dmin), dx), _mm512_set1_ps(-0.f));
      _mm512_storeu_ps(a, _mm512_fmadd_ps(dm, _mm512_cvtepi32_ps(m), s));
    }
  }
}

template <class Q>
void run45(const uint8_t* xq, int64_t T, int64_t K, const uint8_t* W, const float* bias, int64_t n0,
           int64_t n1, float* out, int64_t ldo) {
  using WB = typename Q::Block;
  const int64_t nb = K / ggml::kQKK, xs = nb * int64_t(sizeof(BlockQ8_K));
  const int64_t ws = nb * int64_t(sizeof(WB)), G = (T + 31) / 32 * 2, ld = G * 16;
  Scratch& sc = scratch();
  if (sc.x.size() < size_t(nb * G)) sc.x.resize(size_t(nb * G));
  if (sc.acc.size() < size_t(32 * ld)) sc.acc.resize(size_t(32 * ld));
  pack_x(xq, T, xs, nb, G, sc.x.data());
  configure(64);
  for (int64_t n = n0; n < n1; n += 16) {
    std::fill_n(sc.acc.data(), 16 * ld, 0.f);
    for (int64_t b = 0; b < nb; ++b) {
      for (int r = 0; r < 16; ++r) {  // rows past n1 repeat the last (their outputs are dropped)
        const WB& w = reinterpret_cast<const WB*>(W + std::min(n + r, n1 - 1) * ws)[b];
        Q::prep(w, sc.prep[r]);
        unpack_digits<Q>(w, sc.prep[r], sc.u + 512 * r);
      }
      for (int64_t g = 0; g < G; g += 2) {
        const XGroup* xg[2] = {&sc.x[size_t(b * G + g)], &sc.x[size_t(b * G + g + 1)]};
        products45<Q>(sc.u, *xg[0], *xg[1], sc.c[0]);
        fold45(sc.c[0], sc.prep, xg, sc.acc.data() + g * 16, ld);
      }
    }
    store_rows(sc.acc.data(), ld, std::min<int64_t>(16, n1 - n), T, bias, n, out, ldo);
  }
  _tile_release();
}

}  // namespace

bool amx_available() {
  return amx_reason() == nullptr;
}

const char* amx_unavailable_reason() {
  const char* r = amx_reason();
  return r ? r : "";
}

bool amx_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("INFERD_CPU_AMX");
    return amx_available() && !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

bool amx_handles(ggml::Type t) {
  return t == ggml::Type::kQ4_K || t == ggml::Type::kQ5_K || t == ggml::Type::kQ6_K;
}

bool amx_qgemm(const void* xq, int64_t T, int64_t K, const void* W, ggml::Type wtype,
               const float* bias, int64_t n0, int64_t n1, float* out, int64_t ldo) {
  if (!amx_handles(wtype) || !amx_available()) return false;
  if (n0 >= n1 || T <= 0) return true;
  const auto* x = static_cast<const uint8_t*>(xq);
  const auto* w = static_cast<const uint8_t*>(W);
  switch (wtype) {
    case ggml::Type::kQ4_K:
      run45<AQ4K>(x, T, K, w, bias, n0, n1, out, ldo);
      break;
    case ggml::Type::kQ5_K:
      run45<AQ5K>(x, T, K, w, bias, n0, n1, out, ldo);
      break;
    default:
      run<AQ6K>(x, T, K, w, bias, n0, n1, out, ldo);
      break;
  }
  return true;
}

}  // namespace inferd::cpu
