// GGUF block decoding for the CUDA backend's GGUF kernels (ggml_gemv.cu), compiled for the device
// and for the host (the host build is what tests/backend/ggml_blocks_emulation_test.cc checks,
// element by element, against ggml::dequantize_row). Plain C++ with no CUDA headers in the host
// build. The arithmetic is ggml's (core/ggml_types.cc: dequantize_row_*, ggml-quants.c as of
// llama.cpp b4700): the same float operations in the same order.
//
// Device layout: each block of a row sits in a slot of kSlot bytes (kSlot >= ggml's block size, a
// multiple of 4) at byte kFront of the slot, so that the quant fields are 4-byte aligned (Q4_K
// and Q5_K: 16-byte) and can be read with wide loads; rows are nb * kSlot bytes. Types whose ggml
// block is already aligned keep it as it is (kSlot = block size, kFront = 0).
//
// Work split: a block is kUnits units; a unit is kRuns runs of kRunLen consecutive elements (runs
// start at multiples of 8 elements, so the bf16 activations are read 16 bytes at a time).
// dequant(slot, u, w) writes the unit's values run after run: w[r * kRunLen + i] is element
// run_start(u, r) + i of the block (`slot` is the slot's first byte, 4-byte aligned).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/ggml_types.h"

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define INFERD_HD __host__ __device__ __forceinline__
#define INFERD_UNROLL _Pragma("unroll")
#else
#define INFERD_UNROLL
#include <cstdlib>
#define INFERD_HD inline
#endif

namespace inferd::cuda::gg {

struct U4 {
  uint32_t x, y, z, w;
};

// 4-byte (ld32) and 16-byte (ld128) weight loads at addresses aligned to their size, streamed
// (evict-first: weights are read once, the activations stay in L1); the host build aborts on a
// misaligned address (what the device would fault on).
INFERD_HD uint32_t ld32(const uint8_t* p) {
#ifdef __CUDA_ARCH__
  return __ldcs(reinterpret_cast<const unsigned int*>(p));
#else
  if (reinterpret_cast<uintptr_t>(p) % 4 != 0) std::abort();
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#endif
}

INFERD_HD U4 ld128(const uint8_t* p) {
#ifdef __CUDA_ARCH__
  const uint4 v = __ldcs(reinterpret_cast<const uint4*>(p));
  return U4{v.x, v.y, v.z, v.w};
#else
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) std::abort();
  U4 v;
  std::memcpy(&v, p, 16);
  return v;
#endif
}

