// The tensor-core decode GEMV's per-lane work (ggml_gemv.cu) for Q2_K .. Q6_K and the legacy
// Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0, compiled for the device and for the host
// (tests/backend/ggml_blocks_emulation_test.cc emulates a warp's mma.sync on it). Block layouts:
// ggml_blocks.h (ggml's, as of llama.cpp b4700).
//
// A warp computes 16 weight rows against up to 8 activation rows (one n-tile; two for T <= 16)
// with mma.sync.m16n8k16 bf16 -> fp32 (PTX ISA "Matrix Fragments for mma.m16n8k16"): lane
// 4 g + tq holds A rows g and g + 8 and B column (token) g at the k-slots 2tq, 2tq + 1, 2tq + 8,
// 2tq + 9, and C rows g, g + 8 at columns 2tq, 2tq + 1. The k-slots of a lane are mapped to four
// consecutive elements e .. e + 4 of the block (x_elem): a(0) = {e, e + 1}, a(2) = {e + 2, e + 3}
// for row g, a(1) / a(3) the same for row g + 8, b(0) = x[e], x[e + 1], b(1) = x[e + 2], x[e + 3].
// The A values are the bare quants as exact bf16 integers (q - offset; the block scale is applied
// to the fp32 product afterwards), so each mma sums exact products in fp32: sum_k q_k x_k over a
// 16-element part of one sub-block. Mins (Q2_K, Q4_K, Q5_K, Q4_1, Q5_1) use a second mma with A = 1
// (sum_k x_k).
#pragma once

#include <cstdint>

#include "backend/cuda/ggml_blocks.h"

#ifdef __CUDACC__
#include <cuda_bf16.h>
#endif

