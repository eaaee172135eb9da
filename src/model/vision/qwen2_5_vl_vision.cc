// Qwen2.5-VL's vision tower, fp32 CPU reference (see qwen2_5_vl_vision.h). Written from
// transformers' Qwen2_5_VisionTransformerPretrainedModel (rot_pos_emb, get_window_index, the
// blocks and Qwen2_5_VLPatchMerger).
#include "model/vision/qwen2_5_vl_vision.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/vision/vision_ops.h"

namespace inferd {

namespace {

int64_t get_pos(const nlohmann::json& j, const char* key, int64_t def, const std::string& src) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number_integer() || it->get<int64_t>() <= 0)
    fail("{}: {} must be a positive integer, got {}", src, key, it->dump());
  return it->get<int64_t>();
}

// Full attention among rows [s0, s0 + len) of q/k/v ([n, heads * hd], rotated), into ctx.
void segment_attention(const std::vector<float>& q, const std::vector<float>& k,
                       const std::vector<float>& v, int64_t s0, int64_t len, int64_t nh, int64_t hd,
                       std::vector<float>& ctx) {
  const int64_t h = nh * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  std::vector<double> s(static_cast<size_t>(len));
  for (int64_t i = s0; i < s0 + len; ++i) {
    for (int64_t head = 0; head < nh; ++head) {
      const float* qi = &q[size_t(i * h + head * hd)];
      double mx = -INFINITY;
      for (int64_t j = 0; j < len; ++j) {
        const float* kj = &k[size_t((s0 + j) * h + head * hd)];
        float acc = 0;
        for (int64_t d = 0; d < hd; ++d) acc += qi[d] * kj[d];
        s[size_t(j)] = double(acc * scale);
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (int64_t j = 0; j < len; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
      float* o = &ctx[size_t(i * h + head * hd)];
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = 0; j < len; ++j) {
        const float p = float(s[size_t(j)] / sum);
        const float* vj = &v[size_t((s0 + j) * h + head * hd)];
        for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
      }
    }
  }
}

// Rotate-half rope in place on each head of x [n, heads * hd] with per-row angles [n, hd / 2].
void rope(std::vector<float>& x, const std::vector<float>& angles, int64_t n, int64_t nh,
          int64_t hd) {
  const int64_t half = hd / 2;
  for (int64_t r = 0; r < n; ++r) {
    const float* a = &angles[size_t(r * half)];
    for (int64_t head = 0; head < nh; ++head) {
      float* t = &x[size_t((r * nh + head) * hd)];
      for (int64_t d = 0; d < half; ++d) {
        const float c = std::cos(a[d]), s = std::sin(a[d]);
        const float x1 = t[d], x2 = t[d + half];
        t[d] = x1 * c - x2 * s;
        t[d + half] = x2 * c + x1 * s;
      }
    }
  }
}

}  // namespace

Qwen25VlVisionConfig Qwen25VlVisionConfig::parse(const nlohmann::json& j, const std::string& src) {
  if (!j.is_object()) fail("{}: expected an object", src);
  Qwen25VlVisionConfig c;
  c.depth = get_pos(j, "depth", c.depth, src);
  c.hidden_size = get_pos(j, "hidden_size", c.hidden_size, src);
  c.intermediate_size = get_pos(j, "intermediate_size", c.intermediate_size, src);
  c.num_heads = get_pos(j, "num_heads", c.num_heads, src);
  c.out_hidden_size = get_pos(j, "out_hidden_size", c.out_hidden_size, src);
  c.patch_size = get_pos(j, "patch_size", c.patch_size, src);
  c.spatial_merge_size = get_pos(j, "spatial_merge_size", c.spatial_merge_size, src);
  c.temporal_patch_size = get_pos(j, "temporal_patch_size", c.temporal_patch_size, src);
  c.window_size = get_pos(j, "window_size", c.window_size, src);
  if (get_pos(j, "in_chans", 3, src) != 3 || get_pos(j, "in_channels", 3, src) != 3)
    fail("{}: in_chans must be 3 (RGB)", src);
  const std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") fail("{}: hidden_act '{}' is not supported: expected \"silu\"", src, act);
  if (auto it = j.find("fullatt_block_indexes"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) fail("{}: fullatt_block_indexes must be an array of integers", src);
    c.fullatt_block_indexes.clear();
    for (const auto& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.depth)
        fail("{}: fullatt_block_indexes: {} is not a block index below depth {}", src, v.dump(),
             c.depth);
      c.fullatt_block_indexes.push_back(v.get<int64_t>());
    }
  }
  const int64_t hd = c.hidden_size / c.num_heads;
  if (c.hidden_size % c.num_heads != 0 || hd % 4 != 0)
    fail("{}: hidden_size / num_heads must be a whole multiple of 4 (2-D rope), got {} / {}", src,
         c.hidden_size, c.num_heads);
  if (c.window_size % (c.patch_size * c.spatial_merge_size) != 0)
    fail("{}: window_size {} is not a multiple of patch_size x spatial_merge_size", src,
         c.window_size);
  return c;
}

