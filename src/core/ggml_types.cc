// The scalar reference of ggml's block types (core/ggml_types.h): dequantize_row, bit-exact with
// ggml's dequantize_row_* (ggml-quants.c: the same float operations in the same order, each product
// and sum rounded on its own: this file is compiled with -ffp-contract=off), and quantize_row, a
// plain round-to-nearest quantizer that writes valid blocks of every supported type.
//
// Published description followed: ggml's ggml-common.h (block layouts) and ggml-quants.c
// (dequantize_row_*), as of llama.cpp b4700 (February 2025); checked against gguf-py's
// gguf.quants.dequantize by tests/data/ggml_blocks (tools/make_ggml_block_fixtures.py).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/ggml_types.h"

namespace inferd::ggml {

const int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                 1,    13,   25,  38,  53,  69,  89,  113};

namespace {

float h2f(uint16_t h) {
  return f16_to_f32(h);
}

// ---- Legacy 32-element blocks ------------------------------------------------------------------

void dequant_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (x[i].qs[j] & 0x0F) - 8;
      const int hi = (x[i].qs[j] >> 4) - 8;
      y[j] = float(lo) * d;
      y[j + kQK / 2] = float(hi) * d;
    }
  }
}

void dequant_q4_1(const BlockQ4_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(x[i].d);
    const float m = h2f(x[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = x[i].qs[j] & 0x0F;
      const int hi = x[i].qs[j] >> 4;
      y[j] = float(lo) * d + m;
      y[j + kQK / 2] = float(hi) * d + m;
    }
  }
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void dequant_q5_0(const BlockQ5_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(x[i].d);
    const uint32_t qh = load_u32(x[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = int((x[i].qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) - 16;
      const int hi = int((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
      y[j] = float(lo) * d;
      y[j + kQK / 2] = float(hi) * d;
    }
  }
}

void dequant_q5_1(const BlockQ5_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(x[i].d);
    const float m = h2f(x[i].m);
    const uint32_t qh = load_u32(x[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = int((x[i].qs[j] & 0x0F) | (((qh >> j) & 1u) << 4));
      const int hi = int((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
      y[j] = float(lo) * d + m;
      y[j + kQK / 2] = float(hi) * d + m;
    }
  }
}

void dequant_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[i].qs[j]) * d;
  }
}

void dequant_iq4_nl(const BlockIQ4_NL* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = h2f(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * float(kIq4nlValues[x[i].qs[j] & 0x0F]);
      y[j + kQK / 2] = d * float(kIq4nlValues[x[i].qs[j] >> 4]);
    }
  }
}

// ---- K-quants (256-element super-blocks) -------------------------------------------------------
//
// Q2_K and Q3_K share one element order: a super-block is two halves of 128; in half h the byte
// qs[32 h + l] (l < 32) holds element 128 h + 32 s + l in bits 2s..2s+1 (s = 0..3). Element e's
// scale is scales[e / 16].

void dequant_q2_k(const BlockQ2_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(x[i].d);
    const float dmin = h2f(x[i].dmin);
    for (int e = 0; e < kQKK; e += 16) {
      const uint8_t sc = x[i].scales[e / 16];
      const float dl = d * float(sc & 0xF);
      const float ml = dmin * float(sc >> 4);
      const uint8_t* q = x[i].qs + 32 * (e / 128) + (e % 32);
      const int shift = 2 * ((e % 128) / 32);
      for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l] >> shift) & 3) - ml;
    }
  }
}

// The 16 6-bit scales of a Q3_K block: scale k's low 4 bits are the low (k < 8) or high nibble of
// byte k % 8, its high 2 bits are bits 2 (k / 4)..2 (k / 4) + 1 of byte 8 + k % 4.
void q3_k_scales(const uint8_t* s, int* out) {
  for (int k = 0; k < 16; ++k) {
    const int lo = (s[k % 8] >> (4 * (k / 8))) & 0xF;
    const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    out[k] = (lo | (hi << 4)) - 32;
  }
}

void dequant_q3_k(const BlockQ3_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(x[i].d);
    int scales[16];
    q3_k_scales(x[i].scales, scales);
    for (int e = 0; e < kQKK; e += 16) {
      const float dl = d * float(scales[e / 16]);
      const int half = e / 128, s = (e % 128) / 32, l0 = e % 32;
      const uint8_t* q = x[i].qs + 32 * half + l0;
      const uint8_t* hm = x[i].hmask + l0;
      const uint8_t m = uint8_t(1u << (4 * half + s));
      for (int l = 0; l < 16; ++l) {
        const int v = ((q[l] >> (2 * s)) & 3) - ((hm[l] & m) ? 0 : 4);
        *y++ = dl * float(v);
      }
    }
  }
}

