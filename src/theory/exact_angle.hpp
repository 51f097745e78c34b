// Angles position * theta reduced modulo 2pi without losing digits. RoPE
// angles reach 1e5..1e7 radians at long context; a float32 product there is
// off by ~1e-2 rad and a float64 product by ~1e-9 rad. Here the product of the
// position and a ~106-bit frequency (theta_hi + theta_lo from rope_frequencies)
// is formed and reduced in float128 (113 bits), then rounded once, so cos and
// sin come out correct to about one float64 ulp for positions up to ~1e12.
#pragma once

namespace ropescope::theory {

// position * (theta_hi + theta_lo) reduced to [-pi, pi], as a double-double (hi + lo).
struct ReducedAngle {
  double hi = 0, lo = 0;
};
ReducedAngle reduce_angle(double position, double theta_hi, double theta_lo);

struct SinCos {
  double sin = 0, cos = 1;
};
// sin and cos of position * (theta_hi + theta_lo), each within ~1 ulp.
SinCos exact_sincos(double position, double theta_hi, double theta_lo);

}  // namespace ropescope::theory
