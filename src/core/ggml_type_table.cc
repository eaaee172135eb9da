// The table of ggml tensor types (core/ggml_types.h): each type id GGUF files store, its ggml name,
// the elements and bytes of one block, and whether inferd dequantizes it. The block and dequantize
// code lives in ggml_types.cc; this file only describes the layouts.
//
// Published description followed: ggml's ggml-common.h (block structs and their sizes) and the
// type names of ggml.c's type_traits, as of llama.cpp b4700 (February 2025; MXFP4 from August
// 2025).
#include <array>
#include <mutex>
#include <set>
#include <string>

#include "core/error.h"
#include "core/ggml_types.h"

namespace inferd::ggml {

namespace {

struct Row {
  Type type;
  TypeTraits traits;
};

constexpr Row kTable[] = {
    {Type::kF32, {"f32", 1, 4, true}},
    {Type::kF16, {"f16", 1, 2, true}},
    {Type::kQ4_0, {"q4_0", kQK, sizeof(BlockQ4_0), true}},
    {Type::kQ4_1, {"q4_1", kQK, sizeof(BlockQ4_1), true}},
    {Type::kQ5_0, {"q5_0", kQK, sizeof(BlockQ5_0), true}},
    {Type::kQ5_1, {"q5_1", kQK, sizeof(BlockQ5_1), true}},
    {Type::kQ8_0, {"q8_0", kQK, sizeof(BlockQ8_0), true}},
    {Type::kQ8_1, {"q8_1", kQK, sizeof(BlockQ8_1), false}},
    {Type::kQ2_K, {"q2_K", kQKK, sizeof(BlockQ2_K), true}},
    {Type::kQ3_K, {"q3_K", kQKK, sizeof(BlockQ3_K), true}},
    {Type::kQ4_K, {"q4_K", kQKK, sizeof(BlockQ4_K), true}},
    {Type::kQ5_K, {"q5_K", kQKK, sizeof(BlockQ5_K), true}},
    {Type::kQ6_K, {"q6_K", kQKK, sizeof(BlockQ6_K), true}},
    {Type::kQ8_K, {"q8_K", kQKK, sizeof(BlockQ8_K), true}},
    // The i-quants: fp16 d, then their grids' indices (ggml-common.h's block_iq*).
    {Type::kIQ2_XXS, {"iq2_xxs", kQKK, 2 + kQKK / 4, false}},
    {Type::kIQ2_XS, {"iq2_xs", kQKK, 2 + kQKK / 4 + kQKK / 32, false}},
    {Type::kIQ3_XXS, {"iq3_xxs", kQKK, 2 + 3 * kQKK / 8, false}},
    {Type::kIQ1_S, {"iq1_s", kQKK, 2 + kQKK / 8 + kQKK / 16, false}},
    {Type::kIQ4_NL, {"iq4_nl", kQK, sizeof(BlockIQ4_NL), true}},
    {Type::kIQ3_S, {"iq3_s", kQKK, 2 + 13 * kQKK / 32 + kQKK / 64, false}},
    {Type::kIQ2_S, {"iq2_s", kQKK, 2 + kQKK / 4 + kQKK / 16, false}},
    {Type::kIQ4_XS, {"iq4_xs", kQKK, 2 + 2 + kQKK / 64 + kQKK / 2, false}},
    {Type::kI8, {"i8", 1, 1, false}},
    {Type::kI16, {"i16", 1, 2, false}},
    {Type::kI32, {"i32", 1, 4, false}},
    {Type::kI64, {"i64", 1, 8, false}},
    {Type::kF64, {"f64", 1, 8, false}},
    {Type::kIQ1_M, {"iq1_m", kQKK, kQKK / 8 + kQKK / 16 + kQKK / 32, false}},
    {Type::kBF16, {"bf16", 1, 2, true}},
    {Type::kTQ1_0, {"tq1_0", kQKK, 2 + kQKK / 64 + (kQKK - 4 * kQKK / 64) / 5, false}},
    {Type::kTQ2_0, {"tq2_0", kQKK, 2 + kQKK / 4, false}},
    {Type::kMXFP4, {"mxfp4", kQK, 1 + kQK / 2, false}},
};

// Indexed by type id (ids 4, 5, 31..33, 36..38 were never used or were removed: empty).
constexpr uint32_t kMaxId = 39;
constexpr std::array<const TypeTraits*, kMaxId + 1> make_index() {
  std::array<const TypeTraits*, kMaxId + 1> idx{};
  for (const Row& r : kTable) idx[uint32_t(r.type)] = &r.traits;
  return idx;
}
constexpr auto kIndex = make_index();

}  // namespace

std::optional<TypeTraits> type_traits(uint32_t type) {
  if (type > kMaxId || kIndex[type] == nullptr) return std::nullopt;
  return *kIndex[type];
}

const TypeTraits& traits(Type t) {
  const uint32_t id = uint32_t(t);
  INFERD_CHECK(id <= kMaxId && kIndex[id] != nullptr, "ggml type id {} is not defined", id);
  return *kIndex[id];
}

std::string_view type_name(uint32_t type) {
  if (type <= kMaxId && kIndex[type] != nullptr) return kIndex[type]->name;
  // Unknown ids: "type N", interned so that the view stays valid (one entry per distinct id).
  static std::mutex mu;
  static std::set<std::string> names;
  std::lock_guard<std::mutex> lock(mu);
  return *names.insert("type " + std::to_string(type)).first;
}

int64_t row_bytes(Type t, int64_t n) {
  const TypeTraits& tr = traits(t);
  INFERD_CHECK(n >= 0 && n % tr.block_elems == 0, "{} elements of {}: not a multiple of {}", n,
               tr.name, tr.block_elems);
  int64_t bytes = 0;
  INFERD_CHECK(!__builtin_mul_overflow(n / tr.block_elems, tr.block_bytes, &bytes),
               "{} elements of {}: more bytes than an int64 holds", n, tr.name);
  return bytes;
}

}  // namespace inferd::ggml
