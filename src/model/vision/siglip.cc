// SigLIP vision tower and Gemma 3's projector, fp32 CPU reference (see siglip.h). Written from
// transformers' SiglipVisionTransformer and Gemma3MultiModalProjector.
#include "model/vision/siglip.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
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

}  // namespace

SiglipVisionConfig SiglipVisionConfig::parse(const nlohmann::json& j, const std::string& src) {
  if (!j.is_object()) fail("{}: expected an object", src);
  SiglipVisionConfig c;
  c.hidden_size = get_pos(j, "hidden_size", 768, src);
  c.intermediate_size = get_pos(j, "intermediate_size", 3072, src);
  c.num_layers = get_pos(j, "num_hidden_layers", 12, src);
  c.num_heads = get_pos(j, "num_attention_heads", 12, src);
  c.num_channels = get_pos(j, "num_channels", 3, src);
  c.image_size = get_pos(j, "image_size", 224, src);
  c.patch_size = get_pos(j, "patch_size", 16, src);
  if (auto it = j.find("layer_norm_eps"); it != j.end() && it->is_number())
    c.layer_norm_eps = it->get<double>();
  const std::string act = j.value("hidden_act", std::string("gelu_pytorch_tanh"));
  if (act != "gelu_pytorch_tanh" && act != "gelu_new" && act != "gelu_python_tanh")
    fail("{}: hidden_act '{}' is not supported: expected \"gelu_pytorch_tanh\"", src, act);
  if (j.value("vision_use_head", false))
    fail("{}: vision_use_head true is not supported (Gemma 3's tower has no pooling head)", src);
  if (c.num_channels != 3) fail("{}: num_channels must be 3 (RGB), got {}", src, c.num_channels);
  if (c.hidden_size % c.num_heads != 0)
    fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", src, c.hidden_size,
         c.num_heads);
  if (c.image_size % c.patch_size != 0)
    fail("{}: image_size {} is not a multiple of patch_size {}", src, c.image_size, c.patch_size);
  return c;
}

SiglipVisionTower::Linear SiglipVisionTower::linear(const SafetensorsIndex& st,
                                                    const std::string& name, int64_t out,
                                                    int64_t in) const {
  Linear l;
  l.in = in;
  l.out = out;
  l.w = load_vision_weight(st, name + ".weight", {out, in});
  l.b = load_vision_weight(st, name + ".bias", {out});
  return l;
}

SiglipVisionTower::Norm SiglipVisionTower::norm(const SafetensorsIndex& st,
                                                const std::string& name) const {
  return {load_vision_weight(st, name + ".weight", {c_.hidden_size}),
          load_vision_weight(st, name + ".bias", {c_.hidden_size})};
}

SiglipVisionTower::SiglipVisionTower(const SiglipVisionConfig& c, const SafetensorsIndex& st,
                                     const std::string& prefix)
    : c_(c) {
  const int64_t h = c.hidden_size, p = c.patch_size;
  patch_.in = 3 * p * p;
  patch_.out = h;
  patch_.w = load_vision_weight(st, prefix + "embeddings.patch_embedding.weight", {h, 3, p, p});
  patch_.b = load_vision_weight(st, prefix + "embeddings.patch_embedding.bias", {h});
  positions_ =
      load_vision_weight(st, prefix + "embeddings.position_embedding.weight", {c.num_patches(), h});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string lp = prefix + "encoder.layers." + std::to_string(i) + ".";
    Layer L;
    L.ln1 = norm(st, lp + "layer_norm1");
    L.ln2 = norm(st, lp + "layer_norm2");
    L.q = linear(st, lp + "self_attn.q_proj", h, h);
    L.k = linear(st, lp + "self_attn.k_proj", h, h);
    L.v = linear(st, lp + "self_attn.v_proj", h, h);
    L.o = linear(st, lp + "self_attn.out_proj", h, h);
    L.fc1 = linear(st, lp + "mlp.fc1", c.intermediate_size, h);
    L.fc2 = linear(st, lp + "mlp.fc2", h, c.intermediate_size);
    layers_.push_back(std::move(L));
  }
  post_ = norm(st, prefix + "post_layernorm");
}

// Full (bidirectional) multi-head attention over all patches of the image: out [n, hidden].
void SiglipVisionTower::attention(const Layer& L, const std::vector<float>& x,
                                  std::vector<float>& out) const {
  const int64_t n = c_.num_patches(), h = c_.hidden_size, nh = c_.num_heads, hd = h / nh;
  std::vector<float> q(size_t(n * h)), k(size_t(n * h)), v(size_t(n * h)), ctx(size_t(n * h));
  vision_linear(x.data(), n, h, L.q.w.data(), L.q.b.data(), h, q.data());
  vision_linear(x.data(), n, h, L.k.w.data(), L.k.b.data(), h, k.data());
  vision_linear(x.data(), n, h, L.v.w.data(), L.v.b.data(), h, v.data());
  const float scale = 1.0f / std::sqrt(float(hd));
  {
    std::vector<float> s(static_cast<size_t>(n));
    for (int64_t r = 0; r < n * nh; ++r) {
      const int64_t i = r / nh, head = r % nh;
      const float* qi = &q[size_t(i * h + head * hd)];
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const float* kj = &k[size_t(j * h + head * hd)];
        float acc = 0;
        for (int64_t d = 0; d < hd; ++d) acc += qi[d] * kj[d];
        s[size_t(j)] = acc * scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        s[size_t(j)] = std::exp(s[size_t(j)] - mx);
        sum += s[size_t(j)];
      }
      float* o = &ctx[size_t(i * h + head * hd)];
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float pj = float(s[size_t(j)] / sum);
        const float* vj = &v[size_t(j * h + head * hd)];
        for (int64_t d = 0; d < hd; ++d) o[d] += pj * vj[d];
      }
    }
  }
  vision_linear(ctx.data(), n, h, L.o.w.data(), L.o.b.data(), h, out.data());
}

