// One dim of a query rotated at one position, in fp32: the rule every kernel
// that makes queries on the fly shares (ROPEPP.md 1, 4). Real: HF's
// q cos + rotate_half(q) sin; imaginary: the same rotated by -pi/2,
// q sin - rotate_half(q) cos; dims >= 2 * pairs pass through.
#pragma once

#include <cuda_bf16.h>

#include "kernels/ops/ops.hpp"

namespace ropescope::kernels {

// row: the d bf16 values of one query head at the position; c, s: that
// position's table rows ([pairs] floats each).
__device__ __forceinline__ float rotated_query_dim(const bf16* __restrict__ row, int i, int pairs,
                                                   const float* __restrict__ c, const float* __restrict__ s,
                                                   QueryRotation rotation) {
  const float x = __bfloat162float(row[i]);
  if (rotation == QueryRotation::none || i >= 2 * pairs) return x;
  const int n = i < pairs ? i : i - pairs;  // pair (n, n + pairs)
  const float partner = __bfloat162float(row[i < pairs ? i + pairs : i - pairs]);
  const float rh = i < pairs ? -partner : partner;  // rotate_half(q)[i]
  return rotation == QueryRotation::imaginary ? x * s[n] - rh * c[n] : x * c[n] + rh * s[n];
}

}  // namespace ropescope::kernels
