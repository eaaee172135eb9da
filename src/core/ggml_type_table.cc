// The table of ggml tensor types (core/ggml_types.h): each type id's name, block size in elements
// and in bytes, as ggml's type_traits in ggml.c and the block structs of ggml-common.h define them,
// and whether inferd dequantizes it.
#include <array>
#include <string>

#include "core/error.h"
#include "core/ggml_types.h"

namespace inferd::ggml {
namespace {

struct Entry {
  Type type;
  TypeTraits traits;
};

constexpr std::array kEntries = {
    Entry{Type::kF32, {"f32", 1, 4, true}},
    Entry{Type::kF16, {"f16", 1, 2, true}},
    Entry{Type::kQ4_0, {"q4_0", kQK, 18, true}},
    Entry{Type::kQ4_1, {"q4_1", kQK, 20, true}},
    Entry{Type::kQ5_0, {"q5_0", kQK, 22, true}},
    Entry{Type::kQ5_1, {"q5_1", kQK, 24, true}},
    Entry{Type::kQ8_0, {"q8_0", kQK, 34, true}},
    Entry{Type::kQ8_1, {"q8_1", kQK, 36, false}},
    Entry{Type::kQ2_K, {"q2_K", kQKK, 84, true}},
    Entry{Type::kQ3_K, {"q3_K", kQKK, 110, true}},
    Entry{Type::kQ4_K, {"q4_K", kQKK, 144, true}},
    Entry{Type::kQ5_K, {"q5_K", kQKK, 176, true}},
    Entry{Type::kQ6_K, {"q6_K", kQKK, 210, true}},
    Entry{Type::kQ8_K, {"q8_K", kQKK, 292, true}},
    Entry{Type::kIQ2_XXS, {"iq2_xxs", kQKK, 66, false}},
    Entry{Type::kIQ2_XS, {"iq2_xs", kQKK, 74, false}},
    Entry{Type::kIQ3_XXS, {"iq3_xxs", kQKK, 98, false}},
    Entry{Type::kIQ1_S, {"iq1_s", kQKK, 50, false}},
    Entry{Type::kIQ4_NL, {"iq4_nl", kQK, 18, true}},
    Entry{Type::kIQ3_S, {"iq3_s", kQKK, 110, false}},
    Entry{Type::kIQ2_S, {"iq2_s", kQKK, 82, false}},
    Entry{Type::kIQ4_XS, {"iq4_xs", kQKK, 136, false}},
    Entry{Type::kI8, {"i8", 1, 1, false}},
    Entry{Type::kI16, {"i16", 1, 2, false}},
    Entry{Type::kI32, {"i32", 1, 4, false}},
    Entry{Type::kI64, {"i64", 1, 8, false}},
    Entry{Type::kF64, {"f64", 1, 8, false}},
    Entry{Type::kIQ1_M, {"iq1_m", kQKK, 56, false}},
    Entry{Type::kBF16, {"bf16", 1, 2, true}},
    Entry{Type::kTQ1_0, {"tq1_0", kQKK, 54, false}},
    Entry{Type::kTQ2_0, {"tq2_0", kQKK, 66, false}},
    Entry{Type::kMXFP4, {"mxfp4", kQK, 17, false}},
};

const Entry* find(uint32_t type) {
  for (const Entry& e : kEntries) {
    if (uint32_t(e.type) == type) return &e;
  }
  return nullptr;
}

}  // namespace

std::optional<TypeTraits> type_traits(uint32_t type) {
  const Entry* e = find(type);
  if (e == nullptr) return std::nullopt;
  return e->traits;
}

const TypeTraits& traits(Type t) {
  const Entry* e = find(uint32_t(t));
  INFERD_CHECK(e != nullptr, "ggml type id {} is not in the table", uint32_t(t));
  return e->traits;
}

std::string_view type_name(uint32_t type) {
  const Entry* e = find(type);
  if (e != nullptr) return e->traits.name;
  // Unknown ids: "type N", kept in a small ring so the views stay valid for a while.
  static thread_local std::array<std::string, 8> ring;
  static thread_local size_t next = 0;
  std::string& s = ring[next++ % ring.size()];
  s = "type " + std::to_string(type);
  return s;
}

int64_t row_bytes(Type t, int64_t n) {
  const TypeTraits& tr = traits(t);
  if (n < 0 || n % tr.block_elems != 0) {
    fail("ggml type {}: a row of {} elements is not a whole number of {}-element blocks", tr.name,
         n, tr.block_elems);
  }
  return n / tr.block_elems * tr.block_bytes;
}

}  // namespace inferd::ggml