INFERD_HD uint32_t word(const U4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

INFERD_HD uint32_t byte_of(uint32_t w, int i) {
  return (w >> (8 * i)) & 0xFFu;
}

// IEEE half bits to float (exact).
INFERD_HD float half_to_float(uint32_t h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
#else
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
  if (exp == 0 && man == 0) {
    bits = sign;
  } else if (exp == 0) {  // subnormal: normalise
    exp = 113;
    while ((man & 0x400u) == 0) {
      man <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((man & 0x3FFu) << 13);
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

INFERD_HD float bits_to_float(uint32_t b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, 4);
  return f;
#endif
}

// float(q) - off, exactly, for 0 <= q < 2^22 and small integer offsets: q placed in the mantissa
// of 1.5 * 2^23 (one OR and one add instead of an integer-to-float conversion, which runs at a
// quarter of the FMA rate).
INFERD_HD float u2f(uint32_t q, int off = 0) {
  return bits_to_float(0x4B400000u | q) - (12582912.0f + float(off));
}
// float(v), exactly, for |v| < 2^22.
INFERD_HD float i2f(int v) {
  return bits_to_float(0x4B400000u + uint32_t(v)) - 12582912.0f;
}

// The 16-bit field at byte offset `off` (even) of a 4-byte aligned slot.
INFERD_HD float half_at(const uint8_t* slot, int off) {
  return half_to_float(ld32(slot + (off & ~3)) >> (8 * (off & 2)) & 0xFFFFu);
}

// ---- legacy 32-element blocks: two units; unit u holds qs bytes 8u .. 8u + 8, whose low nibbles
// are elements 8u + i (run 0) and high nibbles elements 16 + 8u + i (run 1). Half a block a lane
// keeps a warp's loads close together (16 blocks a warp step).
struct Legacy {
  static constexpr int kBlockElems = 32, kUnits = 2, kRuns = 2, kRunLen = 8;
  INFERD_HD static int run_start(int u, int r) { return 16 * r + 8 * u; }
};

// The two qs words of unit u, qs starting at byte `qs` of the slot.
INFERD_HD void unit_words(const uint8_t* s, int qs, int u, uint32_t* q) {
  q[0] = ld32(s + qs + 8 * u);
  q[1] = ld32(s + qs + 8 * u + 4);
}

struct Q4_0 : Legacy {  // slot: pad(2) d(2) qs(16)
  static constexpr ggml::Type kType = ggml::Type::kQ4_0;
  static constexpr int kSlot = 20, kFront = 2;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const float d = half_at(s, 2);
    uint32_t q[2];
    unit_words(s, 4, u, q);
    for (int i = 0; i < 8; ++i) {
      const uint32_t v = byte_of(q[i / 4], i % 4);
      w[i] = u2f(v & 0xF, 8) * d;
      w[8 + i] = u2f(v >> 4, 8) * d;
    }
  }
};

struct Q4_1 : Legacy {  // slot: d(2) m(2) qs(16)
  static constexpr ggml::Type kType = ggml::Type::kQ4_1;
  static constexpr int kSlot = 20, kFront = 0;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const uint32_t dm = ld32(s);
    const float d = half_to_float(dm & 0xFFFFu), m = half_to_float(dm >> 16);
    uint32_t q[2];
    unit_words(s, 4, u, q);
    for (int i = 0; i < 8; ++i) {
      const uint32_t v = byte_of(q[i / 4], i % 4);
      w[i] = u2f(v & 0xF) * d + m;
      w[8 + i] = u2f(v >> 4) * d + m;
    }
  }
};

// Q5_0 / Q5_1: the fifth bit of element e is bit e of the little-endian word qh.
struct Q5_0 : Legacy {  // slot: pad(2) d(2) qh(4) qs(16)
  static constexpr ggml::Type kType = ggml::Type::kQ5_0;
  static constexpr int kSlot = 24, kFront = 2;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const float d = half_at(s, 2);
    const uint32_t qh = ld32(s + 4);
    uint32_t q[2];
    unit_words(s, 8, u, q);
    for (int i = 0; i < 8; ++i) {
      const int e = 8 * u + i;
      const uint32_t v = byte_of(q[i / 4], i % 4);
      w[i] = u2f((v & 0xF) | (((qh >> e) & 1u) << 4), 16) * d;
      w[8 + i] = u2f((v >> 4) | (((qh >> (e + 16)) & 1u) << 4), 16) * d;
    }
  }
};

struct Q5_1 : Legacy {  // slot: d(2) m(2) qh(4) qs(16)
  static constexpr ggml::Type kType = ggml::Type::kQ5_1;
  static constexpr int kSlot = 24, kFront = 0;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const uint32_t dm = ld32(s);
    const float d = half_to_float(dm & 0xFFFFu), m = half_to_float(dm >> 16);
    const uint32_t qh = ld32(s + 4);
    uint32_t q[2];
    unit_words(s, 8, u, q);
    for (int i = 0; i < 8; ++i) {
      const int e = 8 * u + i;
      const uint32_t v = byte_of(q[i / 4], i % 4);
      w[i] = u2f((v & 0xF) | (((qh >> e) & 1u) << 4)) * d + m;
      w[8 + i] = u2f((v >> 4) | (((qh >> (e + 16)) & 1u) << 4)) * d + m;
    }
  }
};

// Q8_0: unit u is elements 16u .. 16u + 16, as two runs of 8.
struct Q8_0 {  // slot: pad(2) d(2) qs(32)
  static constexpr ggml::Type kType = ggml::Type::kQ8_0;
  static constexpr int kBlockElems = 32, kUnits = 2, kRuns = 2, kRunLen = 8;
  static constexpr int kSlot = 36, kFront = 2;
  INFERD_HD static int run_start(int u, int r) { return 16 * u + 8 * r; }
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const float d = half_at(s, 2);
    for (int k = 0; k < 4; ++k) {
      const uint32_t q = ld32(s + 4 + 16 * u + 4 * k);
      for (int j = 0; j < 4; ++j) w[4 * k + j] = u2f(byte_of(q, j) ^ 0x80u, 128) * d;  // int8
    }
  }
};