// Q4_K and Q5_K: 8 sub-blocks of 32; sub-blocks 2c and 2c+1 are the low and high nibbles of
// qs[32 c .. 32 c + 32). Q5_K's fifth bit of element 32 j + l is bit j of qh[l].
void dequant_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(x[i].d);
    const float dmin = h2f(x[i].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      scale_min_k4(j, x[i].scales, &sc, &mn);
      const float dl = d * float(sc);
      const float ml = dmin * float(mn);
      const uint8_t* q = x[i].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) *y++ = dl * float((q[l] >> shift) & 0xF) - ml;
    }
  }
}

void dequant_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(x[i].d);
    const float dmin = h2f(x[i].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      scale_min_k4(j, x[i].scales, &sc, &mn);
      const float dl = d * float(sc);
      const float ml = dmin * float(mn);
      const uint8_t* q = x[i].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 0xF) + (((x[i].qh[l] >> j) & 1) << 4);
        *y++ = dl * float(v) - ml;
      }
    }
  }
}

// Q6_K: two halves of 128; in half h, element 128 h + 32 s + l (s = 0..3, l < 32) has its low 4
// bits in ql[64 h + l + 32 (s % 2)] (low nibble for s < 2, high for s >= 2) and its high 2 bits in
// bits 2s..2s+1 of qh[32 h + l]. Its scale is scales[e / 16]; value = (d * scale) * (q - 32).
void dequant_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = h2f(x[i].d);
    for (int e = 0; e < kQKK; e += 16) {
      const int half = e / 128, s = (e % 128) / 32, l0 = e % 32;
      const uint8_t* ql = x[i].ql + 64 * half + 32 * (s % 2) + l0;
      const uint8_t* qh = x[i].qh + 32 * half + l0;
      const float ds = d * float(x[i].scales[e / 16]);
      for (int l = 0; l < 16; ++l) {
        const int v = int(((ql[l] >> (4 * (s / 2))) & 0xF) | (((qh[l] >> (2 * s)) & 3) << 4)) - 32;
        *y++ = ds * float(v);
      }
    }
  }
}

void dequant_q8_k(const BlockQ8_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    for (int j = 0; j < kQKK; ++j) y[j] = x[i].d * float(x[i].qs[j]);
  }
}

// ---- Quantizers (round to nearest; not ggml's search) -----------------------------------------

float max_abs(const float* x, int n) {
  float a = 0.0f;
  for (int i = 0; i < n; ++i) a = std::max(a, std::fabs(x[i]));
  return a;
}
// The element of largest magnitude, with its sign (the first such one).
float signed_max(const float* x, int n) {
  float a = 0.0f, v = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > a) {
      a = std::fabs(x[i]);
      v = x[i];
    }
  }
  return v;
}
int round_clamp(float v, int lo, int hi) {
  if (!(v == v)) return lo;  // NaN
  v = std::clamp(v, float(lo), float(hi));
  return std::clamp(int(std::nearbyint(v)), lo, hi);
}
float inv(float d) {
  return d != 0.0f ? 1.0f / d : 0.0f;
}

// Symmetric scale: the largest-magnitude element maps to -levels (so the block's range is
// -levels..levels-1 with the extreme exactly representable). Returns the stored fp16 and its value.
float sym_scale(const float* x, int n, int levels, uint16_t* d16) {
  *d16 = f32_to_f16(signed_max(x, n) / float(-levels));
  return f16_to_f32(*d16);
}

void quant_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float id = inv(sym_scale(x, kQK, 8, &y[i].d));
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = round_clamp(x[j] * id, -8, 7) + 8;
      const int hi = round_clamp(x[j + kQK / 2] * id, -8, 7) + 8;
      y[i].qs[j] = uint8_t(lo | (hi << 4));
    }
  }
}

void quant_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float id = inv(sym_scale(x, kQK, 16, &y[i].d));
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = round_clamp(x[j] * id, -16, 15) + 16;
      const int hi = round_clamp(x[j + kQK / 2] * id, -16, 15) + 16;
      y[i].qs[j] = uint8_t((lo & 0xF) | ((hi & 0xF) << 4));
      qh |= uint32_t(lo >> 4) << j;
      qh |= uint32_t(hi >> 4) << (j + 16);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

