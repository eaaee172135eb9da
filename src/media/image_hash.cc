// SHA-256 of a preprocessed image (see image_hash.h), with OpenSSL's libcrypto.
#include "media/image_hash.h"

#include <openssl/evp.h>

#include <memory>

#include "core/error.h"

namespace inferd::media {

ImageHash image_hash(const PixelValues& pv) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  INFERD_CHECK(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1,
               "SHA-256 init failed");
  const int64_t rank = int64_t(pv.shape.size());
  EVP_DigestUpdate(ctx.get(), &rank, sizeof(rank));
  EVP_DigestUpdate(ctx.get(), pv.shape.data(), pv.shape.size() * sizeof(int64_t));
  EVP_DigestUpdate(ctx.get(), pv.grid_thw.data(), sizeof(pv.grid_thw));
  EVP_DigestUpdate(ctx.get(), pv.data.data(), pv.data.size() * sizeof(float));
  ImageHash h{};
  unsigned int n = 0;
  INFERD_CHECK(EVP_DigestFinal_ex(ctx.get(), h.data(), &n) == 1 && n == h.size(),
               "SHA-256 final failed");
  return h;
}

std::string to_hex(const ImageHash& h) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (uint8_t b : h) {
    s += k[b >> 4];
    s += k[b & 15];
  }
  return s;
}

}  // namespace inferd::media