// IQ4_NL's levels (ggml's kvalues_iq4nl), four to a word.
INFERD_HD int iq4nl_level(uint32_t i) {
  constexpr uint32_t w0 = 0xBFAD9881u;  // -127 -104 -83 -65
  constexpr uint32_t w1 = 0xF6EADDCFu;  // -49 -35 -22 -10
  constexpr uint32_t w2 = 0x26190D01u;  // 1 13 25 38
  constexpr uint32_t w3 = 0x71594535u;  // 53 69 89 113
  const uint32_t wd = i < 8 ? (i < 4 ? w0 : w1) : (i < 12 ? w2 : w3);
  return int(int8_t(uint8_t(byte_of(wd, int(i & 3)))));
}

struct IQ4_NL : Legacy {  // slot: pad(2) d(2) qs(16)
  static constexpr ggml::Type kType = ggml::Type::kIQ4_NL;
  static constexpr int kSlot = 20, kFront = 2;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const float d = half_at(s, 2);
    uint32_t q[2];
    unit_words(s, 4, u, q);
    for (int i = 0; i < 8; ++i) {
      const uint32_t v = byte_of(q[i / 4], i % 4);
      w[i] = d * i2f(iq4nl_level(v & 0xF));
      w[8 + i] = d * i2f(iq4nl_level(v >> 4));
    }
  }
};

// ---- K-quants: 256-element super-blocks, eight units ----------------------------------------

// Scale and min j (0..7) of a Q4_K / Q5_K block from its 16-byte head (d, dmin, then the 12
// scale bytes in words y, z, w): ggml's get_scale_min_k4.
INFERD_HD void scale_min(int j, const U4& head, uint32_t* sc, uint32_t* mn) {
  auto q = [&](int i) { return byte_of(word(head, 1 + i / 4), i % 4); };
  if (j < 4) {
    *sc = q(j) & 63;
    *mn = q(j + 4) & 63;
  } else {
    *sc = (q(j + 4) & 0xF) | ((q(j - 4) >> 6) << 4);
    *mn = (q(j + 4) >> 4) | ((q(j) >> 6) << 4);
  }
}

// Q4_K and Q5_K: unit u covers byte l0 = 16 (u % 2) .. l0 + 16 of the qs group c = u / 2 (32
// bytes); its low nibbles are elements 64 c + l0 + i (sub-block 2c), its high nibbles elements
// 64 c + 32 + l0 + i (sub-block 2c + 1).
struct KQuant45 {
  static constexpr int kBlockElems = 256, kUnits = 8, kRuns = 2, kRunLen = 16;
  INFERD_HD static int run_start(int u, int r) { return 64 * (u / 2) + 32 * r + 16 * (u % 2); }
};

struct Q4_K : KQuant45 {  // d(2) dmin(2) scales(12) qs(128)
  static constexpr ggml::Type kType = ggml::Type::kQ4_K;
  static constexpr int kSlot = 144, kFront = 0;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const U4 head = ld128(s);
    const float d = half_to_float(head.x & 0xFFFFu), dmin = half_to_float(head.x >> 16);
    const int c = u / 2;
    uint32_t sc0, m0, sc1, m1;
    scale_min(2 * c, head, &sc0, &m0);
    scale_min(2 * c + 1, head, &sc1, &m1);
    const float d1 = d * u2f(sc0), ml1 = dmin * u2f(m0);
    const float d2 = d * u2f(sc1), ml2 = dmin * u2f(m1);
    const U4 q = ld128(s + 16 + 32 * c + 16 * (u % 2));
    for (int k = 0; k < 4; ++k) {
      const uint32_t qw = word(q, k);
      for (int j = 0; j < 4; ++j) {
        const uint32_t v = byte_of(qw, j);
        w[4 * k + j] = d1 * u2f(v & 0xF) - ml1;
        w[16 + 4 * k + j] = d2 * u2f(v >> 4) - ml2;
      }
    }
  }
};

