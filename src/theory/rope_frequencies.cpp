// RoPE frequencies and position-scaling variants (see rope_frequencies.hpp).
// Each variant is written once, as the continuous profile theta(x); the
// discrete frequencies are its samples at x_n = 2n/r, evaluated in float128.
#include "theory/rope_frequencies.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/math/constants/constants.hpp>
#include <boost/multiprecision/float128.hpp>
#include <cmath>

#include "core/error.hpp"

namespace ropescope::theory {

using boost::multiprecision::float128;

std::string to_string(ScalingType type) {
  switch (type) {
    case ScalingType::none: return "none";
    case ScalingType::linear: return "linear";
    case ScalingType::dynamic: return "dynamic";
    case ScalingType::yarn: return "yarn";
    case ScalingType::yarn_ropepp: return "yarn_ropepp";
    case ScalingType::llama3: return "llama3";
    case ScalingType::longrope: return "longrope";
  }
  return "unknown";
}

ScalingType parse_scaling_type(const std::string& name) {
  if (name == "none" || name == "default" || name == "rope") return ScalingType::none;
  if (name == "linear" || name == "pi") return ScalingType::linear;
  if (name == "dynamic" || name == "ntk") return ScalingType::dynamic;
  if (name == "yarn") return ScalingType::yarn;
  if (name == "yarn_ropepp" || name == "yarn-ropepp") return ScalingType::yarn_ropepp;
  if (name == "llama3") return ScalingType::llama3;
  throw ArgumentError(fmt::format(
      "unknown RoPE scaling '{}' (expected one of: none, linear, dynamic, yarn, yarn_ropepp, llama3)", name));
}

int RopeSpec::rotary_dim() const { return static_cast<int>(head_dim * partial_rotary_factor); }

void RopeSpec::validate() const {
  if (head_dim < 2 || head_dim % 2 != 0)
    throw ArgumentError(fmt::format("head dimension must be even and >= 2, got {}", head_dim));
  if (head_dim > kMaxHeadDim)
    throw ArgumentError(fmt::format("head dimension {} is above {} (no RoPE model has heads that wide)", head_dim, kMaxHeadDim));
  if (!(base > 1.0) || !std::isfinite(base))
    throw ArgumentError(fmt::format("RoPE base must be a finite number > 1, got {}", base));
  if (!(partial_rotary_factor > 0.0 && partial_rotary_factor <= 1.0))
    throw ArgumentError(fmt::format("partial_rotary_factor must be in (0, 1], got {}", partial_rotary_factor));
  int r = rotary_dim();
  if (r < 2 || r % 2 != 0)
    throw ArgumentError(fmt::format("rotary dimension int({} * {}) = {} must be even and >= 2", head_dim,
                                    partial_rotary_factor, r));
  const auto& sc = scaling;
  if (sc.type == ScalingType::none) return;
  std::string name = to_string(sc.type);
  if (!(sc.factor > 0.0) || !std::isfinite(sc.factor))
    throw ArgumentError(fmt::format("{} scaling factor must be a finite number > 0, got {}", name, sc.factor));
  if (sc.type == ScalingType::longrope) {
    if (sc.original_max_position <= 0)
      throw ArgumentError(fmt::format("longrope scaling needs original_max_position_embeddings > 0, got {}",
                                      sc.original_max_position));
    for (const auto* list : {&sc.short_factor, &sc.long_factor})
      if (static_cast<int>(list->size()) != r / 2)
        throw ArgumentError(fmt::format("longrope needs {} short and long factors (rotary dim {} / 2), got {}", r / 2,
                                        r, list->size()));
    return;
  }
  if (sc.type != ScalingType::linear && sc.factor < 1.0)
    throw ArgumentError(fmt::format("{} scaling factor must be >= 1, got {}", name, sc.factor));
  if (sc.type != ScalingType::linear && sc.original_max_position <= 0)
    throw ArgumentError(fmt::format("{} scaling needs original_max_position_embeddings > 0, got {}", name,
                                    sc.original_max_position));
  if ((sc.type == ScalingType::yarn || sc.type == ScalingType::yarn_ropepp) &&
      !(sc.beta_fast > sc.beta_slow && sc.beta_slow > 0.0))
    throw ArgumentError(fmt::format("{} scaling needs beta_fast > beta_slow > 0, got beta_fast={} beta_slow={}", name,
                                    sc.beta_fast, sc.beta_slow));
  if (sc.type == ScalingType::llama3 && !(sc.high_freq_factor > sc.low_freq_factor && sc.low_freq_factor > 0.0))
    throw ArgumentError(fmt::format("llama3 scaling needs high_freq_factor > low_freq_factor > 0, got {} and {}",
                                    sc.high_freq_factor, sc.low_freq_factor));
}

namespace {

// HF's get_mscale: 0.1 * m * ln(s) + 1 for s > 1.
double yarn_mscale(double s, double m) { return s <= 1.0 ? 1.0 : 0.1 * m * std::log(s) + 1.0; }

// HF's find_correction_dim: the pair index whose frequency turns
// `rotations` times over `max_position` positions.
double yarn_correction_dim(double rotations, int dim, double base, int max_position) {
  return dim * std::log(max_position / (rotations * 2.0 * M_PI)) / (2.0 * std::log(base));
}

}  // namespace

FrequencyProfile::FrequencyProfile(const RopeSpec& spec, long sequence_length) : spec_(spec) {
  spec_.validate();
  if (spec_.scaling.type == ScalingType::longrope)
    throw ArgumentError("longrope scales each pair by a listed factor: it has no continuous frequency profile "
                        "(integral decay curves are not defined for it)");
  const auto& sc = spec_.scaling;
  const int r = spec_.rotary_dim();
  base_ = spec_.base;
  if (sc.type == ScalingType::dynamic) {
    // HF dynamic NTK: base * ((s * T / L) - (s - 1))^(r / (r - 2)) with T = max(seq, L).
    double T = std::max<double>(sequence_length, sc.original_max_position);
    base_ = spec_.base * std::pow(sc.factor * T / sc.original_max_position - (sc.factor - 1.0),
                                  static_cast<double>(r) / (r - 2));
  }
  log_base_ = std::log(base_);

  // x where theta(x) = base^-x crosses a given frequency, clamped to [0, 1].
  auto x_of_theta = [&](double theta) { return std::clamp(-std::log(theta) / log_base_, 0.0, 1.0); };
  auto add = [&](double x0, double x1, bool exponential, double scale) {
    if (x1 > x0) pieces_.push_back({x0, x1, exponential, scale});
  };
  const double s = sc.factor;
  switch (sc.type) {
    case ScalingType::longrope:  // refused above
    case ScalingType::none:
    case ScalingType::dynamic:
      add(0.0, 1.0, true, 1.0);
      break;
    case ScalingType::linear:
      add(0.0, 1.0, true, 1.0 / s);
      break;
    case ScalingType::yarn: {
      // Ramp over the pair index between the correction dims for beta_fast and beta_slow.
      double lo = yarn_correction_dim(sc.beta_fast, r, base_, sc.original_max_position);
      double hi = yarn_correction_dim(sc.beta_slow, r, base_, sc.original_max_position);
      if (sc.truncate) {
        lo = std::floor(lo);
        hi = std::ceil(hi);
      }
      lo = std::max(lo, 0.0);
      hi = std::min(hi, static_cast<double>(r - 1));
      if (lo == hi) hi += 0.001;  // as HF's linear_ramp_factor
      ramp_lo_ = lo;
      ramp_hi_ = hi;
      double x_lo = std::clamp(2.0 * lo / r, 0.0, 1.0), x_hi = std::clamp(2.0 * hi / r, 0.0, 1.0);
      add(0.0, x_lo, true, 1.0);
      add(x_lo, x_hi, false, 0.0);
      add(x_hi, 1.0, true, 1.0 / s);
      magnitude_ = sc.attention_factor > 0.0 ? sc.attention_factor
                   : (sc.mscale > 0.0 && sc.mscale_all_dim > 0.0)
                       ? yarn_mscale(s, sc.mscale) / yarn_mscale(s, sc.mscale_all_dim)
                       : yarn_mscale(s, 1.0);
      break;
    }
    case ScalingType::yarn_ropepp:
    case ScalingType::llama3: {
      // Ramp over rotations rho = L theta / 2pi from alpha (all interpolated) to beta (all original).
      double alpha = sc.type == ScalingType::llama3 ? sc.low_freq_factor : sc.beta_slow;
      double beta = sc.type == ScalingType::llama3 ? sc.high_freq_factor : sc.beta_fast;
      ramp_lo_ = alpha;
      ramp_hi_ = beta;
      double L = sc.original_max_position;
      double x_beta = x_of_theta(2.0 * M_PI * beta / L), x_alpha = x_of_theta(2.0 * M_PI * alpha / L);
      add(0.0, x_beta, true, 1.0);
      add(x_beta, x_alpha, false, 0.0);
      add(x_alpha, 1.0, true, 1.0 / s);
      if (sc.type == ScalingType::yarn_ropepp) magnitude_ = 0.1 * std::log(s) + 1.0;
      break;
    }
  }
}

template <class Real>
Real FrequencyProfile::evaluate(Real x) const {
  using std::pow;
  const auto& sc = spec_.scaling;
  const Real theta = pow(Real(base_), -x);
  const Real s = sc.factor;
  switch (sc.type) {
    case ScalingType::longrope:  // never built (the constructor refuses it)
    case ScalingType::none:
    case ScalingType::dynamic:
      return theta;
    case ScalingType::linear:
      return theta / s;
    case ScalingType::yarn: {
      Real index = x * Real(spec_.rotary_dim()) / 2;
      Real ramp = (index - Real(ramp_lo_)) / (Real(ramp_hi_) - Real(ramp_lo_));
      ramp = ramp < 0 ? Real(0) : (ramp > 1 ? Real(1) : ramp);
      // inv_freq_interpolation * (1 - e) + inv_freq_extrapolation * e with e = 1 - ramp
      return theta / s * ramp + theta * (1 - ramp);
    }
    case ScalingType::yarn_ropepp:
    case ScalingType::llama3: {
      Real rotations = Real(sc.original_max_position) * theta / (2 * boost::math::constants::pi<Real>());
      Real g = (rotations - Real(ramp_lo_)) / (Real(ramp_hi_) - Real(ramp_lo_));
      g = g < 0 ? Real(0) : (g > 1 ? Real(1) : g);
      return (1 - g) * theta / s + g * theta;
    }
  }
  return theta;
}

template double FrequencyProfile::evaluate<double>(double) const;
template long double FrequencyProfile::evaluate<long double>(long double) const;
template float128 FrequencyProfile::evaluate<float128>(float128) const;

double FrequencyProfile::operator()(double x) const { return evaluate<double>(x); }

namespace {

// HF _compute_longrope_parameters: theta_n = 1 / (ext_n base^(2n/r)), ext the
// long list iff T > original; magnitude sqrt(1 + ln s / ln original) for s > 1.
RopeFrequencies longrope_frequencies(const RopeSpec& spec, long sequence_length) {
  spec.validate();
  const auto& sc = spec.scaling;
  const bool long_path = sequence_length > sc.original_max_position;
  const auto& ext = long_path ? sc.long_factor : sc.short_factor;
  RopeFrequencies f;
  f.head_dim = spec.head_dim;
  f.rotary_dim = spec.rotary_dim();
  f.magnitude = sc.attention_factor > 0.0 ? sc.attention_factor
                : sc.factor <= 1.0       ? 1.0
                                         : std::sqrt(1.0 + std::log(sc.factor) / std::log(double(sc.original_max_position)));
  const int pairs = f.rotary_dim / 2;
  f.theta.resize(pairs);
  f.theta_lo.resize(pairs);
  for (int n = 0; n < pairs; ++n) {
    const float128 e = static_cast<float>(ext[n]);
    const float128 theta = 1 / (e * pow(float128(spec.base), float128(2 * n) / f.rotary_dim));
    f.theta[n] = static_cast<double>(theta);
    f.theta_lo[n] = static_cast<double>(theta - f.theta[n]);
  }
  return f;
}

}  // namespace

RopeFrequencies rope_frequencies(const RopeSpec& spec, long sequence_length) {
  if (spec.scaling.type == ScalingType::longrope) return longrope_frequencies(spec, sequence_length);
  return rope_frequencies(FrequencyProfile(spec, sequence_length));
}

RopeFrequencies rope_frequencies(const FrequencyProfile& profile) {
  const RopeSpec& spec = profile.spec();
  RopeFrequencies f;
  f.head_dim = spec.head_dim;
  f.rotary_dim = spec.rotary_dim();
  f.magnitude = profile.magnitude();
  const int pairs = f.rotary_dim / 2;
  f.theta.resize(pairs);
  f.theta_lo.resize(pairs);
  for (int n = 0; n < pairs; ++n) {
    float128 theta = profile.evaluate<float128>(float128(2 * n) / f.rotary_dim);
    f.theta[n] = static_cast<double>(theta);
    f.theta_lo[n] = static_cast<double>(theta - f.theta[n]);
  }
  return f;
}

}  // namespace ropescope::theory
