// Exact, order-independent sums for the GPU distance-sums kernels (issue 16:
// profiles bitwise reproducible, so data parallel matches one GPU byte for
// byte). Every accumulation of DistanceSumsOut is a signed 128-bit
// two's-complement fixed-point number (Fixed128) added to with 64-bit integer
// atomics: integer addition is associative, so a total is the same whatever
// order the atomics land in. This header is the host side and the formats:
// the fraction bits of each quantity, the addend limits that keep every total
// inside its range, the conversion of an addend (round to nearest) and of a
// total (correctly rounded to double), and the overflow flag's bits; the
// device atomics are in fixed_point.cuh. Plain C++17 (nvcc compiles it too).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>

#include "core/host_device.hpp"

namespace ropescope::kernels {

// The integer hi 2^64 + lo (two's complement, modulo 2^128), meaning
// (hi 2^64 + lo) 2^-F for a format of F fraction bits. All zero bytes is 0.
struct Fixed128 {
  unsigned long long lo;  // bits 0 .. 63
  long long hi;           // bits 64 .. 127, the sign in bit 127
};

// Fraction bits F of each quantity, and why no total leaves its range
// (-2^(127 - F), 2^(127 - F)). Each addend is rounded to the nearest multiple
// of 2^-F (ties to even); nothing else rounds until the total's one rounding
// to double, so a total's error is at most (addends) 2^-(F+1) plus half an ulp.
//  - probability, F = 100 (resolution 8e-31; an fp32 addend >= 2^-77 is
//    exact): addends are >= 0 (checked, with < 2^8: a partial sum spans at
//    most 128 rows of probabilities summing to 1 each). With nonnegative
//    addends a total only grows, so it leaves the range exactly when its high
//    word turns negative, which the atomic that does it sees and flags (one
//    add raises the high word by less than 2^63, an addend below 2^8 or a
//    CTA's unflagged total below 2^27, so it cannot wrap past the negative
//    half). A total is at most its rows' mass, T (1 + rounding), < 2^27.
//  - score, F = 50 (resolution 9e-16; an fp32 addend >= 2^-27 is exact):
//    each nonzero addend holds at least one visible pair and the pairs of one
//    total's addends are disjoint, so at most N = T (T + 1) / 2 addends reach
//    it; each is checked |v| < 2^(77 - ceil(log2 N)), so |total| < 2^77
//    (the limit is 2^39 up to T = 741454, 2^37 at T = 2^20).
//  - stats (sum p (t - s), -sum p ln p), F = 64 (resolution 5e-20): each
//    addend covers at least one query row, rows disjoint, so at most T
//    addends; each checked |v| < 2^(63 - ceil(log2 T)) (2^44 at T = 2^19; a
//    16-row addend's p (t - s) is at most 16 T).
// An addend outside its limit, or not finite, is not added: it sets an
// overflow bit (below) and the host refuses the sums.
inline constexpr int kProbFraction = 100;
inline constexpr int kScoreFraction = 50;
inline constexpr int kStatsFraction = 64;
inline constexpr int kProbAddendExponent = 8;

// The number of leading zero bits of x (64 for 0); C++17, as nvcc compiles this header too.
constexpr int leading_zeros(unsigned long long x) {
  int n = 0;
  for (unsigned long long bit = 1ull << 63; bit != 0 && (x & bit) == 0; bit >>= 1) ++n;
  return n;
}
// ceil(log2 n) for n >= 1.
constexpr int ceil_log2(unsigned long long n) { return n <= 1 ? 0 : 64 - leading_zeros(n - 1); }

// The largest magnitude (exclusive) of one addend, per quantity, at T positions.
struct SumsLimits {
  double prob = 0, score = 0, stats = 0;
};
inline SumsLimits sums_limits(int T) {
  const unsigned long long t = T < 1 ? 1ull : static_cast<unsigned long long>(T);
  return {std::ldexp(1.0, kProbAddendExponent), std::ldexp(1.0, 127 - kScoreFraction - ceil_log2(t * (t + 1) / 2)),
          std::ldexp(1.0, 127 - kStatsFraction - ceil_log2(t))};
}

// The overflow flag: one bit per (kernel, quantity) whose addend was refused.
enum class SumsSite : int { separate = 0, band = 1, fused_epilogue = 2, simple = 3, separate_wgmma = 4 };
inline constexpr int kSumsSites = 5;
enum class SumsQuantity : int { prob = 0, score = 1, stats = 2 };
ROPESCOPE_HOST_DEVICE constexpr unsigned overflow_bit(SumsSite site, SumsQuantity quantity) {
  return 1u << (3 * static_cast<int>(site) + static_cast<int>(quantity));
}

// -x modulo 2^128.
ROPESCOPE_HOST_DEVICE inline Fixed128 negate(Fixed128 x) {
  const unsigned long long lo = ~x.lo + 1;
  // ~hi + 1 when the low word carries (it was 0), else ~hi; in unsigned arithmetic (wraps, no overflow).
  const unsigned long long hi = ~static_cast<unsigned long long>(x.hi) + (lo == 0 ? 1ull : 0ull);
  return {lo, static_cast<long long>(hi)};
}

// x + y modulo 2^128 (the host's version of the device atomics).
inline Fixed128 add(Fixed128 x, Fixed128 y) {
  const unsigned long long lo = x.lo + y.lo;
  const unsigned long long carry = lo < x.lo ? 1ull : 0ull;  // the low words wrapped past 2^64
  const unsigned long long hi = static_cast<unsigned long long>(x.hi) + static_cast<unsigned long long>(y.hi) + carry;
  return {lo, static_cast<long long>(hi)};
}

// Exact sums of many Fixed128 through 32-bit adds (a warp's reduction unit,
// __reduce_add_sync): each value splits into eight 16-bit limbs, least
// significant first (two's complement, so negative values need nothing
// special); the sum of limb k over at most 65537 values stays below 2^32;
// the total is the limb sums shifted into place (add_limb_sum), modulo 2^128.
ROPESCOPE_HOST_DEVICE inline unsigned limb16(const Fixed128& x, int k) {
  const unsigned long long word = k < 4 ? x.lo : static_cast<unsigned long long>(x.hi);
  return static_cast<unsigned>(word >> (16 * (k % 4))) & 0xFFFFu;
}
ROPESCOPE_HOST_DEVICE inline void add_limb_sum(unsigned __int128& total, unsigned limb_sum, int k) {
  total += static_cast<unsigned __int128>(limb_sum) << (16 * k);
}
ROPESCOPE_HOST_DEVICE inline Fixed128 to_fixed128(unsigned __int128 total) {
  return {static_cast<unsigned long long>(total), static_cast<long long>(static_cast<unsigned long long>(total >> 64))};
}

// v 2^F rounded to the nearest integer, ties to even (rint in the default
// rounding mode), as a Fixed128. Needs |v| < 2^(127 - F) (the callers' limits
// are far inside). The scaling by 2^F is exact, and so is the split: m < 2^127
// has at most 53 significant bits; hi = floor(m 2^-64) and m - hi 2^64 are
// m's bits at and above 2^64 and below it, each exactly a double.
template <int F>
ROPESCOPE_HOST_DEVICE inline Fixed128 to_fixed(double v) {
  constexpr double kScale = static_cast<double>(1ull << (F / 2)) * static_cast<double>(1ull << (F - F / 2));
  constexpr double kTwo64 = 18446744073709551616.0;  // 2^64
  const double r = rint(v * kScale);
  const double m = fabs(r);
  const unsigned long long hi = static_cast<unsigned long long>(m * (1.0 / kTwo64));
  const unsigned long long lo = static_cast<unsigned long long>(m - static_cast<double>(hi) * kTwo64);
  const Fixed128 x{lo, static_cast<long long>(hi)};
  return r < 0 ? negate(x) : x;
}

// The value of x in a format of F fraction bits, rounded once to the nearest
// double (ties to even). The magnitude, shifted so its top bit is bit 127,
// keeps its upper 64 bits with a sticky bit in bit 0 for anything below; the
// uint64 -> double conversion then rounds exactly as the whole would.
// Host only: a profile converts 2 A (slots + 1) totals a layer while the GPU
// waits, so the leading zeros come from the compiler's builtin and the
// scaling by 2^exponent (-F .. 64 - F, F <= 100: a normal double, so the
// product is exact) is one multiply, not std::ldexp (a ~10x slower call).
inline double to_double(Fixed128 x, int F) {
  const bool negative = x.hi < 0;
  if (negative) x = negate(x);  // -2^127 is outside every format's range
  const auto H = static_cast<unsigned long long>(x.hi), L = x.lo;
  double m = 0;
  int exponent = -F;
  if (H == 0) {
    m = static_cast<double>(L);
  } else {
    const int n = __builtin_clzll(H);  // 0 .. 63 (H != 0)
    const unsigned long long top = n == 0 ? H : (H << n) | (L >> (64 - n));
    const unsigned long long rest = L << n;  // the bits below top
    m = static_cast<double>(top | (rest != 0 ? 1ull : 0ull));
    exponent = 64 - n - F;
  }
  const unsigned long long scale_bits = static_cast<unsigned long long>(1023 + exponent) << 52;
  double scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  const double value = m * scale;
  return negative ? -value : value;
}

// to_double of n totals.
inline void to_double(const Fixed128* x, std::size_t n, int F, double* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = to_double(x[i], F);
}

// What an overflow flag says, one clause per bit set: the kernel, the
// quantity and its limit at T positions; empty when flags is 0.
inline std::string describe_overflow(unsigned flags, int T) {
  static const char* const sites[] = {"attention_distance_sums_bf16",
                                       "attention_distance_sums_near_bf16 (the fused profile's band pass)",
                                       "attention_forward_wgmma_bf16's fused distance sums",
                                       "attention_distance_sums_simple_bf16",
                                       "attention_distance_sums_wgmma_bf16"};
  static_assert(sizeof(sites) / sizeof(sites[0]) == kSumsSites, "a name per SumsSite");
  const SumsLimits limits = sums_limits(T);
  std::string text;
  for (int site = 0; site < kSumsSites; ++site)
    for (int q = 0; q < 3; ++q) {
      if (!(flags & overflow_bit(static_cast<SumsSite>(site), static_cast<SumsQuantity>(q)))) continue;
      const char* what =
          q == 0   ? "a probability sum left 0 .. 2^27 or an addend was negative, 2^8 or more, or not finite"
          : q == 1 ? "a score-sum addend was not finite or reached 2^"
                   : "a p (t - s) or entropy addend was not finite or reached 2^";
      if (!text.empty()) text += "; ";
      text += std::string(sites[site]) + ": " + what;
      if (q > 0) text += std::to_string(std::ilogb(q == 1 ? limits.score : limits.stats));
      if (q > 0) text += " in magnitude";
    }
  if (!text.empty())
    text += " (fixed-point distance sums at T = " + std::to_string(T) + ", kernels/ops/fixed_point.hpp): refused";
  return text;
}

}  // namespace ropescope::kernels