struct Q5_K : KQuant45 {  // d(2) dmin(2) scales(12) qh(32) qs(128)
  static constexpr ggml::Type kType = ggml::Type::kQ5_K;
  static constexpr int kSlot = 176, kFront = 0;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const U4 head = ld128(s);
    const float d = half_to_float(head.x & 0xFFFFu), dmin = half_to_float(head.x >> 16);
    const int c = u / 2, half = u % 2;
    uint32_t sc0, m0, sc1, m1;
    scale_min(2 * c, head, &sc0, &m0);
    scale_min(2 * c + 1, head, &sc1, &m1);
    const float d1 = d * u2f(sc0), ml1 = dmin * u2f(m0);
    const float d2 = d * u2f(sc1), ml2 = dmin * u2f(m1);
    const U4 q = ld128(s + 48 + 32 * c + 16 * half);
    const U4 h = ld128(s + 16 + 16 * half);  // qh[l0 .. l0 + 16)
    for (int k = 0; k < 4; ++k) {
      const uint32_t qw = word(q, k), hw = word(h, k);
      for (int j = 0; j < 4; ++j) {
        const uint32_t v = byte_of(qw, j), hb = byte_of(hw, j);
        const uint32_t lo = (v & 0xF) | (((hb >> (2 * c)) & 1u) << 4);
        const uint32_t hi = (v >> 4) | (((hb >> (2 * c + 1)) & 1u) << 4);
        w[4 * k + j] = d1 * u2f(lo) - ml1;
        w[16 + 4 * k + j] = d2 * u2f(hi) - ml2;
      }
    }
  }
};

// Q2_K, Q3_K and Q6_K: unit u covers bytes l0 = 8 (u % 4) .. l0 + 8 of half h = u / 4; byte l
// holds elements 128 h + 32 r + l for r = 0..3 (the unit's four runs of 8).
struct KQuant236 {
  static constexpr int kBlockElems = 256, kUnits = 8, kRuns = 4, kRunLen = 8;
  INFERD_HD static int run_start(int u, int r) { return 128 * (u / 4) + 32 * r + 8 * (u % 4); }
};

struct Q2_K : KQuant236 {  // scales(16) qs(64) d(2) dmin(2)
  static constexpr ggml::Type kType = ggml::Type::kQ2_K;
  static constexpr int kSlot = 84, kFront = 0;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const uint32_t dm = ld32(s + 80);
    const float d = half_to_float(dm & 0xFFFFu), dmin = half_to_float(dm >> 16);
    const int h = u / 4, l0 = 8 * (u % 4);
    const uint32_t q[2] = {ld32(s + 16 + 32 * h + l0), ld32(s + 16 + 32 * h + l0 + 4)};
    const uint32_t scw[2] = {ld32(s + 8 * h), ld32(s + 8 * h + 4)};  // scales[8h .. 8h + 8)
    for (int r = 0; r < 4; ++r) {
      const int si = 2 * r + l0 / 16;
      const uint32_t sc = byte_of(scw[si / 4], si % 4);
      const float dl = d * u2f(sc & 0xF), ml = dmin * u2f(sc >> 4);
      for (int i = 0; i < 8; ++i) {
        const uint32_t v = (byte_of(q[i / 4], i % 4) >> (2 * r)) & 3u;
        w[8 * r + i] = dl * u2f(v) - ml;
      }
    }
  }
};

// Q3_K's 6-bit scale k (0..15), minus 32, from the 12 scale bytes in words sc[0..3).
INFERD_HD int q3k_scale(const uint32_t* sc, int k) {
  const uint32_t lo = (byte_of(sc[(k % 8) / 4], k % 4) >> (4 * (k / 8))) & 0xF;
  const uint32_t hi = (byte_of(sc[2], k % 4) >> (2 * (k / 4))) & 3;
  return int(lo | (hi << 4)) - 32;
}

