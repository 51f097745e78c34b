// RoPE frequencies theta_n and every position-scaling variant ropescope knows
// (ROPEPP.md section 3). One RopeSpec describes how a model (or a what-if run)
// rotates; rope_frequencies() turns it into the per-pair frequencies and the
// magnitude applied to cos and sin. The model, the CPU and CUDA backends and
// the decay curves all take their frequencies from here.
//
// Precision path: every frequency is computed in float64 from the formulas
// below (HF computes them in float32; see the model docs for that mode).
#pragma once

#include <string>
#include <vector>

namespace ropescope::theory {

enum class ScalingType {
  none,         // theta_n = base^(-2n/r)
  linear,       // position interpolation: theta_n / factor
  dynamic,      // HF "dynamic" NTK: base grows with the sequence length beyond original_max_position
  yarn,         // HF transformers' YaRN (beta_fast/beta_slow ramp over correction dims, mscale)
  yarn_ropepp,  // YaRN as the RoPE++ reference code implements it (ramp over rotations r_n, 0.1 ln s + 1)
  llama3,       // HF "llama3" (low/high frequency factors over wavelengths)
  longrope,     // HF "longrope" (Phi-3): theta_n / ext_n with per-pair lists, long list when T > original length
};

std::string to_string(ScalingType type);
// Accepts the names above plus HF's aliases ("default" -> none). Throws ArgumentError otherwise.
ScalingType parse_scaling_type(const std::string& name);

struct RopeScaling {
  ScalingType type = ScalingType::none;
  double factor = 1.0;                 // s
  int original_max_position = 4096;    // training length the scaling is relative to
  // yarn (HF)
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;                 // 0 = absent
  double mscale_all_dim = 0.0;         // 0 = absent
  double attention_factor = 0.0;       // 0 = derive from factor (and mscale)
  bool truncate = true;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // longrope: one factor per rotating pair (r/2 each); `factor` (max_position / original) sets the magnitude
  std::vector<double> short_factor, long_factor;

  bool operator==(const RopeScaling&) const = default;
};

struct RopeSpec {
  static constexpr int kMaxHeadDim = 1 << 16;  // refused above: no model has wider heads
  int head_dim = 128;                  // d
  double base = 10000.0;               // rope_theta
  double partial_rotary_factor = 1.0;  // only the first rotary_dim() dimensions rotate
  RopeScaling scaling;

  // Rotating dimensions r = int(d * partial_rotary_factor), as HF computes it.
  int rotary_dim() const;
  // Throws ArgumentError naming the field when the spec is not usable.
  void validate() const;

  bool operator==(const RopeSpec&) const = default;
};

struct RopeFrequencies {
  // r/2 angular frequencies (radians per position); pair n = (x[n], x[n + r/2]).
  // theta[n] is the float64 rounding of the frequency computed in float128;
  // theta[n] + theta_lo[n] carries it to ~106 bits for exact angle reduction.
  std::vector<double> theta;
  std::vector<double> theta_lo;
  double magnitude = 1.0;  // factor applied to both cos and sin (YaRN's attention scaling); scores scale by its square
  int rotary_dim = 0;      // r
  int head_dim = 0;        // d; pairs r/2 .. d/2-1 do not rotate
};

// Frequencies for `spec`. `sequence_length` matters only for the dynamic type
// (HF uses max(sequence_length, original_max_position)) and for longrope (the
// long factors when sequence_length > original_max_position, as HF switches
// for the whole sequence).
// longrope has no continuous profile (its factors are a list): FrequencyProfile
// refuses it, and its frequencies base^(-2n/r) / float32(ext_n) are formed
// directly in float128 (the factors rounded to float32 as HF stores them).
RopeFrequencies rope_frequencies(const RopeSpec& spec, long sequence_length = 0);

// The continuous frequency profile behind the discrete frequencies:
// theta_n = profile(x_n) with x_n = 2n/r, n = 0 .. r/2-1, and x running over
// [0, 1] in the integral (large-d) form of the decay curves. The profile is
// piecewise: on an "exponential" piece theta(x) = scale * B^-x (closed form
// through Si/Ci), on a "ramp" piece it blends interpolated and original
// frequencies (no closed form; integrated numerically).
struct ProfilePiece {
  double x0 = 0, x1 = 1;
  bool exponential = true;
  double scale = 1.0;  // exponential pieces only
};

class FrequencyProfile {
 public:
  FrequencyProfile(const RopeSpec& spec, long sequence_length = 0);

  double operator()(double x) const;          // theta(x), float64
  const std::vector<ProfilePiece>& pieces() const { return pieces_; }
  double log_base() const { return log_base_; }  // ln B, B the effective base (after a dynamic update)
  double effective_base() const { return base_; }
  double magnitude() const { return magnitude_; }
  const RopeSpec& spec() const { return spec_; }

  // Evaluates the profile in double, long double or boost::multiprecision::float128.
  template <class Real>
  Real evaluate(Real x) const;

 private:
  RopeSpec spec_;
  double base_ = 0, log_base_ = 0, magnitude_ = 1;
  // Ramp parameters. yarn: ramp over the pair index i = x r/2 from ramp_lo to
  // ramp_hi; yarn_ropepp / llama3: ramp over the rotations r = L theta / 2pi
  // from ramp_lo (alpha) to ramp_hi (beta).
  double ramp_lo_ = 0, ramp_hi_ = 0;
  std::vector<ProfilePiece> pieces_;
};

// The discrete frequencies of an already built profile (samples at x_n = 2n/r).
RopeFrequencies rope_frequencies(const FrequencyProfile& profile);

}  // namespace ropescope::theory