Qwen25VlVisionTower::Linear Qwen25VlVisionTower::linear(const SafetensorsIndex& st,
                                                        const std::string& name, int64_t out,
                                                        int64_t in, bool bias) const {
  Linear l;
  l.in = in;
  l.out = out;
  l.w = load_vision_weight(st, name + ".weight", {out, in});
  if (bias) l.b = load_vision_weight(st, name + ".bias", {out});
  return l;
}

void Qwen25VlVisionTower::apply(const Linear& l, const float* x, int64_t t, float* y) const {
  vision_linear(x, t, l.in, l.w.data(), l.b.empty() ? nullptr : l.b.data(), l.out, y);
}

Qwen25VlVisionTower::Qwen25VlVisionTower(const Qwen25VlVisionConfig& c, const SafetensorsIndex& st,
                                         const std::string& prefix)
    : c_(c) {
  const int64_t h = c.hidden_size, f = c.intermediate_size, p = c.patch_size;
  const int64_t m2 = c.spatial_merge_size * c.spatial_merge_size;
  patch_.in = 3 * c.temporal_patch_size * p * p;
  patch_.out = h;
  patch_.w = load_vision_weight(st, prefix + "patch_embed.proj.weight",
                                {h, 3, c.temporal_patch_size, p, p});
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string b = prefix + "blocks." + std::to_string(i) + ".";
    Block B;
    B.norm1 = load_vision_weight(st, b + "norm1.weight", {h});
    B.norm2 = load_vision_weight(st, b + "norm2.weight", {h});
    B.qkv = linear(st, b + "attn.qkv", 3 * h, h, true);
    B.proj = linear(st, b + "attn.proj", h, h, true);
    B.gate = linear(st, b + "mlp.gate_proj", f, h, true);
    B.up = linear(st, b + "mlp.up_proj", f, h, true);
    B.down = linear(st, b + "mlp.down_proj", h, f, true);
    blocks_.push_back(std::move(B));
  }
  merger_norm_ = load_vision_weight(st, prefix + "merger.ln_q.weight", {h});
  merger_fc1_ = linear(st, prefix + "merger.mlp.0", m2 * h, m2 * h, true);
  merger_fc2_ = linear(st, prefix + "merger.mlp.2", c.out_hidden_size, m2 * h, true);
}