struct Q3_K : KQuant236 {  // hmask(32) qs(64) scales(12) d(2)
  static constexpr ggml::Type kType = ggml::Type::kQ3_K;
  static constexpr int kSlot = 112, kFront = 0;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const float d = half_at(s, 108);
    const int h = u / 4, l0 = 8 * (u % 4);
    const uint32_t q[2] = {ld32(s + 32 + 32 * h + l0), ld32(s + 32 + 32 * h + l0 + 4)};
    const uint32_t hm[2] = {ld32(s + l0), ld32(s + l0 + 4)};
    const uint32_t scw[3] = {ld32(s + 96), ld32(s + 100), ld32(s + 104)};
    for (int r = 0; r < 4; ++r) {
      const float dl = d * i2f(q3k_scale(scw, 8 * h + 2 * r + l0 / 16));
      const uint32_t m = 1u << (4 * h + r);
      for (int i = 0; i < 8; ++i) {
        const int v = int((byte_of(q[i / 4], i % 4) >> (2 * r)) & 3u) -
                      ((byte_of(hm[i / 4], i % 4) & m) ? 0 : 4);
        w[8 * r + i] = dl * i2f(v);
      }
    }
  }
};

struct Q6_K : KQuant236 {  // ql(128) qh(64) scales(16) d(2), slot padded to 212
  static constexpr ggml::Type kType = ggml::Type::kQ6_K;
  static constexpr int kSlot = 212, kFront = 0;
  INFERD_HD static void dequant(const uint8_t* s, int u, float* w) {
    const float d = half_at(s, 208);
    const int h = u / 4, l0 = 8 * (u % 4);
    const uint8_t* ql = s + 64 * h + l0;
    const uint32_t lo[2] = {ld32(ql), ld32(ql + 4)};        // ql[l]: runs 0 (low) and 2 (high)
    const uint32_t hi[2] = {ld32(ql + 32), ld32(ql + 36)};  // ql[l + 32]: runs 1 and 3
    const uint32_t qh[2] = {ld32(s + 128 + 32 * h + l0), ld32(s + 128 + 32 * h + l0 + 4)};
    const uint32_t scw[2] = {ld32(s + 192 + 8 * h), ld32(s + 196 + 8 * h)};  // int8 scales
    for (int r = 0; r < 4; ++r) {
      const int si = 2 * r + l0 / 16;
      const float ds = d * u2f(byte_of(scw[si / 4], si % 4) ^ 0x80u, 128);
      for (int i = 0; i < 8; ++i) {
        const uint32_t b = byte_of(r % 2 == 0 ? lo[i / 4] : hi[i / 4], i % 4);
        const uint32_t hb = byte_of(qh[i / 4], i % 4);
        const uint32_t v = ((b >> (4 * (r / 2))) & 0xF) | (((hb >> (2 * r)) & 3u) << 4);
        w[8 * r + i] = ds * u2f(v, 32);
      }
    }
  }
};

// ---- the GEMV's per-lane work (ggml_gemv.cu; emulated on the host by the block test) ---------

// One unit v (block v / kUnits, unit v % kUnits) of kRows weight rows against the activation rows
// t < T: acc[r][t] += w_r(unit) . x_t(unit). load8(t, e, f) gives f[0..8) = x[t, e .. e + 8).
template <class Q, int kMaxT, int kRows, class Load8>
INFERD_HD void gemv_unit(const uint8_t* const* rows, int v, int T, const Load8& load8,
                         float (*acc)[kMaxT]) {
  constexpr int kUnitElems = Q::kRuns * Q::kRunLen;
  const int b = v / Q::kUnits, u = v % Q::kUnits;
  float w[kRows][kUnitElems];
  INFERD_UNROLL
  for (int r = 0; r < kRows; ++r) Q::dequant(rows[r] + int64_t(b) * Q::kSlot, u, w[r]);
  INFERD_UNROLL
  for (int run = 0; run < Q::kRuns; ++run) {
    const int64_t e0 = int64_t(b) * Q::kBlockElems + Q::run_start(u, run);
    INFERD_UNROLL
    for (int t = 0; t < kMaxT; ++t) {
      if (t < T) {
        float s[kRows];
        INFERD_UNROLL
        for (int r = 0; r < kRows; ++r) s[r] = 0.0f;
        INFERD_UNROLL
        for (int c = 0; c < Q::kRunLen / 8; ++c) {
          float xf[8];
          load8(t, e0 + 8 * c, xf);
          INFERD_UNROLL
          for (int r = 0; r < kRows; ++r) {
            INFERD_UNROLL
            for (int j = 0; j < 8; ++j)
              s[r] = fmaf(xf[j], w[r][run * Q::kRunLen + 8 * c + j], s[r]);
          }
        }
        INFERD_UNROLL
        for (int r = 0; r < kRows; ++r) acc[r][t] += s[r];
      }
    }
  }
}

