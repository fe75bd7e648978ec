// The state hash applications use to assert bit parity across ranks (loomHash): XXH64 (Yann
// Collet's public-domain design) of each buffer, folded with its length into one value, so the
// same bytes give the same hash on every rank and platform, and it runs at memory speed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace loom {

// XXH64 of [data, data + bytes) with `seed`.
uint64_t xxh64(const void* data, size_t bytes, uint64_t seed);

// Hash of the sequence of buffers: order and boundaries matter ({ab} and {a, b} differ).
uint64_t hashBuffers(const void* const* buffers, const size_t* bytes, int count);

}  // namespace loom
