// RoPE frequencies of every scaling variant against the mpmath golden table
// (tests/golden/gen_decay.py) and against their defining formulas; the exact
// angle reduction against long-double products and mpmath.
#include <gtest/gtest.h>

#include <cmath>

#include "../common/golden_csv.hpp"
#include "core/error.hpp"
#include "golden_cases.hpp"
#include "theory/exact_angle.hpp"
#include "theory/rope_frequencies.hpp"

namespace rs = ropescope::theory;
using ropescope::testing::golden_cases;

TEST(RopeFrequencies, MatchMpmathForEveryVariantToOneUlp) {
  auto cases = golden_cases();
  std::map<std::string, rs::RopeFrequencies> computed;
  for (auto& [name, c] : cases) computed[name] = rs::rope_frequencies(c.spec, c.sequence_length);
  int checked = 0;
  for (const auto& row : ropescope::testing::read_golden_csv("tests/golden/rope_frequencies_golden.csv")) {
    const auto& f = computed.at(row.at("case"));
    int n = std::stoi(row.at("pair"));
    long double exact = std::stold(row.at("theta"));
    ASSERT_LT(n, static_cast<int>(f.theta.size()));
    // theta is the float64 rounding; theta + theta_lo carries ~106 bits.
    double ulp = std::nextafter(f.theta[n], INFINITY) - f.theta[n];
    EXPECT_LE(std::abs(static_cast<long double>(f.theta[n]) - exact), ulp) << row.at("case") << " pair " << n;
    EXPECT_LE(std::abs(static_cast<long double>(f.theta[n]) + f.theta_lo[n] - exact), 1e-18L * exact)
        << row.at("case") << " pair " << n;
    ++checked;
  }
  EXPECT_EQ(checked, 64 * 6 + 32 + 32 + 8);  // six d=128 cases, d=64, partial (r=64), d=16
}

TEST(RopeFrequencies, LinearDividesEveryFrequencyByTheFactor) {
  rs::RopeSpec plain, linear;
  linear.scaling.type = rs::ScalingType::linear;
  linear.scaling.factor = 4;
  auto a = rs::rope_frequencies(plain), b = rs::rope_frequencies(linear);
  for (std::size_t n = 0; n < a.theta.size(); ++n) EXPECT_DOUBLE_EQ(b.theta[n], a.theta[n] / 4);
  EXPECT_EQ(b.magnitude, 1.0);
}

TEST(RopeFrequencies, RopeppYarnKeepsFastPairsInterpolatesSlowPairsAndScalesMagnitude) {
  rs::RopeSpec spec;
  spec.scaling.type = rs::ScalingType::yarn_ropepp;
  spec.scaling.factor = 8;
  spec.scaling.original_max_position = 4096;
  auto plain = rs::rope_frequencies(rs::RopeSpec{});
  auto f = rs::rope_frequencies(spec);
  for (std::size_t n = 0; n < f.theta.size(); ++n) {
    double rotations = 4096 * plain.theta[n] / (2 * M_PI);  // r_n of ROPEPP.md section 3
    double g = std::clamp((rotations - 1) / 31, 0.0, 1.0);
    EXPECT_NEAR(f.theta[n], (1 - g) * plain.theta[n] / 8 + g * plain.theta[n], 1e-15 * plain.theta[n]) << n;
  }
  EXPECT_DOUBLE_EQ(f.magnitude, 0.1 * std::log(8.0) + 1);
}

TEST(RopeFrequencies, HfYarnMagnitudeFollowsMscaleRules) {
  rs::RopeSpec spec;
  spec.scaling.type = rs::ScalingType::yarn;
  spec.scaling.factor = 16;
  EXPECT_DOUBLE_EQ(rs::rope_frequencies(spec).magnitude, 0.1 * std::log(16.0) + 1);
  spec.scaling.mscale = 0.707;
  spec.scaling.mscale_all_dim = 0.707;
  EXPECT_DOUBLE_EQ(rs::rope_frequencies(spec).magnitude, 1.0);
  spec.scaling.attention_factor = 1.25;
  EXPECT_DOUBLE_EQ(rs::rope_frequencies(spec).magnitude, 1.25);
}

TEST(RopeFrequencies, DynamicChangesTheBaseOnlyBeyondTheOriginalLength) {
  rs::RopeSpec spec;
  spec.scaling.type = rs::ScalingType::dynamic;
  spec.scaling.factor = 2;
  spec.scaling.original_max_position = 4096;
  auto plain = rs::rope_frequencies(rs::RopeSpec{});
  auto short_seq = rs::rope_frequencies(spec, 1000);
  EXPECT_EQ(short_seq.theta, plain.theta);
  rs::FrequencyProfile profile(spec, 16384);
  EXPECT_DOUBLE_EQ(profile.effective_base(), 1e4 * std::pow(2.0 * 16384 / 4096 - 1, 128.0 / 126));
}

TEST(RopeFrequencies, PartialRotaryRotatesOnlyTheFirstDimensions) {
  rs::RopeSpec spec;
  spec.partial_rotary_factor = 0.25;
  auto f = rs::rope_frequencies(spec);
  EXPECT_EQ(f.rotary_dim, 32);
  ASSERT_EQ(f.theta.size(), 16u);
  EXPECT_DOUBLE_EQ(f.theta[1], std::pow(1e4, -2.0 / 32));
}

TEST(RopeFrequencies, BadSpecsAreArgumentErrorsNamingTheField) {
  auto expect_error = [](rs::RopeSpec spec, const std::string& needle) {
    try {
      spec.validate();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const ropescope::ArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  rs::RopeSpec s;
  s.head_dim = 7;
  expect_error(s, "head dimension");
  s = {};
  s.base = 1.0;
  expect_error(s, "base");
  s = {};
  s.partial_rotary_factor = 0.0;
  expect_error(s, "partial_rotary_factor");
  s = {};
  s.scaling.type = rs::ScalingType::yarn;
  s.scaling.factor = 0.5;
  expect_error(s, "factor");
  s = {};
  s.scaling.type = rs::ScalingType::llama3;
  s.scaling.low_freq_factor = 4;
  expect_error(s, "high_freq_factor");
  EXPECT_THROW(rs::parse_scaling_type("ntk-by-parts"), ropescope::ArgumentError);
  EXPECT_EQ(rs::parse_scaling_type("default"), rs::ScalingType::none);
}

TEST(ExactAngle, ReducesLargeAnglesToDoubleAccuracy) {
  // Against a long double product (sinl/cosl reduce their argument exactly);
  // the decay tests check the same path against mpmath at D up to 1e7.
  rs::RopeSpec spec;
  auto f = rs::rope_frequencies(spec);
  for (double position : {1.0, 1e3, 123457.0, 1e6, 1e7, 1e9}) {
    for (int n : {0, 1, 17, 63}) {
      auto sc = rs::exact_sincos(position, f.theta[n], f.theta_lo[n]);
      // long double (64-bit) product, reduced by sinl's own exact reduction: error <= 1e9 * 2^-64 ~ 5e-11
      long double angle = static_cast<long double>(position) * (static_cast<long double>(f.theta[n]) + f.theta_lo[n]);
      EXPECT_NEAR(sc.sin, static_cast<double>(std::sin(angle)), 1e-15 + 6e-20 * position) << position << " " << n;
      EXPECT_NEAR(sc.cos, static_cast<double>(std::cos(angle)), 1e-15 + 6e-20 * position) << position << " " << n;
    }
  }
}