namespace inferd::cuda::gg {

// 8-byte load at an 8-byte aligned address (streamed, as ld32 / ld128).
INFERD_HD void ld64(const uint8_t* p, uint32_t* w) {
#ifdef __CUDA_ARCH__
  const uint2 v = __ldcs(reinterpret_cast<const uint2*>(p));
  w[0] = v.x;
  w[1] = v.y;
#else
  if (reinterpret_cast<uintptr_t>(p) % 8 != 0) std::abort();
  std::memcpy(w, p, 8);
#endif
}

// __byte_perm: byte i of the result is byte (s >> 4i) & 7 of {a, b}.
INFERD_HD uint32_t prmt(uint32_t a, uint32_t b, uint32_t s) {
#ifdef __CUDA_ARCH__
  return __byte_perm(a, b, s);
#else
  const uint64_t ab = uint64_t(a) | (uint64_t(b) << 32);
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= uint32_t((ab >> (8 * ((s >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
#endif
}

// bf16x2 a + b (the host build: for sums exact in bf16, the only ones used here).
INFERD_HD uint32_t bf16x2_add(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
  __nv_bfloat162 ha, hb;
  memcpy(&ha, &a, 4);
  memcpy(&hb, &b, 4);
  ha = __hadd2(ha, hb);
  uint32_t r;
  memcpy(&r, &ha, 4);
  return r;
#else
  uint32_t r = 0;
  for (int i = 0; i < 2; ++i) {
    const float f = bits_to_float((a >> (16 * i)) << 16) + bits_to_float((b >> (16 * i)) << 16);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0xFFFFu) != 0) std::abort();  // not exact in bf16
    r |= (u >> 16) << (16 * i);
  }
  return r;
#endif
}

// bf16 bits of -(128 + off), twice (exact for 0 <= off < 128).
INFERD_HD constexpr uint32_t bf16x2_neg_magic(int off) {
  // -(128 + off) = -1.m * 2^7: sign, exponent 134, mantissa off (7 bits).
  return (0xC300u | uint32_t(off)) * 0x00010001u;
}

// bf16x2 {byte 2i of v - off, byte 2i + 1 of v - off} for bytes < 128 and 0 <= off < 128: the
// byte placed in the mantissa of bf16 128 (0x43xx), then 128 + off added back (exact).
INFERD_HD uint32_t bf16x2_of_bytes(uint32_t v, int i, int off) {
  return bf16x2_add(prmt(v, 0x43434343u, i == 0 ? 0x4140u : 0x4342u), bf16x2_neg_magic(off));
}

// bf16x2 {int8 byte 2i of v, int8 byte 2i + 1 of v}: (128 + the low seven bits) + (-128 or
// -256 by the sign bit), both exact in bf16.
INFERD_HD uint32_t bf16x2_of_int8(uint32_t v, int i) {
  const uint32_t t = prmt(v, 0u, i == 0 ? 0x4140u : 0x4342u);
  return bf16x2_add((t & 0x007F007Fu) | 0x43004300u, (t & 0x00800080u) | 0xC300C300u);
}

constexpr uint32_t kBf16x2Ones = 0x3F803F80u;

// Q4_K and Q5_K: 16 steps a block, step = 2 sub + p for sub-block sub = 2c + hi (c: the 32-byte
// qs group, hi: its high nibbles) and p = 0, 1; a lane's four elements are bytes
// l = 8tq + 4p .. + 4 of group c. Q5_K's fifth bits: bit sub of qh byte l.
template <class QT>
struct KQuant45Mma {
  using Q = QT;
  static constexpr bool kFive = Q::kType == ggml::Type::kQ5_K;
  static constexpr int kQs = kFive ? 48 : 16;
  static constexpr int kElems = 256, kBytes = Q::kSlot;  // a kernel block: one ggml block
  static constexpr int kSubs = 8, kStepsPerSub = 2;
  static constexpr bool kHasMin = true;
  struct Rows {      // one row's block as a lane holds it
    U4 head;         // d, dmin, scales
    uint32_t q[8];   // qs words kQs + 32c + 8tq + 4p at [2c + p]
    uint32_t qh[2];  // Q5_K: qh words 16 + 8tq + 4p at [p]
  };
  INFERD_HD static void load(const uint8_t* s, int tq, Rows* r) {
    r->head = ld128(s);
    INFERD_UNROLL
    for (int c = 0; c < 4; ++c) ld64(s + kQs + 32 * c + 8 * tq, r->q + 2 * c);
    if constexpr (kFive) ld64(s + 16 + 8 * tq, r->qh);
  }
  INFERD_HD static int x_elem(int step, int tq) {
    const int sub = step / 2, p = step % 2;
    return 64 * (sub / 2) + 32 * (sub % 2) + 8 * tq + 4 * p;
  }
  INFERD_HD static uint32_t quads(const Rows& r, int step) {
    const int sub = step / 2, p = step % 2;
    const uint32_t v = (r.q[2 * (sub / 2) + p] >> (4 * (sub % 2))) & 0x0F0F0F0Fu;
    if constexpr (kFive) return v | (((r.qh[p] >> sub) & 0x01010101u) << 4);
    return v;
  }
  INFERD_HD static void a_regs(const Rows& g, const Rows& g8, int step, uint32_t* a) {
    const uint32_t vg = quads(g, step), vg8 = quads(g8, step);
    a[0] = bf16x2_of_bytes(vg, 0, 0);
    a[1] = bf16x2_of_bytes(vg8, 0, 0);
    a[2] = bf16x2_of_bytes(vg, 1, 0);
    a[3] = bf16x2_of_bytes(vg8, 1, 0);
  }
  // Sub-block sub's scale d * sc and min dmin * m (as dequantize_row_q4_K / _q5_K form them).
  INFERD_HD static void scale(const Rows& r, int sub, float* d, float* m) {
    uint32_t sc, mn;
    scale_min(sub, r.head, &sc, &mn);
    *d = half_to_float(r.head.x & 0xFFFFu) * u2f(sc);
    *m = half_to_float(r.head.x >> 16) * u2f(mn);
  }
};
using Q4KMma = KQuant45Mma<Q4_K>;
using Q5KMma = KQuant45Mma<Q5_K>;

// Q6_K: 16 steps a block, step = sub-block 8h + 2r + s (ggml's scale index): elements
// 128h + 32r + 16s + l, l < 16, of which a lane takes l = 4tq .. 4tq + 4: ql bytes
// 64h + 32 (r % 2) + 16s + l (nibble r / 2), qh bytes 128 + 32h + 16s + l (bits 2r, 2r + 1).
struct Q6KMma {
  using Q = Q6_K;
  static constexpr int kElems = 256, kBytes = Q::kSlot;
  static constexpr int kSubs = 16, kStepsPerSub = 1;
  static constexpr bool kHasMin = false;
  struct Rows {
    uint32_t ql[8];  // [4h + 2s + r % 2]
    uint32_t qh[4];  // [2h + s]
    uint32_t sc[4];  // the 16 int8 scales
    uint32_t d;      // low half: d
  };
  INFERD_HD static void load(const uint8_t* s, int tq, Rows* r) {
    INFERD_UNROLL
    for (int h = 0; h < 2; ++h) {
      INFERD_UNROLL
      for (int sb = 0; sb < 2; ++sb) {
        const int l = 16 * sb + 4 * tq;
        r->ql[4 * h + 2 * sb] = ld32(s + 64 * h + l);
        r->ql[4 * h + 2 * sb + 1] = ld32(s + 64 * h + 32 + l);
        r->qh[2 * h + sb] = ld32(s + 128 + 32 * h + l);
      }
    }
    INFERD_UNROLL
    for (int i = 0; i < 4; ++i) r->sc[i] = ld32(s + 192 + 4 * i);
    r->d = ld32(s + 208);
  }
  INFERD_HD static int x_elem(int step, int tq) {
    return 128 * (step / 8) + 32 * ((step / 2) % 4) + 16 * (step % 2) + 4 * tq;
  }
  INFERD_HD static uint32_t quads(const Rows& rw, int step) {
    const int h = step / 8, r = (step / 2) % 4, sb = step % 2;
    const uint32_t lo = (rw.ql[4 * h + 2 * sb + r % 2] >> (4 * (r / 2))) & 0x0F0F0F0Fu;
    const uint32_t hi = ((rw.qh[2 * h + sb] >> (2 * r)) & 0x03030303u) << 4;
    return lo | hi;
  }
  INFERD_HD static void a_regs(const Rows& g, const Rows& g8, int step, uint32_t* a) {
    const uint32_t vg = quads(g, step), vg8 = quads(g8, step);
    a[0] = bf16x2_of_bytes(vg, 0, 32);
    a[1] = bf16x2_of_bytes(vg8, 0, 32);
    a[2] = bf16x2_of_bytes(vg, 1, 32);
    a[3] = bf16x2_of_bytes(vg8, 1, 32);
  }
  INFERD_HD static void scale(const Rows& r, int sub, float* d, float* m) {
    *d = half_to_float(r.d & 0xFFFFu) * u2f(byte_of(r.sc[sub / 4], sub % 4) ^ 0x80u, 128);
    *m = 0.0f;
  }
};

// Q2_K and Q3_K: Q6_K's walk (step = sub-block 8h + 2r + s; a lane's elements
// 128h + 32r + 16s + 4tq .. + 4): qs bytes 32h + 16s + 4tq + i (bits 2r, 2r + 1); Q3_K's third
// bit is bit 4h + r of hmask byte 16s + 4tq + i (set: q, clear: q - 4).
template <class QT>
struct KQuant23Mma {
  using Q = QT;
  static constexpr bool kThree = Q::kType == ggml::Type::kQ3_K;
  static constexpr int kQs = kThree ? 32 : 16;
  static constexpr int kElems = 256, kBytes = Q::kSlot, kSubs = 16, kStepsPerSub = 1;
  static constexpr bool kHasMin = !kThree;
  struct Rows {
    uint32_t qs[4];  // [2h + s]
    uint32_t hm[2];  // Q3_K: hmask words [s]
    uint32_t sc[4];  // Q2_K: the 16 scale bytes; Q3_K: the 12 packed scale bytes
    uint32_t d;      // Q2_K: d, dmin; Q3_K: d (low half)
  };
  INFERD_HD static void load(const uint8_t* s, int tq, Rows* r) {
    INFERD_UNROLL
    for (int i = 0; i < 4; ++i) r->qs[i] = ld32(s + kQs + 32 * (i / 2) + 16 * (i % 2) + 4 * tq);
    if constexpr (kThree) {
      r->hm[0] = ld32(s + 4 * tq);
      r->hm[1] = ld32(s + 16 + 4 * tq);
      INFERD_UNROLL
      for (int i = 0; i < 3; ++i) r->sc[i] = ld32(s + 96 + 4 * i);
      r->d = ld32(s + 108);
    } else {
      INFERD_UNROLL
      for (int i = 0; i < 4; ++i) r->sc[i] = ld32(s + 4 * i);
      r->d = ld32(s + 80);
    }
  }
  INFERD_HD static int x_elem(int step, int tq) {
    return 128 * (step / 8) + 32 * ((step / 2) % 4) + 16 * (step % 2) + 4 * tq;
  }
  INFERD_HD static uint32_t quads(const Rows& rw, int step) {
    const int h = step / 8, r = (step / 2) % 4, sb = step % 2;
    const uint32_t q = (rw.qs[2 * h + sb] >> (2 * r)) & 0x03030303u;
    if constexpr (kThree) return q | (((rw.hm[sb] >> (4 * h + r)) & 0x01010101u) << 2);
    return q;
  }
  INFERD_HD static void a_regs(const Rows& g, const Rows& g8, int step, uint32_t* a) {
    const uint32_t vg = quads(g, step), vg8 = quads(g8, step);
    constexpr int off = kThree ? 4 : 0;
    a[0] = bf16x2_of_bytes(vg, 0, off);
    a[1] = bf16x2_of_bytes(vg8, 0, off);
    a[2] = bf16x2_of_bytes(vg, 1, off);
    a[3] = bf16x2_of_bytes(vg8, 1, off);
  }
  INFERD_HD static void scale(const Rows& r, int sub, float* d, float* m) {
    if constexpr (kThree) {
      *d = half_to_float(r.d & 0xFFFFu) * i2f(q3k_scale(r.sc, sub));
      *m = 0.0f;
    } else {
      const uint32_t sc = byte_of(r.sc[sub / 4], sub % 4);
      *d = half_to_float(r.d & 0xFFFFu) * u2f(sc & 0xF);
      *m = half_to_float(r.d >> 16) * u2f(sc >> 4);
    }
  }
};
using Q2KMma = KQuant23Mma<Q2_K>;
using Q3KMma = KQuant23Mma<Q3_K>;

// The 4-bit bytes of Q5_0 / Q5_1 elements e0 .. e0 + 4 (e0 % 4 == 0) with their fifth bits from
// qh: bit i of the nibble (qh >> e0) & 15 to bit 4 of byte i (the four shifted copies of the
// nibble do not overlap, so the multiply carries nothing).
INFERD_HD uint32_t with_fifth_bits(uint32_t nibbles, uint32_t qh, int e0) {
  return nibbles | ((((qh >> e0) & 0xFu) * 0x00204081u & 0x01010101u) << 4);
}

// IQ4_NL's int8 levels of four nibbles (one a byte, each < 16): bytes of the table words picked by
// the low three bits, the upper or lower half of the table by bit 3.
INFERD_HD uint32_t iq4nl_levels(uint32_t v) {
  const uint32_t sel = (v & 7u) | ((v >> 4) & 0x70u) | ((v >> 8) & 0x700u) | ((v >> 12) & 0x7000u);
  const uint32_t lo = prmt(0xBFAD9881u, 0xF6EADDCFu, sel);  // levels 0..7 (ggml's kvalues_iq4nl)
  const uint32_t hi = prmt(0x26190D01u, 0x71594535u, sel);  // levels 8..15
  const uint32_t m = ((v >> 3) & 0x01010101u) * 0xFFu;
  return (hi & m) | (lo & ~m);
}

// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL: four 32-element ggml blocks to a kernel block of 128
// elements; sub-block j = ggml block j, steps 2j + p: p = 0 the low nibbles (Q8_0: bytes 0..15), p
// = 1 the high nibbles (bytes 16..31); a lane's elements are 16p + 4tq .. + 4 of the ggml block.
template <class QT>
struct LegacyMma {
  using Q = QT;
  static constexpr ggml::Type kT = Q::kType;
  static constexpr bool kQ8 = kT == ggml::Type::kQ8_0;
  static constexpr bool kNL = kT == ggml::Type::kIQ4_NL;
  static constexpr bool kFifth = kT == ggml::Type::kQ5_0 || kT == ggml::Type::kQ5_1;
  static constexpr bool kHasMin = kT == ggml::Type::kQ4_1 || kT == ggml::Type::kQ5_1;
  static constexpr int kQs = kFifth ? 8 : 4;  // the qs bytes' offset in the slot
  static constexpr int kElems = 128, kBytes = 4 * Q::kSlot, kSubs = 4, kStepsPerSub = 2;
  static_assert(kQ8 || kNL || kT == ggml::Type::kQ4_0 || kT == ggml::Type::kQ4_1 || kFifth);
  struct Rows {
    uint32_t q[4][2];  // qs words 4tq (nibble types: [j][0]) and 16 + 4tq (Q8_0) of block j
    uint32_t qh[4];  // Q5_0 / Q5_1: qh of block j >> 4tq (bit i: the fifth bit of element 4tq + i)
    uint32_t dm[4];  // the slot's first word: d (pad, d for the types with a front pad), m
  };
  INFERD_HD static void load(const uint8_t* s, int tq, Rows* r) {
    INFERD_UNROLL
    for (int j = 0; j < 4; ++j) {
      const uint8_t* b = s + j * Q::kSlot;
      r->dm[j] = ld32(b);
      r->q[j][0] = ld32(b + kQs + 4 * tq);
      if constexpr (kQ8) r->q[j][1] = ld32(b + kQs + 16 + 4 * tq);
      if constexpr (kFifth) r->qh[j] = ld32(b + 4) >> (4 * tq);
    }
  }
  INFERD_HD static int x_elem(int step, int tq) {
    return 32 * (step / 2) + 16 * (step % 2) + 4 * tq;
  }
  INFERD_HD static void a_regs(const Rows& g, const Rows& g8, int step, uint32_t* a) {
    const int j = step / 2, p = step % 2;
    if constexpr (kQ8) {
      a[0] = bf16x2_of_int8(g.q[j][p], 0);
      a[1] = bf16x2_of_int8(g8.q[j][p], 0);
      a[2] = bf16x2_of_int8(g.q[j][p], 1);
      a[3] = bf16x2_of_int8(g8.q[j][p], 1);
    } else {
      uint32_t vg = (g.q[j][0] >> (4 * p)) & 0x0F0F0F0Fu,
               vg8 = (g8.q[j][0] >> (4 * p)) & 0x0F0F0F0Fu;
      if constexpr (kFifth) {
        vg = with_fifth_bits(vg, g.qh[j], 16 * p);
        vg8 = with_fifth_bits(vg8, g8.qh[j], 16 * p);
      }
      if constexpr (kNL) {
        const uint32_t lg = iq4nl_levels(vg), lg8 = iq4nl_levels(vg8);
        a[0] = bf16x2_of_int8(lg, 0);
        a[1] = bf16x2_of_int8(lg8, 0);
        a[2] = bf16x2_of_int8(lg, 1);
        a[3] = bf16x2_of_int8(lg8, 1);
        return;
      }
      const int off = kHasMin ? 0 : kFifth ? 16 : 8;
      a[0] = bf16x2_of_bytes(vg, 0, off);
      a[1] = bf16x2_of_bytes(vg8, 0, off);
      a[2] = bf16x2_of_bytes(vg, 1, off);
      a[3] = bf16x2_of_bytes(vg8, 1, off);
    }
  }
  INFERD_HD static void scale(const Rows& r, int sub, float* d, float* m) {
    if constexpr (kHasMin) {  // d(2) m(2): w = d q + m
      *d = half_to_float(r.dm[sub] & 0xFFFFu);
      *m = -half_to_float(r.dm[sub] >> 16);
    } else {  // pad(2) d(2)
      *d = half_to_float(r.dm[sub] >> 16);
      *m = 0.0f;
    }
  }
};

// acc (C layout: rows g, g, g + 8, g + 8) += d_row * cq - m_row * cx for one sub-block.
template <class M>
INFERD_HD void mma_epilogue(float dg, float mg, float dg8, float mg8, const float* cq,
                            const float* cx, float* acc) {
  INFERD_UNROLL
  for (int i = 0; i < 4; ++i) {
    const float d = i < 2 ? dg : dg8;
    acc[i] = fmaf(d, cq[i], acc[i]);
    if constexpr (M::kHasMin) acc[i] = fmaf(-(i < 2 ? mg : mg8), cx[i], acc[i]);
  }
}

}  // namespace inferd::cuda::gg