// Q4_1 / Q5_1: value = q * d + m, q in 0..2^bits-1; d and m from the block's min and max.
template <typename Block, int kBits>
void quant_affine(const float* x, Block* y, int64_t nb) {
  constexpr int kMax = (1 << kBits) - 1;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < kQK; ++j) {
      lo = std::min(lo, x[j]);
      hi = std::max(hi, x[j]);
    }
    y[i].d = f32_to_f16((hi - lo) / float(kMax));
    y[i].m = f32_to_f16(lo);
    const float id = inv(f16_to_f32(y[i].d));
    const float m = f16_to_f32(y[i].m);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int a = round_clamp((x[j] - m) * id, 0, kMax);
      const int b = round_clamp((x[j + kQK / 2] - m) * id, 0, kMax);
      y[i].qs[j] = uint8_t((a & 0xF) | ((b & 0xF) << 4));
      qh |= uint32_t(a >> 4) << j;
      qh |= uint32_t(b >> 4) << (j + 16);
    }
    if constexpr (kBits == 5) std::memcpy(y[i].qh, &qh, 4);
  }
}

void quant_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    y[i].d = f32_to_f16(max_abs(x, kQK) / 127.0f);
    const float id = inv(f16_to_f32(y[i].d));
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = int8_t(round_clamp(x[j] * id, -127, 127));
  }
}

int nearest_iq4nl(float v) {
  int best = 0;
  for (int k = 1; k < 16; ++k) {
    if (std::fabs(float(kIq4nlValues[k]) - v) < std::fabs(float(kIq4nlValues[best]) - v)) best = k;
  }
  return best;
}

void quant_iq4_nl(const float* x, BlockIQ4_NL* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float id = inv(sym_scale(x, kQK, 127, &y[i].d));
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = nearest_iq4nl(x[j] * id);
      const int hi = nearest_iq4nl(x[j + kQK / 2] * id);
      y[i].qs[j] = uint8_t(lo | (hi << 4));
    }
  }
}

void quant_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    y[i].d = max_abs(x, kQKK) / 127.0f;
    const float id = inv(y[i].d);
    for (int j = 0; j < kQKK; ++j) y[i].qs[j] = int8_t(round_clamp(x[j] * id, -127, 127));
    for (int g = 0; g < kQKK / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * g + l];
      y[i].bsums[g] = int16_t(sum);
    }
  }
}

// K-quant super-blocks. An affine one (Q2_K, Q4_K, Q5_K) stores, per sub-block, value =
// (d * sc) * q - (dmin * mn) with q in 0..qmax and codes sc, mn in 0..code_max; a symmetric one
// (Q3_K, Q6_K) value = (d * sc) * q with q in -qlev..qlev-1 and sc in -clev..clev-1.
struct SuperBlock {
  uint16_t d = 0, dmin = 0;
  int sc[16] = {}, mn[16] = {};
  int q[kQKK] = {};
};

void quant_affine_k(const float* x, int sub_len, int qmax, int code_max, SuperBlock* b) {
  const int n_sub = kQKK / sub_len;
  float scale[16], neg_min[16], max_scale = 0.0f, max_neg_min = 0.0f;
  for (int s = 0; s < n_sub; ++s) {
    const float* xs = x + s * sub_len;
    float lo = 0.0f, hi = xs[0];
    for (int l = 0; l < sub_len; ++l) {
      lo = std::min(lo, xs[l]);
      hi = std::max(hi, xs[l]);
    }
    scale[s] = (hi - lo) / float(qmax);
    neg_min[s] = -lo;
    max_scale = std::max(max_scale, scale[s]);
    max_neg_min = std::max(max_neg_min, neg_min[s]);
  }
  b->d = f32_to_f16(max_scale / float(code_max));
  b->dmin = f32_to_f16(max_neg_min / float(code_max));
  const float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
  for (int s = 0; s < n_sub; ++s) {
    b->sc[s] = round_clamp(scale[s] * inv(d), 0, code_max);
    b->mn[s] = round_clamp(neg_min[s] * inv(dmin), 0, code_max);
    const float dl = d * float(b->sc[s]), ml = dmin * float(b->mn[s]);
    const float idl = inv(dl);
    for (int l = 0; l < sub_len; ++l) {
      b->q[s * sub_len + l] = round_clamp((x[s * sub_len + l] + ml) * idl, 0, qmax);
    }
  }
}

void quant_symmetric_k(const float* x, int qlev, int clev, SuperBlock* b) {
  float scale[16], extreme = 0.0f;
  for (int s = 0; s < 16; ++s) {
    scale[s] = signed_max(x + 16 * s, 16) / float(-qlev);
    if (std::fabs(scale[s]) > std::fabs(extreme)) extreme = scale[s];
  }
  b->d = f32_to_f16(extreme / float(-clev));
  const float d = f16_to_f32(b->d);
  for (int s = 0; s < 16; ++s) {
    b->sc[s] = round_clamp(scale[s] * inv(d), -clev, clev - 1);
    const float idl = inv(d * float(b->sc[s]));
    for (int l = 0; l < 16; ++l) {
      b->q[16 * s + l] = round_clamp(x[16 * s + l] * idl, -qlev, qlev - 1);
    }
  }
}