std::vector<float> Qwen25VlVisionTower::forward(const std::vector<float>& pixel_values,
                                                const std::array<int32_t, 3>& grid_thw) const {
  const int64_t m = c_.spatial_merge_size, mu = m * m, h = c_.hidden_size;
  const int64_t nh = c_.num_heads, hd = h / nh, half = hd / 2;
  const int64_t gt = grid_thw[0], gh = grid_thw[1], gw = grid_thw[2];
  const int64_t n = gt * gh * gw;
  if (gt < 1 || gh % m != 0 || gw % m != 0 || gh <= 0 || gw <= 0)
    fail("Qwen2.5-VL vision: grid {}x{}x{} is not a positive multiple of the merge size {}", gt, gh,
         gw, m);
  if (int64_t(pixel_values.size()) != n * patch_.in)
    fail("Qwen2.5-VL vision: expected {} x {} pixel values for grid {}x{}x{}, got {}", n, patch_.in,
         gt, gh, gw, pixel_values.size());
  // Merged-token order grouped by windows of vw x vw merged tokens (padding skipped) per frame,
  // and each window's size; rows move in units of one merged token (mu patches).
  const int64_t vw = c_.window_size / m / c_.patch_size, lh = gh / m, lw = gw / m;
  std::vector<int64_t> order, window_rows;
  for (int64_t t = 0; t < gt; ++t)
    for (int64_t wy = 0; wy < (lh + vw - 1) / vw; ++wy)
      for (int64_t wx = 0; wx < (lw + vw - 1) / vw; ++wx) {
        int64_t count = 0;
        for (int64_t y = wy * vw; y < std::min(lh, (wy + 1) * vw); ++y)
          for (int64_t x = wx * vw; x < std::min(lw, (wx + 1) * vw); ++x, ++count)
            order.push_back(t * lh * lw + y * lw + x);
        window_rows.push_back(count * mu);
      }
  // Patch embedding, then the rows permuted into window order with their rope angles: patch j
  // of merged token q (row q * mu + j in the processor's order) sits at (y, x) of the grid.
  std::vector<float> emb(size_t(n * h));
  apply(patch_, pixel_values.data(), n, emb.data());
  std::vector<float> x(size_t(n * h)), angles(size_t(n * half));
  const int64_t quarter = half / 2;
  for (int64_t r = 0; r < n / mu; ++r) {
    const int64_t q = order[size_t(r)], in_frame = q % (lh * lw);
    const int64_t by = in_frame / lw, bx = in_frame % lw;
    for (int64_t j = 0; j < mu; ++j) {
      const int64_t src = q * mu + j, dst = r * mu + j;
      std::copy_n(&emb[size_t(src * h)], h, &x[size_t(dst * h)]);
      const double py = double(by * m + j / m), px = double(bx * m + j % m);
      for (int64_t d = 0; d < quarter; ++d) {
        const double inv = 1.0 / std::pow(10000.0, double(2 * d) / double(half));
        angles[size_t(dst * half + d)] = float(py * inv);
        angles[size_t(dst * half + quarter + d)] = float(px * inv);
      }
    }
  }
  std::vector<float> y(size_t(n * h)), qkv(size_t(n * 3 * h)), q(size_t(n * h)), k(size_t(n * h)),
      v(size_t(n * h)), ctx(size_t(n * h)), gate(size_t(n * c_.intermediate_size)),
      up(size_t(n * c_.intermediate_size));
  for (size_t bi = 0; bi < blocks_.size(); ++bi) {
    const Block& B = blocks_[bi];
    const bool full = std::find(c_.fullatt_block_indexes.begin(), c_.fullatt_block_indexes.end(),
                                int64_t(bi)) != c_.fullatt_block_indexes.end();
    vision_rms_norm(x.data(), n, h, B.norm1.data(), 1e-6, y.data());
    apply(B.qkv, y.data(), n, qkv.data());
    for (int64_t r = 0; r < n; ++r) {
      std::copy_n(&qkv[size_t(r * 3 * h)], h, &q[size_t(r * h)]);
      std::copy_n(&qkv[size_t(r * 3 * h + h)], h, &k[size_t(r * h)]);
      std::copy_n(&qkv[size_t(r * 3 * h + 2 * h)], h, &v[size_t(r * h)]);
    }
    rope(q, angles, n, nh, hd);
    rope(k, angles, n, nh, hd);
    if (full) {  // each frame attends within itself
      for (int64_t t = 0; t < gt; ++t)
        segment_attention(q, k, v, t * gh * gw, gh * gw, nh, hd, ctx);
    } else {
      int64_t s0 = 0;
      for (int64_t len : window_rows) {
        segment_attention(q, k, v, s0, len, nh, hd, ctx);
        s0 += len;
      }
    }
    apply(B.proj, ctx.data(), n, y.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    vision_rms_norm(x.data(), n, h, B.norm2.data(), 1e-6, y.data());
    apply(B.gate, y.data(), n, gate.data());
    apply(B.up, y.data(), n, up.data());
    vision_silu(gate.data(), int64_t(gate.size()));
    for (size_t i = 0; i < gate.size(); ++i) gate[i] *= up[i];
    apply(B.down, gate.data(), n, y.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  }
  // Merger: RMSNorm, mu consecutive rows as one, MLP; then back to the processor's order.
  vision_rms_norm(x.data(), n, h, merger_norm_.data(), 1e-6, y.data());
  const int64_t tokens = n / mu;
  std::vector<float> mid(size_t(tokens * mu * h)), merged(size_t(tokens * c_.out_hidden_size));
  apply(merger_fc1_, y.data(), tokens, mid.data());
  vision_gelu_erf(mid.data(), int64_t(mid.size()));
  apply(merger_fc2_, mid.data(), tokens, merged.data());
  std::vector<float> out(merged.size());
  for (int64_t r = 0; r < tokens; ++r)
    std::copy_n(&merged[size_t(r * c_.out_hidden_size)], c_.out_hidden_size,
                &out[size_t(order[size_t(r)] * c_.out_hidden_size)]);
  return out;
}

}  // namespace inferd
