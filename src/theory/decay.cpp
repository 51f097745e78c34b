// Decay curves, RoFormer's bound and base/context scans (see decay.hpp).
#include "theory/decay.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <vector>

#include "core/error.hpp"
#include "theory/exact_angle.hpp"
#include "theory/sici.hpp"

namespace ropescope::theory {
namespace {

// 10-point Gauss-Legendre nodes and weights on [-1, 1] (symmetric half).
constexpr std::array<double, 5> kGaussNodes = {0.1488743389816312108848260, 0.4333953941292471907992659,
                                               0.6794095682990244062343274, 0.8650633666889845107320967,
                                               0.9739065285171717200779640};
constexpr std::array<double, 5> kGaussWeights = {0.2955242247147528701738930, 0.2692667193099963550912269,
                                                 0.2190863625159820439955349, 0.1494513491505805931457763,
                                                 0.0666713443086881375935688};

// Integral over [x0, x1] of cos and sin of D * scale * B^-x, in closed form:
// with a = D scale B^-x0 >= b = D scale B^-x1 (u = D scale B^-x, dx = -du / (u ln B)):
//   cos part = [Ci(a) - Ci(b)] / ln B = (x1 - x0) - [Cin(a) - Cin(b)] / ln B
//   sin part = [Si(a) - Si(b)] / ln B
// The Cin form has no cancellation for small arguments (Cin(u) ~ u^2/4), the Ci
// form none for large ones; switch at a = 1.
ScorePair exponential_piece(const ProfilePiece& p, double log_base, double distance) {
  double a = distance * p.scale * std::exp(-p.x0 * log_base);
  double b = distance * p.scale * std::exp(-p.x1 * log_base);
  ScorePair r;
  if (a <= 1.0) {
    r.re = (p.x1 - p.x0) - (Cin(a) - Cin(b)) / log_base;
  } else {
    r.re = (Ci(a) - Ci(b)) / log_base;
  }
  r.im = (Si(a) - Si(b)) / log_base;
  return r;
}

// Integral over a ramp piece by composite 10-point Gauss-Legendre. Each
// sub-interval spans at most 2 radians of phase D*theta(x) (estimated from the
// slope at its left end, where it is steepest: theta and its slope fall with x
// on every ramp) and at most 0.05 in x, which bounds the quadrature error far
// below 1e-15.
ScorePair ramp_piece(const FrequencyProfile& profile, const ProfilePiece& p, double distance) {
  ScorePair sum;
  double x = p.x0;
  while (x < p.x1) {
    double eps = 1e-7 * (p.x1 - p.x0);
    double slope = distance * std::abs(profile(x) - profile(x + eps)) / eps * 1.25;
    double h = std::min({p.x1 - x, 0.05, slope > 0 ? 2.0 / slope : 1.0});
    double mid = x + 0.5 * h, half = 0.5 * h;
    for (std::size_t i = 0; i < kGaussNodes.size(); ++i) {
      for (double sign : {-1.0, 1.0}) {
        double phase = distance * profile(mid + sign * half * kGaussNodes[i]);
        sum.re += kGaussWeights[i] * half * std::cos(phase);
        sum.im += kGaussWeights[i] * half * std::sin(phase);
      }
    }
    x += h;
  }
  return sum;
}

void check_distance(double distance) {
  if (!(distance >= 0.0) || !(distance <= kMaxExactDistance))
    throw ArgumentError(fmt::format("distance D = {:g} is outside 0 .. {:g}, the range where the decay curves are computed "
                                    "exactly (float128 angle reduction)",
                                    distance, kMaxExactDistance));
}

}  // namespace

DecayModel::DecayModel(const RopeSpec& spec, long sequence_length)
    : profile_(spec, sequence_length), frequencies_(rope_frequencies(profile_)) {}

ScorePair DecayModel::integral(double distance) const {
  check_distance(distance);
  ScorePair sum;
  for (const auto& piece : profile_.pieces()) {
    ScorePair part = piece.exponential ? exponential_piece(piece, profile_.log_base(), distance)
                                       : ramp_piece(profile_, piece, distance);
    sum.re += part.re;
    sum.im += part.im;
  }
  const double rotating = static_cast<double>(frequencies_.rotary_dim) / frequencies_.head_dim;
  return {rotating * sum.re + (1.0 - rotating), rotating * sum.im + (1.0 - rotating)};
}

ScorePair DecayModel::discrete(double distance) const {
  check_distance(distance);
  long double re = 0, im = 0;
  for (std::size_t n = 0; n < frequencies_.theta.size(); ++n) {
    SinCos sc = exact_sincos(distance, frequencies_.theta[n], frequencies_.theta_lo[n]);
    re += sc.cos;
    im += sc.sin;
  }
  const int d = frequencies_.head_dim, r = frequencies_.rotary_dim;
  re += (d - r) / 2;  // pass-through dims reach both kinds of query unrotated
  im += (d - r) / 2;
  return {static_cast<double>(re * 2 / d), static_cast<double>(im * 2 / d)};
}

double DecayModel::relative_bound(double distance) const {
  check_distance(distance);
  const int half = frequencies_.head_dim / 2;
  std::complex<long double> partial = 0;
  long double total = 0;
  for (int j = 0; j < half; ++j) {
    if (j < static_cast<int>(frequencies_.theta.size())) {
      SinCos sc = exact_sincos(distance, frequencies_.theta[j], frequencies_.theta_lo[j]);
      partial += std::complex<long double>(sc.cos, sc.sin);
    } else {
      partial += 1.0L;  // non-rotating pair
    }
    total += std::abs(partial);  // |S_{j+1}|
  }
  return static_cast<double>(total / half);
}

namespace {

// The scan behind first_negative_distance; stops early once the real sign
// change is found when the imaginary one is not wanted.
FirstNegative scan_for_negative(const RopeSpec& spec, long max_distance, long sequence_length, bool want_im) {
  if (max_distance < 1) throw ArgumentError(fmt::format("bound search limit must be >= 1, got {}", max_distance));
  check_distance(static_cast<double>(max_distance));
  DecayModel model(spec, sequence_length);
  const auto& f = model.frequencies();
  const std::size_t pairs = f.theta.size();
  const double constant = (f.head_dim - f.rotary_dim) / 2.0;
  // Recurrence error after k steps is about k * 4 ulp per term, so below 1e-12
  // for the 512-step blocks; anything under this margin is checked exactly.
  const double margin = 1e-9 * (pairs + 1);
  constexpr long kBlock = 512;

  std::vector<double> c(pairs), s(pairs), step_c(pairs), step_s(pairs);
  for (std::size_t n = 0; n < pairs; ++n) {
    SinCos one = exact_sincos(1.0, f.theta[n], f.theta_lo[n]);
    step_c[n] = one.cos;
    step_s[n] = one.sin;
  }
  FirstNegative result;
  auto done = [&] { return result.re && (result.im || !want_im); };
  for (long block = 1; block <= max_distance && !done(); block += kBlock) {
    for (std::size_t n = 0; n < pairs; ++n) {
      SinCos anchor = exact_sincos(static_cast<double>(block), f.theta[n], f.theta_lo[n]);
      c[n] = anchor.cos;
      s[n] = anchor.sin;
    }
    const long last = std::min(max_distance, block + kBlock - 1);
    for (long D = block; D <= last; ++D) {
      double re = constant, im = 0;
      for (std::size_t n = 0; n < pairs; ++n) {
        re += c[n];
        im += s[n];
        double cn = c[n] * step_c[n] - s[n] * step_s[n];
        s[n] = s[n] * step_c[n] + c[n] * step_s[n];
        c[n] = cn;
      }
      if ((!result.re && re < margin) || (want_im && !result.im && im < margin)) {
        ScorePair exact = model.discrete(static_cast<double>(D));
        if (!result.re && exact.re < 0) result.re = D;
        if (want_im && !result.im && exact.im < 0) result.im = D;
      }
    }
    result.searched_to = last;
  }
  return result;
}

}  // namespace

FirstNegative first_negative_distance(const RopeSpec& spec, long max_distance, long sequence_length) {
  return scan_for_negative(spec, max_distance, sequence_length, true);
}

BaseForContext smallest_base_for_context(RopeSpec spec, long context, double rel_tolerance, double rel_grid,
                                         double grid_span, double max_base) {
  if (context < 2) throw ArgumentError(fmt::format("context length must be >= 2, got {}", context));
  auto passes = [&](double base) {
    spec.base = base;
    return !scan_for_negative(spec, context - 1, 0, false).re.has_value();
  };
  double lo = 1.0 + 1e-9, hi = static_cast<double>(context);
  while (!passes(hi)) {
    lo = hi;
    hi *= 10.0;
    if (hi > max_base)
      throw ArgumentError(fmt::format("no base up to {:g} keeps the real sum non-negative below context {}",
                                      max_base, context));
  }
  while (hi / lo > 1.0 + rel_tolerance) {
    double mid = std::sqrt(lo * hi);
    (passes(mid) ? hi : lo) = mid;
  }
  BaseForContext result{hi, lo, hi, std::max(1.0 + 1e-9, hi * grid_span)};
  for (double b = hi * (1.0 - rel_grid); b >= result.grid_floor; b *= 1.0 - rel_grid) {
    if (passes(b)) result.lowest_passing_on_grid = b;
  }
  return result;
}

}  // namespace ropescope::theory