// Q2_K / Q3_K: element e's 2 low bits go to qs[32 (e / 128) + e % 32], bits 2 ((e % 128) / 32).
void pack_2bit(const int* q, uint8_t* qs) {
  std::memset(qs, 0, kQKK / 4);
  for (int e = 0; e < kQKK; ++e) {
    qs[32 * (e / 128) + e % 32] |= uint8_t((q[e] & 3) << (2 * ((e % 128) / 32)));
  }
}

void quant_q2_k(const float* x, BlockQ2_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    SuperBlock b;
    quant_affine_k(x, 16, 3, 15, &b);
    y[i].d = b.d;
    y[i].dmin = b.dmin;
    for (int s = 0; s < 16; ++s) y[i].scales[s] = uint8_t(b.sc[s] | (b.mn[s] << 4));
    pack_2bit(b.q, y[i].qs);
  }
}

void quant_q3_k(const float* x, BlockQ3_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    SuperBlock b;
    quant_symmetric_k(x, 4, 32, &b);
    y[i].d = b.d;
    std::memset(y[i].scales, 0, sizeof(y[i].scales));
    for (int k = 0; k < 16; ++k) {  // the layout q3_k_scales reads
      const int v = b.sc[k] + 32;
      y[i].scales[k % 8] |= uint8_t((v & 0xF) << (4 * (k / 8)));
      y[i].scales[8 + k % 4] |= uint8_t((v >> 4) << (2 * (k / 4)));
    }
    std::memset(y[i].hmask, 0, sizeof(y[i].hmask));
    int low[kQKK];
    for (int e = 0; e < kQKK; ++e) {  // q >= 0: hmask bit set, q < 0: stored q + 4, bit clear
      low[e] = b.q[e] >= 0 ? b.q[e] : b.q[e] + 4;
      if (b.q[e] >= 0) y[i].hmask[e % 32] |= uint8_t(1u << (e / 32));
    }
    pack_2bit(low, y[i].qs);
  }
}

// Q4_K / Q5_K's 12 scale bytes: the inverse of scale_min_k4.
void pack_scale_min_k4(const int* sc, const int* mn, uint8_t* q) {
  std::memset(q, 0, kScaleSizeK);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] |= uint8_t(sc[j] & 63);
      q[j + 4] |= uint8_t(mn[j] & 63);
    } else {
      q[j + 4] = uint8_t((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
      q[j - 4] |= uint8_t((sc[j] >> 4) << 6);
      q[j] |= uint8_t((mn[j] >> 4) << 6);
    }
  }
}

void quant_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    SuperBlock b;
    quant_affine_k(x, 32, 15, 63, &b);
    y[i].d = b.d;
    y[i].dmin = b.dmin;
    pack_scale_min_k4(b.sc, b.mn, y[i].scales);
    std::memset(y[i].qs, 0, sizeof(y[i].qs));
    for (int e = 0; e < kQKK; ++e) {
      y[i].qs[32 * (e / 64) + e % 32] |= uint8_t(b.q[e] << (4 * ((e / 32) % 2)));
    }
  }
}

void quant_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    SuperBlock b;
    quant_affine_k(x, 32, 31, 63, &b);
    y[i].d = b.d;
    y[i].dmin = b.dmin;
    pack_scale_min_k4(b.sc, b.mn, y[i].scales);
    std::memset(y[i].qs, 0, sizeof(y[i].qs));
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int e = 0; e < kQKK; ++e) {
      y[i].qs[32 * (e / 64) + e % 32] |= uint8_t((b.q[e] & 0xF) << (4 * ((e / 32) % 2)));
      y[i].qh[e % 32] |= uint8_t((b.q[e] >> 4) << (e / 32));
    }
  }
}

void quant_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    SuperBlock b;
    quant_symmetric_k(x, 32, 128, &b);
    y[i].d = b.d;
    for (int s = 0; s < 16; ++s) y[i].scales[s] = int8_t(b.sc[s]);
    std::memset(y[i].ql, 0, sizeof(y[i].ql));
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int e = 0; e < kQKK; ++e) {  // the layout dequant_q6_k reads
      const int v = b.q[e] + 32, half = e / 128, s = (e % 128) / 32, l = e % 32;
      y[i].ql[64 * half + 32 * (s % 2) + l] |= uint8_t((v & 0xF) << (4 * (s / 2)));
      y[i].qh[32 * half + l] |= uint8_t((v >> 4) << (2 * s));
    }
  }
}