// A lane's share of a warp's kRows weight rows of nb blocks: units lane, lane + 32, ... (one
// row: two units in flight per step).
template <class Q, int kMaxT, int kRows, class Load8>
INFERD_HD void gemv_lane(const uint8_t* const* rows, int nb, int lane, int T, const Load8& load8,
                         float (*acc)[kMaxT]) {
  INFERD_UNROLL
  for (int r = 0; r < kRows; ++r) {
    INFERD_UNROLL
    for (int t = 0; t < kMaxT; ++t) acc[r][t] = 0.0f;
  }
  const int units = nb * Q::kUnits;
  int v = lane;
  if constexpr (kRows == 1) {
    for (; v + 32 < units; v += 64) {
      gemv_unit<Q, kMaxT, kRows>(rows, v, T, load8, acc);
      gemv_unit<Q, kMaxT, kRows>(rows, v + 32, T, load8, acc);
    }
  }
  for (; v < units; v += 32) gemv_unit<Q, kMaxT, kRows>(rows, v, T, load8, acc);
}

// ---- host side ---------------------------------------------------------------------------------

// Slot size and front offset of a block type (0 for types without a kernel here).
struct SlotLayout {
  int slot = 0, front = 0;
};
inline SlotLayout slot_layout(ggml::Type t) {
  switch (t) {
    case ggml::Type::kQ4_0:
      return {Q4_0::kSlot, Q4_0::kFront};
    case ggml::Type::kQ4_1:
      return {Q4_1::kSlot, Q4_1::kFront};
    case ggml::Type::kQ5_0:
      return {Q5_0::kSlot, Q5_0::kFront};
    case ggml::Type::kQ5_1:
      return {Q5_1::kSlot, Q5_1::kFront};
    case ggml::Type::kQ8_0:
      return {Q8_0::kSlot, Q8_0::kFront};
    case ggml::Type::kIQ4_NL:
      return {IQ4_NL::kSlot, IQ4_NL::kFront};
    case ggml::Type::kQ2_K:
      return {Q2_K::kSlot, Q2_K::kFront};
    case ggml::Type::kQ3_K:
      return {Q3_K::kSlot, Q3_K::kFront};
    case ggml::Type::kQ4_K:
      return {Q4_K::kSlot, Q4_K::kFront};
    case ggml::Type::kQ5_K:
      return {Q5_K::kSlot, Q5_K::kFront};
    case ggml::Type::kQ6_K:
      return {Q6_K::kSlot, Q6_K::kFront};
    default:
      return {};
  }
}

// Device row stride of a block type's rows of k elements: their slots, rounded up to 16 bytes.
inline int64_t device_row_stride(ggml::Type t, int64_t k) {
  return (k / ggml::traits(t).block_elems * slot_layout(t).slot + 15) / 16 * 16;
}

// `rows` rows of `nb` ggml blocks (block_bytes each, rows contiguous) into the device layout
// (rows of nb slots; padding bytes zero).
inline void repack_rows(ggml::Type t, const uint8_t* src, int64_t rows, int64_t nb,
                        int64_t block_bytes, uint8_t* dst) {
  const SlotLayout L = slot_layout(t);
  if (L.slot == block_bytes) {
    std::memcpy(dst, src, size_t(rows * nb * block_bytes));
    return;
  }
  std::memset(dst, 0, size_t(rows * nb * L.slot));
  for (int64_t b = 0; b < rows * nb; ++b)
    std::memcpy(dst + b * L.slot + L.front, src + b * block_bytes, size_t(block_bytes));
}

}  // namespace inferd::cuda::gg
