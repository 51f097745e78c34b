// Device side of fixed_point.hpp: an addend checked against its limit,
// rounded to its fixed-point format and added to a Fixed128 (shared or global
// memory) with 64-bit integer atomics, so that a total does not depend on the
// order of the adds. On sm_90 a 64-bit add to shared memory compiles to a
// compare-and-swap loop (ATOMS.CAST.SPIN.64), so contended shared adds are
// costly: the fused forward sums a warp's addends before its one add.
#pragma once

#include "kernels/ops/fixed_point.hpp"

namespace ropescope::kernels::fixed {

// *acc += y modulo 2^128, as two integer atomics: the low words, then the
// high words plus the carry out of the low add (old + y.lo wrapped past 2^64
// exactly when it is below old). Whatever the interleaving with other adds,
// the low word ends as the sum of all low words mod 2^64 and the high word
// gets one carry per wrap, so the total is exact. Returns whether this add
// took the high word from >= 0 to < 0 (a nonnegative total leaving its range).
__device__ __forceinline__ bool atomic_add(Fixed128* acc, const Fixed128& y) {
  const unsigned long long old = y.lo != 0 ? atomicAdd(&acc->lo, y.lo) : 0ull;
  const unsigned long long high = static_cast<unsigned long long>(y.hi) + (old + y.lo < old ? 1ull : 0ull);
  if (high == 0) return false;
  const unsigned long long before = atomicAdd(reinterpret_cast<unsigned long long*>(&acc->hi), high);
  return static_cast<long long>(before) >= 0 && static_cast<long long>(before + high) < 0;
}

// A probability addend (0 <= v < 2^kProbAddendExponent, checked; NaN fails
// the check) into *acc; `bit` goes to *flags when v is refused or the total
// passes 2^27 (fixed_point.hpp: nonnegative totals only grow).
__device__ __forceinline__ void add_probability(Fixed128* acc, double v, unsigned* flags, unsigned bit) {
  if (!(v >= 0.0 && v < static_cast<double>(1 << kProbAddendExponent))) {
    atomicOr(flags, bit);
    return;
  }
  if (v != 0.0 && atomic_add(acc, to_fixed<kProbFraction>(v))) atomicOr(flags, bit);
}

// A signed addend (|v| < limit, checked; NaN fails the check) in the format
// of F fraction bits into *acc; `bit` goes to *flags when v is refused.
template <int F>
__device__ __forceinline__ void add_signed(Fixed128* acc, double v, double limit, unsigned* flags, unsigned bit) {
  if (!(fabs(v) < limit)) {
    atomicOr(flags, bit);
    return;
  }
  if (v != 0.0) atomic_add(acc, to_fixed<F>(v));
}

// A CTA's probability total (shared memory, nonnegative unless it already
// flagged) into the global one; `bit` when the global total passes 2^27.
__device__ __forceinline__ void add_probability_total(Fixed128* acc, const Fixed128& total, unsigned* flags,
                                                      unsigned bit) {
  if ((total.lo != 0 || total.hi != 0) && atomic_add(acc, total)) atomicOr(flags, bit);
}

}  // namespace ropescope::kernels::fixed
