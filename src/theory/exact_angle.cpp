// Exact RoPE angle reduction in float128 (see exact_angle.hpp).
#include "theory/exact_angle.hpp"

#include <boost/math/constants/constants.hpp>
#include <boost/multiprecision/float128.hpp>
#include <cmath>

namespace ropescope::theory {

using boost::multiprecision::float128;

ReducedAngle reduce_angle(double position, double theta_hi, double theta_lo) {
  static const float128 two_pi = boost::math::constants::two_pi<float128>();
  // theta_hi + theta_lo is exact in float128 (|lo| <= ulp(hi)/2, 106 <= 113 bits);
  // the product has relative error 2^-113.
  float128 angle = float128(position) * (float128(theta_hi) + float128(theta_lo));
  // k 2pi with k < 2^40 leaves an absolute error below 2^40 * 2^-110 ~ 1e-21 rad.
  float128 k = boost::multiprecision::round(angle / two_pi);
  float128 reduced = angle - k * two_pi;
  ReducedAngle r;
  r.hi = static_cast<double>(reduced);
  r.lo = static_cast<double>(reduced - r.hi);
  return r;
}

SinCos exact_sincos(double position, double theta_hi, double theta_lo) {
  ReducedAngle a = reduce_angle(position, theta_hi, theta_lo);
  double s = std::sin(a.hi), c = std::cos(a.hi);
  // First-order correction for the low part (|lo| <= 2^-53 |hi|, so lo^2 terms vanish).
  return {s + c * a.lo, c - s * a.lo};
}

}  // namespace ropescope::theory