std::vector<float> SiglipVisionTower::forward(const std::vector<float>& pixel_values) const {
  const int64_t s = c_.image_size, p = c_.patch_size, side = c_.patches_per_side();
  const int64_t n = c_.num_patches(), h = c_.hidden_size;
  if (int64_t(pixel_values.size()) != 3 * s * s)
    fail("SigLIP: expected pixel values [3, {}, {}], got {} values", s, s, pixel_values.size());
  // Patches flattened as the conv weight is: (channel, y, x), in row-major patch order.
  std::vector<float> patches(size_t(n * 3 * p * p));
  for (int64_t py = 0; py < side; ++py)
    for (int64_t px = 0; px < side; ++px) {
      float* dst = &patches[size_t((py * side + px) * 3 * p * p)];
      for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t y = 0; y < p; ++y)
          for (int64_t x = 0; x < p; ++x)
            *dst++ = pixel_values[size_t((ch * s + py * p + y) * s + px * p + x)];
    }
  std::vector<float> hs(size_t(n * h)), tmp(size_t(n * h)), attn(size_t(n * h));
  vision_linear(patches.data(), n, 3 * p * p, patch_.w.data(), patch_.b.data(), h, hs.data());
  for (size_t i = 0; i < hs.size(); ++i) hs[i] += positions_[i];
  std::vector<float> mid(size_t(n * c_.intermediate_size));
  for (const Layer& L : layers_) {
    vision_layer_norm(hs.data(), n, h, L.ln1.w.data(), L.ln1.b.data(), c_.layer_norm_eps,
                      tmp.data());
    attention(L, tmp, attn);
    for (size_t i = 0; i < hs.size(); ++i) hs[i] += attn[i];
    vision_layer_norm(hs.data(), n, h, L.ln2.w.data(), L.ln2.b.data(), c_.layer_norm_eps,
                      tmp.data());
    vision_linear(tmp.data(), n, h, L.fc1.w.data(), L.fc1.b.data(), c_.intermediate_size,
                  mid.data());
    vision_gelu_tanh(mid.data(), int64_t(mid.size()));
    vision_linear(mid.data(), n, c_.intermediate_size, L.fc2.w.data(), L.fc2.b.data(), h,
                  attn.data());
    for (size_t i = 0; i < hs.size(); ++i) hs[i] += attn[i];
  }
  vision_layer_norm(hs.data(), n, h, post_.w.data(), post_.b.data(), c_.layer_norm_eps, tmp.data());
  return tmp;
}

Gemma3Projector::Gemma3Projector(const SiglipVisionConfig& vision, int64_t mm_tokens_per_image,
                                 int64_t text_hidden, const SafetensorsIndex& st,
                                 const std::string& prefix)
    : v_(vision), text_hidden_(text_hidden) {
  tokens_side_ = int64_t(std::lround(std::sqrt(double(mm_tokens_per_image))));
  if (tokens_side_ * tokens_side_ != mm_tokens_per_image ||
      vision.patches_per_side() % tokens_side_ != 0)
    fail(
        "config.json: mm_tokens_per_image {} must be a square whose side divides the {} patches "
        "a side of the vision tower",
        mm_tokens_per_image, vision.patches_per_side());
  norm_w_ = load_vision_weight(st, prefix + "mm_soft_emb_norm.weight", {vision.hidden_size});
  proj_ = load_vision_weight(st, prefix + "mm_input_projection_weight",
                             {vision.hidden_size, text_hidden});
}

std::vector<float> Gemma3Projector::forward(const std::vector<float>& vo) const {
  const int64_t side = v_.patches_per_side(), k = side / tokens_side_, h = v_.hidden_size;
  const int64_t t = tokens();
  // Average pooling k x k over the patch grid (row-major patches -> row-major soft tokens).
  std::vector<float> pooled(size_t(t * h), 0.0f);
  for (int64_t ty = 0; ty < tokens_side_; ++ty)
    for (int64_t tx = 0; tx < tokens_side_; ++tx) {
      float* dst = &pooled[size_t((ty * tokens_side_ + tx) * h)];
      for (int64_t y = 0; y < k; ++y)
        for (int64_t x = 0; x < k; ++x) {
          const float* src = &vo[size_t(((ty * k + y) * side + tx * k + x) * h)];
          for (int64_t d = 0; d < h; ++d) dst[d] += src[d];
        }
      for (int64_t d = 0; d < h; ++d) dst[d] /= float(k * k);
    }
  // RMSNorm (1 + w), then x @ W with W [vision_hidden, text_hidden].
  std::vector<float> out(size_t(t * text_hidden_), 0.0f);
  for (int64_t r = 0; r < t; ++r) {
    float* x = &pooled[size_t(r * h)];
    double ss = 0;
    for (int64_t d = 0; d < h; ++d) ss += double(x[d]) * x[d];
    const float inv = float(1.0 / std::sqrt(ss / double(h) + v_.layer_norm_eps));
    for (int64_t d = 0; d < h; ++d) x[d] = x[d] * inv * (1.0f + norm_w_[size_t(d)]);
    float* y = &out[size_t(r * text_hidden_)];
    for (int64_t d = 0; d < h; ++d) {
      const float* w = &proj_[size_t(d * text_hidden_)];
      for (int64_t o = 0; o < text_hidden_; ++o) y[o] += x[d] * w[o];
    }
  }
  return out;
}

}  // namespace inferd