int64_t blocks_of(Type t, int64_t n, const char* what) {
  const TypeTraits& tr = traits(t);
  if (!tr.supported) fail("{}: ggml type {} is not supported", what, tr.name);
  if (n < 0 || n % tr.block_elems != 0) {
    fail("{}: {} elements are not a whole number of {} blocks of {}", what, n, tr.name,
         tr.block_elems);
  }
  return n / tr.block_elems;
}

}  // namespace

void dequantize_row(Type t, const void* src, float* y, int64_t n) {
  const int64_t nb = blocks_of(t, n, "dequantize_row");
  switch (t) {
    case Type::kF32:
      std::memcpy(y, src, size_t(n) * sizeof(float));
      return;
    case Type::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(h[i]);
      return;
    }
    case Type::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(h[i]);
      return;
    }
    case Type::kQ4_0:
      return dequant_q4_0(static_cast<const BlockQ4_0*>(src), y, nb);
    case Type::kQ4_1:
      return dequant_q4_1(static_cast<const BlockQ4_1*>(src), y, nb);
    case Type::kQ5_0:
      return dequant_q5_0(static_cast<const BlockQ5_0*>(src), y, nb);
    case Type::kQ5_1:
      return dequant_q5_1(static_cast<const BlockQ5_1*>(src), y, nb);
    case Type::kQ8_0:
      return dequant_q8_0(static_cast<const BlockQ8_0*>(src), y, nb);
    case Type::kQ2_K:
      return dequant_q2_k(static_cast<const BlockQ2_K*>(src), y, nb);
    case Type::kQ3_K:
      return dequant_q3_k(static_cast<const BlockQ3_K*>(src), y, nb);
    case Type::kQ4_K:
      return dequant_q4_k(static_cast<const BlockQ4_K*>(src), y, nb);
    case Type::kQ5_K:
      return dequant_q5_k(static_cast<const BlockQ5_K*>(src), y, nb);
    case Type::kQ6_K:
      return dequant_q6_k(static_cast<const BlockQ6_K*>(src), y, nb);
    case Type::kQ8_K:
      return dequant_q8_k(static_cast<const BlockQ8_K*>(src), y, nb);
    case Type::kIQ4_NL:
      return dequant_iq4_nl(static_cast<const BlockIQ4_NL*>(src), y, nb);
    default:
      break;
  }
  fail("dequantize_row: ggml type {} is not supported", traits(t).name);
}

void quantize_row(Type t, const float* x, void* dst, int64_t n) {
  const int64_t nb = blocks_of(t, n, "quantize_row");
  switch (t) {
    case Type::kF32:
      std::memcpy(dst, x, size_t(n) * sizeof(float));
      return;
    case Type::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(x[i]);
      return;
    }
    case Type::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(x[i]);
      return;
    }
    case Type::kQ4_0:
      return quant_q4_0(x, static_cast<BlockQ4_0*>(dst), nb);
    case Type::kQ4_1:
      return quant_affine<BlockQ4_1, 4>(x, static_cast<BlockQ4_1*>(dst), nb);
    case Type::kQ5_0:
      return quant_q5_0(x, static_cast<BlockQ5_0*>(dst), nb);
    case Type::kQ5_1:
      return quant_affine<BlockQ5_1, 5>(x, static_cast<BlockQ5_1*>(dst), nb);
    case Type::kQ8_0:
      return quant_q8_0(x, static_cast<BlockQ8_0*>(dst), nb);
    case Type::kQ2_K:
      return quant_q2_k(x, static_cast<BlockQ2_K*>(dst), nb);
    case Type::kQ3_K:
      return quant_q3_k(x, static_cast<BlockQ3_K*>(dst), nb);
    case Type::kQ4_K:
      return quant_q4_k(x, static_cast<BlockQ4_K*>(dst), nb);
    case Type::kQ5_K:
      return quant_q5_k(x, static_cast<BlockQ5_K*>(dst), nb);
    case Type::kQ6_K:
      return quant_q6_k(x, static_cast<BlockQ6_K*>(dst), nb);
    case Type::kQ8_K:
      return quant_q8_k(x, static_cast<BlockQ8_K*>(dst), nb);
    case Type::kIQ4_NL:
      return quant_iq4_nl(x, static_cast<BlockIQ4_NL*>(dst), nb);
    default:
      break;
  }
  fail("quantize_row: ggml type {} is not supported", traits(t).name);
}

}  // namespace inferd::ggml
