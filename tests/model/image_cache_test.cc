// The image content hash and the image embedding cache (LRU within a byte budget).
#include <gtest/gtest.h>

#include "media/image_hash.h"
#include "runner/image_embedding_cache.h"

namespace inferd {
namespace {

media::PixelValues pixels(float v, std::vector<int64_t> shape = {3, 2, 2}) {
  media::PixelValues pv;
  pv.shape = shape;
  pv.data.assign(12, v);
  return pv;
}

ImageEmbeddingCache::Embeddings emb(size_t n, float v = 1) {
  return std::make_shared<const std::vector<float>>(n, v);
}

TEST(ImageHash, DependsOnValuesShapeAndGrid) {
  const auto a = media::image_hash(pixels(0.5f));
  EXPECT_EQ(a, media::image_hash(pixels(0.5f)));
  EXPECT_NE(a, media::image_hash(pixels(0.25f)));
  EXPECT_NE(a, media::image_hash(pixels(0.5f, {12, 1})));
  media::PixelValues g = pixels(0.5f);
  g.grid_thw = {1, 2, 6};
  EXPECT_NE(a, media::image_hash(g));
  EXPECT_EQ(media::to_hex(a).size(), 64u);
}

TEST(ImageEmbeddingCache, LruWithinTheBudget) {
  ImageEmbeddingCache cache(3 * 4 * 100);  // three entries of 100 floats
  const auto h = [](float v) { return media::image_hash(pixels(v)); };
  for (int i = 0; i < 3; ++i) cache.insert(h(float(i)), emb(100, float(i)));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.bytes(), 1200);
  ASSERT_NE(cache.find(h(0)), nullptr);  // 0 is now the most recently used
  cache.insert(h(3), emb(100, 3));       // evicts 1
  EXPECT_EQ(cache.find(h(1)), nullptr);
  EXPECT_NE(cache.find(h(0)), nullptr);
  EXPECT_EQ((*cache.find(h(3)))[0], 3.0f);
  EXPECT_EQ(cache.hits(), 3);
  EXPECT_EQ(cache.misses(), 1);
  // Replacing keeps one entry; an entry over the whole budget is not kept.
  cache.insert(h(3), emb(50, 4));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.bytes(), 1000);
  cache.insert(h(9), emb(1000));
  EXPECT_EQ(cache.find(h(9)), nullptr);
  EXPECT_EQ(cache.size(), 3u);
  // A held entry stays valid after its eviction.
  const auto held = cache.find(h(2));
  for (int i = 10; i < 14; ++i) cache.insert(h(float(i)), emb(100));
  EXPECT_EQ(cache.find(h(2)), nullptr);
  EXPECT_EQ((*held)[0], 2.0f);
}

}  // namespace
}  // namespace inferd
