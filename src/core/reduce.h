// Reduction kernels for every datatype and op. Vectorised (the compiler's auto-vectoriser over
// tight loops, built with the target's SIMD), float16/bfloat16 accumulate in float32.
// Determinism matters: for a given (a, b) every rank must compute the same bytes, so each kernel is
// a pure element-wise function with no reassociation across elements.
#pragma once

#include <loom/loom.h>

#include <cstddef>
#include <cstdint>

namespace loom {

// Size in bytes of one element; 0 for an unknown datatype.
size_t dataTypeSize(loomDataType_t dtype);
const char* dataTypeName(loomDataType_t dtype);  // "float32", ...; "unknown" if invalid
const char* redOpName(loomRedOp_t op);           // "sum", ...; "unknown" if invalid
bool validDataType(int dtype);
bool validRedOp(int op);

// Semantics (reduce.cc): integer sum/prod wrap modulo 2^bits. Floating-point ops are commutative
// bit for bit: a NaN in either input gives the canonical quiet NaN, min(+0, -0) = -0 and
// max(+0, -0) = +0. An invalid dtype or op does nothing (validate with validDataType/validRedOp).
//
// inout[i] = inout[i] OP in[i] for i < count. For loomAvg this is a sum (finish with reduceFinalizeAvg).
void reduceInPlace(void* inout, const void* in, size_t count, loomDataType_t dtype, loomRedOp_t op);
// out[i] = a[i] OP b[i]; out may alias a or b (the same pointer; partial overlap is not
// supported). For loomAvg this is a sum.
void reduceInto(void* out, const void* a, const void* b, size_t count, loomDataType_t dtype, loomRedOp_t op);
// buf[i] /= contributors, for loomAvg (integers: truncating division; floats: x / n in the
// accumulation type, then rounded). contributors <= 1 leaves buf unchanged.
void reduceFinalizeAvg(void* buf, size_t count, loomDataType_t dtype, int contributors);

// float16 / bfloat16 conversions (round to nearest even), exposed for tests and tools.
float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
float bfloat16ToFloat(uint16_t b);
uint16_t floatToBfloat16(float f);

}  // namespace loom
