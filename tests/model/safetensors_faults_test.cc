// Issue 17 (faults): safetensors files that lie — shorter than their header says, offsets that do
// not match the shape, point past the end, overflow, or are not numbers. Each must stop the load
// with one message naming the file and the tensor, never read outside the file.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/loader/safetensors.h"

namespace inferd {
namespace {

using nlohmann::json;

// A safetensors image: 8-byte header length, the JSON header, then `data_bytes` bytes of data.
std::string image(const json& header, size_t data_bytes) {
  const std::string h = header.dump();
  std::string out(8, '\0');
  const uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  out += h;
  out.append(data_bytes, '\x01');
  return out;
}

std::string error_of(const std::string& bytes) {
  try {
    auto m = parse_safetensors_header(bytes.data(), bytes.size(), "/m/model-00002.safetensors");
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

void expect_named_error(const std::string& bytes, const std::string& tensor,
                        const std::string& what) {
  const std::string e = error_of(bytes);
  ASSERT_FALSE(e.empty()) << "accepted";
  EXPECT_NE(e.find("/m/model-00002.safetensors"), std::string::npos) << e;
  if (!tensor.empty()) {
    EXPECT_NE(e.find("'" + tensor + "'"), std::string::npos) << e;
  }
  EXPECT_NE(e.find(what), std::string::npos) << e;
}

json one(const json& offsets, const json& shape = {2, 4}, const char* dtype = "F32") {
  return {{"w", {{"dtype", dtype}, {"shape", shape}, {"data_offsets", offsets}}}};
}

TEST(SafetensorsFaults, WellFormedIsAccepted) {
  const auto m =
      parse_safetensors_header(image(one({0, 32}), 32).data(), image(one({0, 32}), 32).size(), "x");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m.at("w").nbytes, 32u);
}

TEST(SafetensorsFaults, TruncatedShard) {
  // The header says 32 bytes of data; the file holds 31 (and none).
  expect_named_error(image(one({0, 32}), 31), "w", "run past the end of the file");
  expect_named_error(image(one({0, 32}), 0), "w", "run past the end of the file");
  // Cut inside the header.
  const std::string full = image(one({0, 32}), 32);
  expect_named_error(full.substr(0, 20), "", "header length");
  expect_named_error(full.substr(0, 5), "", "too short");
}

TEST(SafetensorsFaults, OffsetsThatDoNotMatchTheShape) {
  expect_named_error(image(one({0, 16}), 64), "w", "do not match its shape [2, 4]");
  expect_named_error(image(one({32, 0}), 64), "w", "do not match");
  expect_named_error(image(one({8, 40}), 32), "w", "run past the end");
  expect_named_error(image(one({0}), 32), "w", "data_offsets");
  expect_named_error(image(one({0, 32}, {2, -4}), 32), "w", "invalid shape");
  expect_named_error(image(one({0, 32}, {2, 4}, "I64X"), 32), "w", "unsupported dtype");
}

TEST(SafetensorsFaults, HeaderThatIsNotJson) {
  std::string bad(8, '\0');
  const uint64_t n = 5;
  std::memcpy(bad.data(), &n, 8);
  bad += "{nope";
  expect_named_error(bad, "", "invalid safetensors JSON header");
  expect_named_error(image(json::array({1, 2}), 0), "", "not a JSON object");
}

// Offsets near 2^64 that wrap around when added to the header size.
TEST(SafetensorsFaults, OffsetsThatOverflow) {
  const uint64_t huge = ~uint64_t(0) - 40;
  expect_named_error(image(one({huge, huge + 32}), 64), "w", "data_offsets");
}

// A shape whose element count overflows 64 bits.
TEST(SafetensorsFaults, ShapeThatOverflows) {
  expect_named_error(image(one({0, 0}, {int64_t(1) << 32, int64_t(1) << 32}), 0), "w", "shape");
}

// Offsets given as strings, floats or negative numbers.
TEST(SafetensorsFaults, OffsetsThatAreNotNumbers) {
  expect_named_error(image(one({"0", "32"}), 32), "w", "data_offsets");
  expect_named_error(image(one({0.5, 32.5}), 32), "w", "data_offsets");
  expect_named_error(image(one({-32, 0}), 32), "w", "data_offsets");
}

// Found by fuzz_safetensors: a tensor entry that is not an object, or a dtype that is not a
// string, was a bare json.exception.type_error (no file, no tensor) instead of an Error.
TEST(SafetensorsFaults, EntriesThatAreNotObjects) {
  expect_named_error(image({{"w", json::array({0, 24})}}, 24), "w", "expected an object");
  expect_named_error(image({{"w", "F32"}}, 0), "w", "expected an object");
  expect_named_error(image({{"w", {{"dtype", 32}, {"shape", {2}}, {"data_offsets", {0, 8}}}}}, 8),
                     "w", "unsupported dtype");
}

}  // namespace
}  // namespace inferd
