// loomHash: XXH64 against its published test vectors, and the properties ranks rely on when they
// compare hashes to assert parity (any changed bit, order or boundary changes it; bad input is a
// clear error).
#include "core/hash.h"

#include <loom/loom.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace {
uint64_t hashOf(const std::vector<std::vector<uint8_t>>& parts) {
  std::vector<const void*> ptrs;
  std::vector<size_t> bytes;
  for (const auto& p : parts) {
    ptrs.push_back(p.data());
    bytes.push_back(p.size());
  }
  uint64_t h = 0;
  REQUIRE(loomHash(ptrs.data(), bytes.data(), static_cast<int>(parts.size()), &h) == loomSuccess);
  return h;
}
}  // namespace

TEST_CASE("xxh64 matches the reference implementation's vectors", "[hash]") {
  CHECK(loom::xxh64("", 0, 0) == 0xEF46DB3751D8E999ull);
  CHECK(loom::xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ull);
  const std::string fox = "The quick brown fox jumps over the lazy dog";
  CHECK(loom::xxh64(fox.data(), fox.size(), 0) == 0x0B242D361FDA71BCull);
}

TEST_CASE("flipping any single bit of a buffer changes the hash", "[hash]") {
  std::vector<uint8_t> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  const uint64_t base = hashOf({data});
  CHECK(hashOf({data}) == base);  // deterministic
  for (size_t byte = 0; byte < data.size(); byte += 37) {
    for (int bit = 0; bit < 8; ++bit) {
      auto flipped = data;
      flipped[byte] ^= static_cast<uint8_t>(1u << bit);
      CAPTURE(byte, bit);
      CHECK(hashOf({flipped}) != base);
    }
  }
}

TEST_CASE("buffer order and boundaries count", "[hash]") {
  const std::vector<uint8_t> a{1, 2, 3}, b{4, 5}, ab{1, 2, 3, 4, 5};
  CHECK(hashOf({a, b}) != hashOf({b, a}));
  CHECK(hashOf({a, b}) != hashOf({ab}));
  CHECK(hashOf({a, {}}) != hashOf({a}));
  CHECK(hashOf({}) != hashOf({{}}));
}

TEST_CASE("loomHash rejects bad arguments with a message naming them", "[hash]") {
  uint64_t h = 0;
  const size_t three = 3;
  const void* none = nullptr;
  CHECK(loomHash(nullptr, nullptr, 0, &h) == loomSuccess);
  CHECK(loomHash(nullptr, nullptr, 0, nullptr) == loomInvalidArgument);
  CHECK(std::string(loomGetLastError(nullptr)).find("hash") != std::string::npos);
  CHECK(loomHash(nullptr, nullptr, -1, &h) == loomInvalidArgument);
  CHECK(loomHash(nullptr, &three, 1, &h) == loomInvalidArgument);
  CHECK(std::string(loomGetLastError(nullptr)).find("buffers") != std::string::npos);
  CHECK(loomHash(&none, &three, 1, &h) == loomInvalidArgument);
  CHECK(std::string(loomGetLastError(nullptr)).find("buffers[0]") != std::string::npos);
  const size_t zero = 0;
  CHECK(loomHash(&none, &zero, 1, &h) == loomSuccess);  // an empty buffer may be NULL
}
