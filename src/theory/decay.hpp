// Expected attention score as a function of relative distance D (ROPEPP.md
// section 2), for i.i.d. query/key components:
//   real (vanilla RoPE):   c_re(D) = (2/d) sum_n cos(theta_n D)
//   imaginary (RoPE++):    c_im(D) = (2/d) sum_n sin(theta_n D)
// in two forms: the exact discrete sums, and the integral (d -> infinity) form
// over the continuous frequency profile, [Ci(D) - Ci(D/B)] / ln B and
// [Si(D) - Si(D/B)] / ln B for plain RoPE. The d - r pass-through dims of a
// partial rotary head reach real and imaginary queries unrotated (HF's
// partial rotary, see model/rope_table.hpp), so they add (d - r)/d to both
// c_re and c_im. Also RoFormer's
// relative upper bound and the "Base of RoPE Bounds Context Length" scans.
//
// Curves are per unit cos/sin magnitude: YaRN's magnitude m multiplies every
// score by m^2 (reported beside the curves, not folded into them).
#pragma once

#include <optional>

#include "theory/rope_frequencies.hpp"

namespace ropescope::theory {

struct ScorePair {
  double re = 0, im = 0;
};

// The largest distance whose curves are computed: the exact angle reduction
// (exact_angle.hpp) keeps float64 accuracy up to here, beyond it a value would
// be printed that is not the true one. Every method below refuses a distance
// that is negative, not finite or above it (ArgumentError).
inline constexpr double kMaxExactDistance = 1e12;

class DecayModel {
 public:
  explicit DecayModel(const RopeSpec& spec, long sequence_length = 0);

  // Integral form. Precision: closed-form pieces through Si/Ci/Cin in float64
  // (absolute error ~1e-16, no cancellation near D = 0: the Cin form is used
  // while the larger argument is small); ramp pieces by Gauss-Legendre on
  // sub-intervals of at most 2 radians of phase (quadrature error < 1e-15).
  ScorePair integral(double distance) const;
  // Exact discrete sums: every angle D*theta_n reduced in float128 (exact_angle.hpp),
  // terms accumulated in long double; error ~1e-16 for any D up to ~1e12.
  ScorePair discrete(double distance) const;
  // RoFormer's relative upper bound (1/(d/2)) sum_{j=1}^{d/2} |S_j|,
  // S_j = sum_{k<j} exp(i D theta_k), non-rotating pairs counted with theta = 0.
  double relative_bound(double distance) const;

  const RopeFrequencies& frequencies() const { return frequencies_; }
  const FrequencyProfile& profile() const { return profile_; }

 private:
  FrequencyProfile profile_;
  RopeFrequencies frequencies_;
};

struct FirstNegative {
  std::optional<long> re;  // smallest integer D >= 1 with c_re(D) < 0, if any up to `searched_to`
  std::optional<long> im;  // the same for c_im
  long searched_to = 0;
};

// Scans D = 1 .. max_distance (discrete sums). A fast rotation recurrence,
// re-anchored with exact angles every 512 steps, proposes sign changes; every
// candidate is confirmed with the exact sums, so the answer is exact.
// `max_distance` is at most kMaxExactDistance.
FirstNegative first_negative_distance(const RopeSpec& spec, long max_distance, long sequence_length = 0);

struct BaseForContext {
  // Threshold by bisection over log(base): `base` passes (c_re >= 0 for all
  // D < context), `failing_base` fails, base / failing_base <= 1 + rel_tolerance.
  double base = 0;
  double failing_base = 0;
  // Passing is not monotone in the base: windows of passing bases exist below
  // the threshold. The lowest passing base on a geometric grid of ratio
  // (1 - rel_grid) from `base` down to `grid_floor` (equals `base` if none).
  double lowest_passing_on_grid = 0;
  double grid_floor = 0;
};

// Smallest RoPE base (other fields of `spec` kept) such that the discrete real
// sum is non-negative for every integer D in [0, context), the question of
// "Base of RoPE Bounds Context Length" (arXiv 2405.14591). Both answers above
// are reported because the pass/fail predicate is not monotone in the base.
// Throws ArgumentError if even `max_base` fails.
BaseForContext smallest_base_for_context(RopeSpec spec, long context, double rel_tolerance = 1e-4,
                                         double rel_grid = 1e-3, double grid_span = 0.8, double max_base = 1e18);

}  // namespace ropescope::theory
